import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { portProtocol } from '../../src/model/protocol.js';
import { parseProxy, NodeIdError, formatNodeId } from '../../src/model/proxy.js';
import { parseMeshObject, parseService, parseEndpointSlice } from '../../src/model/objects.js';
import { ConfigStore, type ConfigChange } from '../../src/model/store.js';
import { buildSnapshot, updateEndpoints, endpointKey } from '../../src/model/mesh.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { serviceYaml } from '../support/meshd.js';

describe('protocol selection (as Istio)', () => {
  const cases: [Parameters<typeof portProtocol>[0], string][] = [
    [{ name: 'http' }, 'HTTP'],
    [{ name: 'http-web' }, 'HTTP'],
    [{ name: 'http2' }, 'HTTP2'],
    [{ name: 'grpc' }, 'GRPC'],
    [{ name: 'grpc-web' }, 'GRPC-WEB'],
    [{ name: 'grpc-web-ui' }, 'GRPC-WEB'],
    [{ name: 'grpc-api' }, 'GRPC'],
    [{ name: 'HTTP' }, 'HTTP'],
    [{ name: 'tcp-db' }, 'TCP'],
    [{ name: 'mongo' }, 'MONGO'],
    [{ name: 'web' }, 'AUTO'],
    [{ name: '' }, 'AUTO'],
    [{ name: 'httpx' }, 'AUTO'],
    [{ name: 'db', appProtocol: 'http' }, 'HTTP'],
    [{ name: 'http', appProtocol: 'tcp' }, 'TCP'],
    [{ name: 'x', appProtocol: 'kubernetes.io/h2c' }, 'HTTP2'],
    [{ name: 'x', appProtocol: 'unknown-thing' }, 'AUTO'],
    [{ name: 'http', protocol: 'UDP' }, 'UDP'],
  ];
  for (const [port, expected] of cases) {
    it(`${JSON.stringify(port)} is ${expected}`, () => assert.equal(portProtocol(port), expected));
  }
});

describe('proxy identity from node id and metadata', () => {
  it('parses an Istio sidecar node id', () => {
    const p = parseProxy('sidecar~10.1.0.5~httpbin-7f9c.default~default.svc.cluster.local', {
      LABELS: { app: 'httpbin', n: 1 },
      SERVICE_ACCOUNT: 'httpbin',
      INSTANCE_IPS: '10.1.0.5,fd00::5',
      ISTIO_VERSION: '1.22.0',
    });
    assert.equal(p.type, 'sidecar');
    assert.equal(p.ip, '10.1.0.5');
    assert.equal(p.podName, 'httpbin-7f9c');
    assert.equal(p.namespace, 'default');
    assert.equal(p.dnsDomain, 'default.svc.cluster.local');
    assert.deepEqual(p.labels, { app: 'httpbin' });
    assert.equal(p.serviceAccount, 'httpbin');
    assert.deepEqual(p.instanceIps, ['10.1.0.5', 'fd00::5']);
  });
  it('parses a gateway (router) id with a dotted pod name', () => {
    const p = parseProxy('router~10.1.0.9~istio-ingressgateway-5d.x.istio-system~istio-system.svc.cluster.local');
    assert.equal(p.type, 'router');
    assert.equal(p.podName, 'istio-ingressgateway-5d.x');
    assert.equal(p.namespace, 'istio-system');
  });
  for (const bad of ['', 'not-a-node', 'sidecar~1.2.3.4~pod~x', 'gateway~1.2.3.4~p.ns~ns.svc.cluster.local', 'sidecar~~p.ns~d', 'sidecar~1.2.3.4~podnons~d']) {
    it(`rejects "${bad}" saying what was expected`, () => {
      assert.throws(() => parseProxy(bad), (e: unknown) => e instanceof NodeIdError && /sidecar~<ip>|"<type>~<ip>~<pod>\.<namespace>/.test(e.message) && e.message.includes('expected'));
    });
  }
  it('formats ids as Istio does', () => {
    assert.equal(formatNodeId('sidecar', '10.0.0.1', 'a-1', 'ns'), 'sidecar~10.0.0.1~a-1.ns~ns.svc.cluster.local');
  });
});

describe('object validation names the object and the field', () => {
  it('rejects a Service port out of range', () => {
    const r = parseService({ metadata: { name: 'web', namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 70000 }] } });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.errors[0]!.name, 'web');
    assert.equal(r.errors[0]!.namespace, 'shop');
    assert.equal(r.errors[0]!.field, 'spec.ports[0].port');
  });
  it('requires port names when a Service has several ports', () => {
    const r = parseService({ metadata: { name: 'web' }, spec: { ports: [{ port: 80 }, { name: 'b', port: 81 }] } });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.errors[0]!.field, 'spec.ports[0].name');
  });
  it('rejects a bad clusterIP', () => {
    const r = parseService({ metadata: { name: 'web' }, spec: { clusterIP: 'ten', ports: [{ port: 80 }] } });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.errors[0]!.field, 'spec.clusterIP');
  });
  it('requires the service-name label on an EndpointSlice', () => {
    const r = parseEndpointSlice({ metadata: { name: 's' }, addressType: 'IPv4', endpoints: [], ports: [] });
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors[0]!.field, /kubernetes\.io\/service-name/);
  });
  it('treats a missing ready condition as ready (Kubernetes semantics)', () => {
    const r = parseEndpointSlice({ metadata: { name: 's', labels: { 'kubernetes.io/service-name': 'a' } }, addressType: 'IPv4', endpoints: [{ addresses: ['1.1.1.1'] }], ports: [] });
    assert.ok(r.ok);
    if (r.ok) assert.equal(r.value.endpoints[0]!.ready, true);
  });
  it('ignores kinds it does not serve, and says so', () => {
    const r = parseMeshObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } });
    assert.equal(r.ok, 'ignored');
  });
});

