// The Sidecar resource (networking.istio.io): validation that names the field, which Sidecar
// applies to a workload (selector, namespace, root default; the oldest of several), which
// service ports its egress imports, and the generator sharing one translation per class.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatObjectError, parseMeshObject, type SidecarObject } from '../../src/model/objects.js';
import { importsServicePort, sidecarFor, sidecarImports } from '../../src/model/sidecar.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseProxy } from '../../src/model/proxy.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { TypeUrl } from '../../src/translate/types.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';

type Raw = Record<string, unknown>;

function sc(namespace: string, name: string, spec: Raw, created?: string, apiVersion = 'networking.istio.io/v1'): Raw {
  return { apiVersion, kind: 'Sidecar', metadata: { name, namespace, ...(created ? { creationTimestamp: created } : {}) }, spec };
}

function parsed(raw: Raw): SidecarObject {
  const r = parseMeshObject(raw);
  assert.ok(r.ok === true, `valid: ${r.ok === false ? r.errors.map(formatObjectError).join('; ') : String(r.ok)}`);
  return r.value as SidecarObject;
}

function refused(raw: Raw): string[] {
  const r = parseMeshObject(raw);
  assert.ok(r.ok === false, 'refused');
  return r.errors.map(formatObjectError);
}

describe('Sidecar validation', () => {
  it('accepts every egress host form at v1, v1beta1 and v1alpha3', () => {
    for (const v of ['v1', 'v1beta1', 'v1alpha3']) {
      const s = parsed(sc('foo', 'default', { egress: [{ port: { number: 9080, protocol: 'HTTP', name: 'http' }, hosts: ['./*'] }, { hosts: ['*/*', '~/*', 'bar/*.example.com', 'istio-system/istiod.istio-system.svc.cluster.local'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, undefined, `networking.istio.io/${v}`));
      assert.equal(s.spec.egress?.length, 2);
    }
  });

  it('names the field of each mistake', () => {
    assert.deepEqual(refused(sc('foo', 'bad', { egress: [{ hosts: ['reviews'] }] })), [
      'Sidecar foo/bad: spec.egress[0].hosts[0]: "reviews" must be "namespace/host" (namespace: a name, "*", "." or "~"; host: a DNS name, "*" or "*.suffix")',
    ]);
    assert.match(refused(sc('foo', 'bad', { egress: [{ hosts: ['Foo_Bar/*'] }] }))[0]!, /spec\.egress\[0\]\.hosts\[0\]: "Foo_Bar\/\*": namespace "Foo_Bar"/);
    assert.match(refused(sc('foo', 'bad', { egress: [{ hosts: ['./a*b'] }] }))[0]!, /host "a\*b" must be a DNS name/);
    assert.match(refused(sc('foo', 'bad', { egress: [{ hosts: [] }] }))[0]!, /spec\.egress\[0\]\.hosts: must list at least one host/);
    assert.match(refused(sc('foo', 'bad', { egress: [{ hosts: ['./*'] }, { hosts: ['*/*'] }] })).join('\n'), /spec\.egress\[1\]\.port: is required: egress\[0\] is already the one listener without a port/);
    assert.match(refused(sc('foo', 'bad', { egress: [{ hosts: ['./*'] }, { port: { number: 80 }, hosts: ['*/*'] }] }))[0]!, /spec\.egress\[0\]: the egress listener without a port must be the last one/);
    assert.match(refused(sc('foo', 'bad', { egress: [{ hosts: ['./*'], bind: 'localhost' }] }))[0]!, /spec\.egress\[0\]\.bind: "localhost" must be an IP address/);
    assert.match(refused(sc('foo', 'bad', { egress: [{ hosts: ['./*'], captureMode: 'TPROXY' }] }))[0]!, /spec\.egress\[0\]\.captureMode: "TPROXY" is not a capture mode/);
    assert.match(refused(sc('foo', 'bad', { outboundTrafficPolicy: { mode: 'DENY' } }))[0]!, /spec\.outboundTrafficPolicy\.mode: "DENY" is not one of ALLOW_ANY, REGISTRY_ONLY/);
    assert.match(refused(sc('foo', 'bad', { workloadSelector: { labels: {} } }))[0]!, /spec\.workloadSelector\.labels: must have at least one label/);
    assert.match(refused(sc('foo', 'bad', { ingress: [{ port: { number: 80 }, defaultEndpoint: '10.0.0.1:80' }] }))[0]!, /spec\.ingress\[0\]\.defaultEndpoint/);
    assert.match(refused(sc('foo', 'bad', { ingress: [{ port: { number: 80 } }, { port: { number: 80 } }] }))[0]!, /spec\.ingress\[1\]\.port\.number: port 80 is already used by ingress\[0\]/);
  });
});

describe('which Sidecar applies', () => {
  const all = [
    parsed(sc('istio-system', 'default', { egress: [{ hosts: ['./*'] }] })),
    parsed(sc('istio-system', 'selects', { workloadSelector: { labels: { app: 'a' } }, egress: [{ hosts: ['*/*'] }] })),
    parsed(sc('foo', 'newer', {}, '2024-03-01T00:00:00Z')),
    parsed(sc('foo', 'older', {}, '2024-01-01T00:00:00Z')),
    parsed(sc('foo', 'for-a-new', { workloadSelector: { labels: { app: 'a' } } }, '2024-05-01T00:00:00Z')),
    parsed(sc('foo', 'for-a-old', { workloadSelector: { labels: { app: 'a' } } }, '2024-04-01T00:00:00Z')),
  ];
  const name = (s: SidecarObject | undefined) => (s ? `${s.metadata.namespace}/${s.metadata.name}` : undefined);

  it('a matching selector first (the oldest), then the namespace-wide one (the oldest), then the root default', () => {
    assert.equal(name(sidecarFor(all, 'foo', { app: 'a' }, 'istio-system')), 'foo/for-a-old');
    assert.equal(name(sidecarFor(all, 'foo', { app: 'b' }, 'istio-system')), 'foo/older');
    // A root namespace Sidecar with a selector applies only in the root namespace.
    assert.equal(name(sidecarFor(all, 'bar', { app: 'a' }, 'istio-system')), 'istio-system/default');
    assert.equal(name(sidecarFor(all, 'bar', {}, 'mesh-root')), undefined, 'the root namespace is the mesh config\'s');
  });

  it('"." is the workload\'s namespace, "~" imports nothing, a port listener takes its port', () => {
    const svc = (hostname: string, namespace: string) => ({ hostname, namespace });
    const root = sidecarImports(all[0]!, 'bar');
    assert.equal(importsServicePort(root, svc('x.bar.svc.cluster.local', 'bar'), 80), true);
    assert.equal(importsServicePort(root, svc('x.istio-system.svc.cluster.local', 'istio-system'), 80), false);
    const none = sidecarImports(parsed(sc('foo', 'x', { egress: [{ hosts: ['~/*'] }] })), 'foo');
    assert.equal(importsServicePort(none, svc('x.foo.svc.cluster.local', 'foo'), 80), false);
    const ported = sidecarImports(parsed(sc('foo', 'x', { egress: [{ port: { number: 9000 }, hosts: ['bar/*'] }, { hosts: ['*/*.example.com', 'foo/a.foo.svc.cluster.local'] }] })), 'foo');
    assert.equal(importsServicePort(ported, svc('x.bar.svc.cluster.local', 'bar'), 9000), true);
    assert.equal(importsServicePort(ported, svc('x.bar.svc.cluster.local', 'bar'), 80), false);
    assert.equal(importsServicePort(ported, svc('a.foo.svc.cluster.local', 'foo'), 9000), false, 'port 9000 is the port listener\'s');
    assert.equal(importsServicePort(ported, svc('a.foo.svc.cluster.local', 'foo'), 80), true);
    assert.equal(importsServicePort(ported, svc('api.example.com', 'ext'), 443), true);
    assert.equal(importsServicePort(sidecarImports(parsed(sc('foo', 'x', {})), 'foo'), svc('y.z.svc.cluster.local', 'z'), 1), true, 'no egress: everything');
  });
});

describe('generator: one translation per class of Sidecar imports', () => {
  const yaml = (sidecarHosts: string[]) =>
    [
      ...['a', 'b'].map((n) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${n}, namespace: ${n}}\nspec: {clusterIP: 10.96.0.${n === 'a' ? 1 : 2}, ports: [{name: http, port: 80}]}`),
      `apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: a}\nspec: {egress: [{hosts: ${JSON.stringify(sidecarHosts)}}]}`,
    ].join('\n---\n');
  const proxy = (ns: string, pod: string) => parseProxy(`sidecar~10.0.0.9~${pod}.${ns}~${ns}.svc.cluster.local`, {});

  it('proxies of one Sidecar share a view; another Sidecar scope is another class', () => {
    const store = new ConfigStore();
    store.replaceSource('t', parseYamlText(yaml(['./*']), 'x.yaml').objects);
    const g = new ConfigGenerator();
    g.update(buildSnapshot(store, 'cluster.local'));
    const a1 = g.resourcesFor(g.context(proxy('a', 'p1')));
    const a2 = g.resourcesFor(g.context(proxy('a', 'p2')));
    assert.equal(a1.byType[TypeUrl.Cluster], a2.byType[TypeUrl.Cluster], 'the same cluster set, encoded once');
    assert.deepEqual([...a1.byType[TypeUrl.Cluster].keys()].filter((n) => n.startsWith('outbound')), ['outbound|80||a.a.svc.cluster.local']);
    const b = g.resourcesFor(g.context(proxy('b', 'p3')));
    assert.deepEqual([...b.byType[TypeUrl.Cluster].keys()].filter((n) => n.startsWith('outbound')).sort(), ['outbound|80||a.a.svc.cluster.local', 'outbound|80||b.b.svc.cluster.local']);
    // Widening the Sidecar: a new class key, and the other service's cluster.
    store.replaceSource('t', parseYamlText(yaml(['./*', 'b/*']), 'x.yaml').objects);
    g.update(buildSnapshot(store, 'cluster.local', g.snapshot));
    const wider = g.context(proxy('a', 'p1'));
    assert.notEqual(wider.classKey, a1.classKey);
    assert.deepEqual([...g.resourcesFor(wider).byType[TypeUrl.Cluster].keys()].filter((n) => n.startsWith('outbound')).sort(), ['outbound|80||a.a.svc.cluster.local', 'outbound|80||b.b.svc.cluster.local']);
  });
});
