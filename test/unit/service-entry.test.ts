// ServiceEntry and WorkloadEntry (networking.istio.io): validation that names the field,
// the registry services made of ServiceEntry hosts (a Service keeps its own host), their
// endpoints (endpoints, workloadSelector over WorkloadEntries and Pods, the host itself for
// DNS), a resolution change reaching the load assignments, and exportTo.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatObjectError, parseMeshObject, type MeshObject } from '../../src/model/objects.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot, endpointKey, updateEndpoints } from '../../src/model/mesh.js';
import { visibleFrom } from '../../src/model/service.js';
import { serviceLoadAssignments } from '../../src/translate/endpoints.js';

type Raw = Record<string, unknown>;

function se(name: string, spec: Raw, namespace = 'default', apiVersion = 'networking.istio.io/v1'): Raw {
  return { apiVersion, kind: 'ServiceEntry', metadata: { name, namespace }, spec };
}

function ok(raw: Raw): MeshObject {
  const r = parseMeshObject(raw);
  assert.ok(r.ok === true, `valid: ${r.ok === false ? r.errors.map(formatObjectError).join('; ') : String(r.ok)}`);
  return r.value;
}

function refused(raw: Raw): string[] {
  const r = parseMeshObject(raw);
  assert.ok(r.ok === false, 'refused');
  return r.errors.map(formatObjectError);
}

function storeOf(...raws: Raw[]): ConfigStore {
  const store = new ConfigStore();
  for (const raw of raws) store.upsert('test', ok(raw));
  return store;
}

const HTTP = [{ number: 80, name: 'http', protocol: 'HTTP' }];

describe('ServiceEntry validation', () => {
  it('accepts each resolution at v1, v1beta1 and v1alpha3', () => {
    for (const v of ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3']) {
      ok(se('none', { hosts: ['a.example.com'], ports: HTTP }, 'default', v));
      ok(se('static', { hosts: ['b.example.com'], ports: HTTP, resolution: 'STATIC', endpoints: [{ address: '10.0.0.1' }, { address: 'unix:///var/run/a.sock' }] }, 'default', v));
      ok(se('dns', { hosts: ['c.example.com'], ports: HTTP, resolution: 'DNS' }, 'default', v));
      ok(se('rr', { hosts: ['d.example.com'], ports: HTTP, resolution: 'DNS_ROUND_ROBIN', endpoints: [{ address: 'e.example.net' }] }, 'default', v));
    }
  });

  it('names the field of each rule broken', () => {
    assert.deepEqual(refused(se('x', { hosts: [] })), ['ServiceEntry default/x: spec.hosts: must list at least one host']);
    assert.match(refused(se('x', { hosts: ['a.example.com'], resolution: 'STATIC', ports: HTTP }))[0]!, /spec\.endpoints: resolution STATIC needs endpoints/);
    assert.match(refused(se('x', { hosts: ['a.example.com'], resolution: 'DNS_ROUND_ROBIN', ports: HTTP, endpoints: [{ address: 'a.net' }, { address: 'b.net' }] }))[0]!, /at most one endpoint, not 2/);
    assert.match(refused(se('x', { hosts: ['a.example.com'], resolution: 'DNS', ports: HTTP, endpoints: [{ address: 'unix:///a.sock' }] }))[0]!, /spec\.endpoints\[0\]\.address: a unix:\/\/ address needs resolution STATIC/);
    assert.match(refused(se('x', { hosts: ['a.example.com'], addresses: ['10.0.0.0/33'], ports: HTTP }))[0]!, /spec\.addresses\[0\]/);
    assert.match(refused(se('x', { hosts: ['a.example.com'], ports: HTTP, exportTo: ['Bad_NS'] }))[0]!, /spec\.exportTo\[0\]/);
    assert.match(refused(se('x', { hosts: ['a.example.com'], ports: [{ number: 0, name: 'http' }] }))[0]!, /spec\.ports\[0\]\.number/);
  });

  it('WorkloadEntry: an address is required; the rest is checked as ServiceEntry endpoints are', () => {
    ok({ apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'vm', namespace: 'default' }, spec: { address: 'vm-1.example.net', serviceAccount: 'vm' } });
    assert.match(refused({ apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'vm', namespace: 'default' }, spec: { labels: { app: 'vm' } } })[0]!, /spec\.address: is required/);
  });
});