describe('file parsing reports file, document, object and field', () => {
  it('keeps good documents and reports the bad ones', () => {
    const text = [
      serviceYaml({ name: 'good', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.1' }] }),
      '---\napiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - name: http\n    port: -1\n',
      '---\nkey: [unclosed\n',
      '---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n',
    ].join('');
    const r = parseYamlText(text, 'mixed.yaml');
    assert.deepEqual(r.objects.map((o) => `${o.kind}/${o.metadata.name}`), ['Service/good', 'EndpointSlice/good-slice']);
    const bad = r.problems.find((p) => p.object?.name === 'bad');
    assert.ok(bad, JSON.stringify(r.problems));
    assert.equal(bad.document, 2);
    assert.equal(bad.file, 'mixed.yaml');
    assert.equal(bad.object?.field, 'spec.ports[0].port');
    assert.ok(r.problems.some((p) => p.document === 3 && /invalid YAML/.test(p.message)));
    assert.ok(r.ignored.some((p) => p.document === 4 && /Widget/.test(p.message)));
    assert.equal(r.syntaxError, true);
  });
});

function storeWith(yaml: string): ConfigStore {
  const store = new ConfigStore();
  const r = parseYamlText(yaml, 'x.yaml');
  assert.deepEqual(r.problems, []);
  store.replaceSource('test', r.objects);
  return store;
}

describe('mesh snapshot', () => {
  const yaml =
    serviceYaml({ name: 'a', clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80, targetPort: 8080 }], endpoints: [{ ip: '10.0.0.2' }, { ip: '10.0.0.1' }, { ip: '10.0.0.3', ready: false }] }) +
    '---\n' +
    serviceYaml({ name: 'b', ports: [{ name: 'grpc', port: 7070 }], endpoints: [{ ip: '10.0.1.1' }] });

  it('indexes services by hostname, sorted, with ready endpoints only', () => {
    const { snapshot } = buildSnapshot(storeWith(yaml), 'cluster.local');
    assert.deepEqual(snapshot.services.map((s) => s.hostname), ['a.default.svc.cluster.local', 'b.default.svc.cluster.local']);
    const eps = snapshot.endpoints.get(endpointKey('a.default.svc.cluster.local', 80))!;
    assert.deepEqual(eps.map((e) => `${e.address}:${e.port}`), ['10.0.0.1:8080', '10.0.0.2:8080']);
    assert.equal(snapshot.serviceByHost.get('b.default.svc.cluster.local')!.ports[0]!.protocol, 'GRPC');
  });

  it('matches endpoint ports by name, not number', () => {
    const text = serviceYaml({ name: 'c', ports: [{ name: 'web', port: 80 }], endpoints: [{ ip: '10.0.0.9' }], endpointPorts: { web: 9999 } });
    const { snapshot } = buildSnapshot(storeWith(text), 'cluster.local');
    assert.deepEqual(snapshot.endpoints.get(endpointKey('c.default.svc.cluster.local', 80))!.map((e) => e.port), [9999]);
  });

  it('an endpoint-only update reuses services and reports only what changed', () => {
    const store = storeWith(yaml);
    const first = buildSnapshot(store, 'cluster.local');
    const changes: ConfigChange[] = [];
    store.onChange((c) => changes.push(...c));
    const r = parseYamlText(
      yaml.replace('10.0.1.1', '10.0.1.9'),
      'x.yaml',
    );
    store.replaceSource('test', r.objects);
    assert.deepEqual(changes.map((c) => `${c.kind}/${c.name}/${c.op}`), ['EndpointSlice/b-slice/update']);
    const next = updateEndpoints(store, first.snapshot, changes.map((c) => c.service!));
    assert.equal(next.full, false);
    assert.equal(next.snapshot.services, first.snapshot.services);
    assert.deepEqual([...next.changedEndpoints], ['b.default.svc.cluster.local']);
    assert.equal(next.snapshot.endpoints.get(endpointKey('a.default.svc.cluster.local', 80)), first.snapshot.endpoints.get(endpointKey('a.default.svc.cluster.local', 80)));
    assert.deepEqual(next.snapshot.endpoints.get(endpointKey('b.default.svc.cluster.local', 7070))!.map((e) => e.address), ['10.0.1.9']);
  });

  it('an endpoint change that brings a new service account is a full update (clusters verify identities)', () => {
    const pod = (name: string, ip: string, sa: string): string =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: default, labels: {app: b}}\nspec: {serviceAccountName: ${sa}}\nstatus: {phase: Running, podIP: ${ip}, podIPs: [{ip: ${ip}}]}\n---\n`;
    const pods = pod('b-1', '10.0.1.1', 'b-sa') + pod('b-2', '10.0.1.2', 'other-sa') + pod('b-3', '10.0.1.3', 'b-sa');
    const slice = (ip: string, name: string): string => serviceYaml({ name: 'b', ports: [{ name: 'grpc', port: 7070 }], endpoints: [{ ip, pod: name }] });
    const store = storeWith(pods + slice('10.0.1.1', 'b-1'));
    const first = buildSnapshot(store, 'cluster.local');
    assert.deepEqual(first.snapshot.endpoints.get(endpointKey('b.default.svc.cluster.local', 7070))!.map((e) => e.serviceAccount), ['default/b-sa']);
    store.replaceSource('test', parseYamlText(pods + slice('10.0.1.3', 'b-3'), 'x.yaml').objects);
    const same = updateEndpoints(store, first.snapshot, ['default/b']);
    assert.equal(same.full, false, 'another Pod with the same service account: endpoints only');
    store.replaceSource('test', parseYamlText(pods + slice('10.0.1.2', 'b-2'), 'x.yaml').objects);
    const next = updateEndpoints(store, same.snapshot, ['default/b']);
    assert.equal(next.full, true, 'a new service account: clusters are translated again');
    assert.deepEqual(next.snapshot.endpoints.get(endpointKey('b.default.svc.cluster.local', 7070))!.map((e) => e.serviceAccount), ['default/other-sa']);
  });

  it("keeps the CA's own Secrets out of gateway credentials", () => {
    const secret = (ns: string, name: string): string => `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: ${ns}}\ntype: kubernetes.io/tls\ndata: {tls.crt: Y2VydA==, tls.key: a2V5}\n---\n`;
    const { snapshot } = buildSnapshot(storeWith(secret('istio-system', 'istio-ca-secret') + secret('istio-system', 'cacerts') + secret('istio-system', 'gw-cert')), 'cluster.local');
    assert.deepEqual([...snapshot.config.secrets.keys()], ['istio-system/gw-cert']);
  });

  it('a store write that changes nothing emits no change', () => {
    const store = storeWith(yaml);
    let calls = 0;
    store.onChange(() => calls++);
    store.replaceSource('test', parseYamlText(yaml, 'x.yaml').objects);
    assert.equal(calls, 0);
  });
});

describe('file source reloads', () => {
  it('re-parses only the files that changed and keeps the others\' objects as they were', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { FileSource } = await import('../../src/sources/file/file-source.js');
    const { silentLogger } = await import('../../src/util/log.js');
    const dir = mkdtempSync(join(tmpdir(), 'meshd-unit-'));
    writeFileSync(join(dir, 'a.yaml'), serviceYaml({ name: 'a', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.1' }] }));
    writeFileSync(join(dir, 'b.yaml'), serviceYaml({ name: 'b', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.2' }] }));
    const store = new ConfigStore();
    const fs = new FileSource({ dir, store, log: silentLogger });
    fs.reload();
    const a = store.get('Service', 'default', 'a');
    const changes: ConfigChange[] = [];
    store.onChange((c) => changes.push(...c));
    writeFileSync(join(dir, 'b.yaml'), serviceYaml({ name: 'b', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.9' }] }));
    fs.reload(new Set(['b.yaml']));
    assert.equal(store.get('Service', 'default', 'a'), a, 'untouched file: same object');
    assert.deepEqual(changes.map((c) => `${c.kind}/${c.name}`), ['EndpointSlice/b-slice']);
  });
});
