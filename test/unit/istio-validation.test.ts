import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseMeshObject, type ObjectError } from '../../src/model/objects.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';

function errors(raw: Record<string, unknown>): ObjectError[] {
  const r = parseMeshObject(raw);
  assert.ok(r.ok !== 'ignored');
  return r.ok ? [] : r.errors;
}

const vs = (spec: Record<string, unknown>) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'shop' }, spec });

describe('Istio object validation names the object, the field and what is valid', () => {
  it('accepts all three served versions', () => {
    for (const v of ['v1', 'v1beta1', 'v1alpha3']) {
      const r = parseMeshObject({ ...vs({ hosts: ['a'], http: [{ route: [{ destination: { host: 'a' } }] }] }), apiVersion: `networking.istio.io/${v}` });
      assert.equal(r.ok, true, v);
    }
  });

  it('weights that do not sum to 100', () => {
    const e = errors(vs({ hosts: ['a'], http: [{ route: [{ destination: { host: 'a' }, weight: 80 }, { destination: { host: 'b' }, weight: 30 }] }] }));
    assert.equal(e[0]!.field, 'spec.http[0].route');
    assert.match(e[0]!.message, /sum to 110; they must sum to 100/);
    assert.equal(e[0]!.namespace, 'shop');
  });

  it('a regex RE2 rejects, though JavaScript accepts it', () => {
    assert.doesNotThrow(() => new RegExp('^(?!/admin).*'));
    const e = errors(vs({ hosts: ['a'], http: [{ match: [{ headers: { 'x-user': { regex: '^(?!/admin).*' } } }], route: [{ destination: { host: 'a' } }] }] }));
    assert.equal(e[0]!.field, 'spec.http[0].match[0].headers.x-user.regex');
    assert.match(e[0]!.message, /not a valid RE2/);
  });

  it('a route with no destination', () => {
    const e = errors(vs({ hosts: ['a'], http: [{ match: [{ uri: { prefix: '/' } }] }] }));
    assert.equal(e[0]!.field, 'spec.http[0]');
    assert.match(e[0]!.message, /route.*redirect.*directResponse/);
  });

  it('a string match with two kinds', () => {
    const e = errors(vs({ hosts: ['a'], http: [{ match: [{ uri: { prefix: '/', exact: '/x' } }], route: [{ destination: { host: 'a' } }] }] }));
    assert.equal(e[0]!.field, 'spec.http[0].match[0].uri');
    assert.match(e[0]!.message, /exactly one of exact, prefix or regex/);
  });

  it('a duplicate gateway port and host', () => {
    const e = errors({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw' },
      spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'a', protocol: 'HTTP' }, hosts: ['x.example.com'] }, { port: { number: 80, name: 'b', protocol: 'HTTP' }, hosts: ['x.example.com'] }] },
    });
    assert.equal(e[0]!.field, 'spec.servers[1].hosts');
    assert.match(e[0]!.message, /already served by servers\[0\]/);
  });

  it('a subset that no DestinationRule defines leaves the VirtualService out, alone', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: good, namespace: default}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
`;
    const store = new ConfigStore();
    store.replaceSource('t', parseYamlText(yaml, 't.yaml').objects);
    const { snapshot } = buildSnapshot(store, 'cluster.local');
    assert.deepEqual(snapshot.config.virtualServices.map((v) => v.metadata.name), ['good']);
    assert.equal(snapshot.findings.length, 1);
    assert.equal(snapshot.findings[0]!.field, 'spec.http[0].route[0].destination.subset');
    assert.equal(snapshot.findings[0]!.severity, 'Error');
    assert.match(snapshot.findings[0]!.message, /no DestinationRule for reviews\.default\.svc\.cluster\.local defines subset v9, so this VirtualService is left out/);
  });
});

describe('gateway conflicts', () => {
  it('two Gateways claiming one port and host: the first by namespace/name keeps it, the other is reported', async () => {
    const { gatewayServers } = await import('../../src/translate/gateways.js');
    const { proxyContext } = await import('../../src/translate/proxy-context.js');
    const { parseProxy } = await import('../../src/model/proxy.js');
    const gw = (name: string, host: string) => `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["${host}"]}]
`;
    const store = new ConfigStore();
    store.replaceSource('t', parseYamlText(gw('b-gateway', 'shop.example.com') + gw('a-gateway', 'shop.example.com') + gw('c-gateway', 'other.example.com'), 't.yaml').objects);
    const { snapshot } = buildSnapshot(store, 'cluster.local');
    assert.deepEqual(snapshot.findings.map((f) => [f.code, `${f.namespace}/${f.name}`, f.field]), [['IST0145', 'default/b-gateway', 'spec.servers[0].hosts[0]']]);
    assert.match(snapshot.findings[0]!.message, /Conflict with gateway default\/a-gateway .*host shop\.example\.com/);
    const ctx = proxyContext(snapshot, parseProxy('router~10.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local', { LABELS: { istio: 'ingressgateway' } }));
    const servers = gatewayServers(snapshot, ctx).get(80)!;
    assert.deepEqual(servers.map((s) => s.ref), ['default/a-gateway', 'default/c-gateway']);
  });
});

describe('values Envoy refuses are refused at validation, naming the field', () => {
  const dr = (trafficPolicy: Record<string, unknown>, subsets?: unknown[]) => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'd', namespace: 'shop' }, spec: { host: 'reviews', trafficPolicy, ...(subsets ? { subsets } : {}) } });
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['a Maglev table size that is not prime', dr({ loadBalancer: { consistentHash: { httpHeaderName: 'x', maglev: { tableSize: 100 } } } }), 'spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize', /prime/],
    ['a ring size above Envoy\'s limit', dr({ loadBalancer: { consistentHash: { httpHeaderName: 'x', minimumRingSize: 16777216 } } }), 'spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize', /between 1 and 8388608/],
    ['a zero outlier interval', dr({ outlierDetection: { consecutive5xxErrors: 3, interval: '0s' } }), 'spec.trafficPolicy.outlierDetection.interval', /more than 0s/],
    ['a zero connect timeout', dr({ connectionPool: { tcp: { connectTimeout: '0s' } } }), 'spec.trafficPolicy.connectionPool.tcp.connectTimeout', /more than 0s/],
    ['duplicate subset names', dr({}, [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v1', labels: { track: 'canary' } }]), 'spec.subsets[1].name', /already the name of subsets\[0\]/],
    ['setting a pseudo-header', vs({ hosts: ['a'], http: [{ headers: { request: { set: { ':path': '/x' } } }, route: [{ destination: { host: 'a' } }] }] }), 'spec.http[0].headers.request.set.:path', /cannot be changed/],
    ['removing the authority', vs({ hosts: ['a'], http: [{ headers: { request: { remove: [':authority'] } }, route: [{ destination: { host: 'a' } }] }] }), 'spec.http[0].headers.request.remove[0]', /cannot be removed/],
    ['a zero fault delay', vs({ hosts: ['a'], http: [{ fault: { delay: { fixedDelay: '0s', percentage: { value: 50 } } }, route: [{ destination: { host: 'a' } }] }] }), 'spec.http[0].fault.delay.fixedDelay', /more than 0s/],
  ];
  for (const [what, raw, field, message] of cases) {
    it(what, () => {
      const e = errors(raw);
      assert.ok(e.length > 0, 'rejected');
      assert.equal(e[0]!.field, field);
      assert.match(e[0]!.message, message);
    });
  }
});