describe('ServiceEntry hosts in the registry', () => {
  it('each host is a service of the ServiceEntry\'s namespace; a Service keeps its own host', () => {
    const store = storeOf(
      se('ext', { hosts: ['a.example.com', 'b.example.com', 'httpbin.default.svc.cluster.local'], ports: HTTP }, 'egress'),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'default' }, spec: { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 8000 }] } },
    );
    const s = buildSnapshot(store, 'cluster.local').snapshot;
    assert.deepEqual(s.services.map((x) => `${x.hostname}:${x.namespace}:${x.entry ? 'SE' : 'Service'}`), ['a.example.com:egress:SE', 'b.example.com:egress:SE', 'httpbin.default.svc.cluster.local:default:Service']);
  });

  it('endpoints: the workloadSelector picks WorkloadEntries and ready Pods of its namespace, with their ports and identities', () => {
    const store = storeOf(
      se('vm', { hosts: ['vm.internal'], ports: [{ number: 80, name: 'http', targetPort: 8080 }], location: 'MESH_INTERNAL', resolution: 'STATIC', workloadSelector: { labels: { app: 'vm' } } }, 'vms'),
      { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'a', namespace: 'vms' }, spec: { address: '10.1.0.1', labels: { app: 'vm' }, ports: { http: 9090 }, serviceAccount: 'vm-sa', weight: 5 } },
      { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'b', namespace: 'other' }, spec: { address: '10.1.0.2', labels: { app: 'vm' } } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'vms', labels: { app: 'vm' } }, spec: { serviceAccountName: 'pod-sa' }, status: { podIP: '10.0.0.9', phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unready', namespace: 'vms', labels: { app: 'vm' } }, spec: { serviceAccountName: 'pod-sa' }, status: { podIP: '10.0.0.10', phase: 'Running' } },
    );
    const s = buildSnapshot(store, 'cluster.local').snapshot;
    const eps = s.endpoints.get(endpointKey('vm.internal', 80))!;
    assert.deepEqual(eps.map((e) => `${e.address}:${e.port}:${e.serviceAccount}:${e.weight ?? 1}`), ['10.0.0.9:8080:vms/pod-sa:1', '10.1.0.1:9090:vms/vm-sa:5']);
  });

  it('DNS without endpoints resolves the host itself; a change of resolution changes the load assignments', () => {
    const store = storeOf(se('ext', { hosts: ['a.example.com'], ports: HTTP, resolution: 'DNS' }));
    const first = buildSnapshot(store, 'cluster.local');
    assert.deepEqual(first.snapshot.endpoints.get(endpointKey('a.example.com', 80))!.map((e) => e.address), ['a.example.com']);
    assert.deepEqual(serviceLoadAssignments(first.snapshot, first.snapshot.serviceByHost.get('a.example.com')!), [], 'a DNS cluster carries its endpoints');
    store.upsert('test', ok(se('ext', { hosts: ['a.example.com'], ports: HTTP, resolution: 'STATIC', endpoints: [{ address: '10.0.0.1' }] })));
    const second = buildSnapshot(store, 'cluster.local', first.snapshot);
    assert.ok(second.changedEndpoints.has('a.example.com'));
    assert.deepEqual(serviceLoadAssignments(second.snapshot, second.snapshot.serviceByHost.get('a.example.com')!).map((r) => r.name), ['outbound|80||a.example.com']);
  });

  it('a Service selects the WorkloadEntries of its namespace too (by port name, else targetPort), on the full and the endpoints-only path', () => {
    const store = storeOf(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'vms' }, spec: { clusterIP: '10.96.0.2', selector: { app: 'api' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'grpc', port: 90 }] } },
      { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'a', namespace: 'vms' }, spec: { address: '10.1.0.1', labels: { app: 'api' }, ports: { grpc: 9999 }, serviceAccount: 'vm' } },
      { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'b', namespace: 'vms' }, spec: { address: '10.1.0.2', labels: { app: 'other' } } },
    );
    const first = buildSnapshot(store, 'cluster.local');
    const host = 'api.vms.svc.cluster.local';
    assert.deepEqual(first.snapshot.endpoints.get(endpointKey(host, 80))!.map((e) => `${e.address}:${e.port}:${e.serviceAccount}`), ['10.1.0.1:8080:vms/vm']);
    assert.deepEqual(first.snapshot.endpoints.get(endpointKey(host, 90))!.map((e) => `${e.address}:${e.port}`), ['10.1.0.1:9999']);
    store.upsert('test', ok({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'api-1', namespace: 'vms', labels: { 'kubernetes.io/service-name': 'api' } }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['10.0.0.7'] }] }));
    const second = updateEndpoints(store, first.snapshot, ['vms/api']);
    assert.deepEqual(second.snapshot.endpoints.get(endpointKey(host, 80))!.map((e) => e.address), ['10.0.0.7', '10.1.0.1']);
  });

  it('exportTo: "." keeps the host to its namespace', () => {
    const s = buildSnapshot(storeOf(se('ext', { hosts: ['a.example.com'], ports: HTTP, exportTo: ['.'] }, 'egress')), 'cluster.local').snapshot;
    const svc = s.serviceByHost.get('a.example.com')!;
    assert.equal(visibleFrom(svc, 'egress'), true);
    assert.equal(visibleFrom(svc, 'default'), false);
  });
});
