// Status on Istio objects: the pure computation (object + findings + proxy counts -> status),
// the comparison that decides whether to write, the write-rate token bucket, and which
// proxies an object affects.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { computeStatus, MAX_STATUS_TEXT, MAX_VALIDATION_MESSAGES, sameStatus, type IstioStatus, type StatusInput } from '../../src/controllers/istio-status.js';
import { finding, type Finding } from '../../src/model/finding.js';
import { TokenBucket } from '../../src/util/token-bucket.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseProxy } from '../../src/model/proxy.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { Connection } from '../../src/xds/connection.js';
import { DistributionIndex } from '../../src/xds/distribution.js';
import type { VirtualServiceObject } from '../../src/model/objects.js';
import { TypeUrl } from '../../src/translate/types.js';

const vs = { kind: 'VirtualService', metadata: { namespace: 'apps', name: 'reviews', generation: 3 } };
const T0 = '2025-01-01T00:00:00.000Z';
const T1 = '2025-01-01T00:05:00.000Z';

const input = (o: Partial<StatusInput>): StatusInput => ({ generation: 3, findings: [], proxies: { affected: 2, upToDate: 2, rejected: 0 }, previous: undefined, now: T0, ...o });
const cond = (s: IstioStatus, type: string) => s.conditions.find((c) => c.type === type)!;

describe('status computation', () => {
  it('Reconciled True and Accepted True, with observedGeneration, for a valid object all proxies have', () => {
    const s = computeStatus(input({}));
    assert.equal(s.observedGeneration, 3);
    assert.deepEqual(s.conditions, [
      { type: 'Reconciled', status: 'True', observedGeneration: 3, lastTransitionTime: T0, reason: 'Reconciled', message: 'every connected proxy it affects is up to date' },
      { type: 'Accepted', status: 'True', observedGeneration: 3, lastTransitionTime: T0, reason: 'Accepted', message: '' },
    ]);
    assert.equal(s.validationMessages, undefined);
  });

  it('Reconciled False counts proxies pending and rejected, with the rejection bounded', () => {
    const pending = computeStatus(input({ proxies: { affected: 5, upToDate: 2, rejected: 0 } }));
    assert.deepEqual([cond(pending, 'Reconciled').status, cond(pending, 'Reconciled').reason, cond(pending, 'Reconciled').message], ['False', 'InProgress', '2 of 5 proxies up to date']);
    const rejected = computeStatus(input({ proxies: { affected: 5, upToDate: 2, rejected: 1, rejection: `RDS: ${'x'.repeat(5000)}` } }));
    const c = cond(rejected, 'Reconciled');
    assert.equal(c.reason, 'Rejected');
    assert.match(c.message, /^2 of 5 proxies up to date, 1 rejected: RDS: x+…$/);
    assert.ok(c.message.length < 300);
  });

  it('a generation left out of the config is not Reconciled (NotAccepted)', () => {
    const f: Finding = { ...finding('SchemaValidationError', vs, 'spec.http[0].route[0].weight', 'weights add up to 130, not 100'), generation: 3 };
    const s = computeStatus(input({ findings: [f], proxies: undefined }));
    assert.deepEqual([cond(s, 'Reconciled').status, cond(s, 'Reconciled').reason], ['False', 'NotAccepted']);
    assert.deepEqual([cond(s, 'Accepted').status, cond(s, 'Accepted').reason], ['False', 'Invalid']);
    assert.equal(cond(s, 'Accepted').message, 'IST0106: spec.http[0].route[0].weight: weights add up to 130, not 100');
    assert.deepEqual(s.validationMessages, [
      { type: { code: 'IST0106', name: 'SchemaValidationError' }, level: 'ERROR', description: 'spec.http[0].route[0].weight: weights add up to 130, not 100', documentationUrl: 'https://istio.io/latest/docs/reference/config/analysis/ist0106/' },
    ]);
  });

  it('a lost conflict is Accepted False, reason Conflicted, naming the winner; warnings leave it Accepted', () => {
    const gw = { kind: 'Gateway', metadata: { namespace: 'gw', name: 'second' } };
    const conflict = finding('ConflictingGateways', gw, 'spec.servers[0]', 'Conflict with gateway gw/first (port 80, host a.example.com)');
    const warning = finding('GatewayPortNotDefinedOnService', gw, 'spec.servers[0].port', 'port 81 is not defined on the gateway Service');
    const s = computeStatus(input({ findings: [warning, conflict] }));
    assert.deepEqual([cond(s, 'Accepted').status, cond(s, 'Accepted').reason], ['False', 'Conflicted']);
    assert.match(cond(s, 'Accepted').message, /gw\/first/);
    assert.deepEqual(s.validationMessages!.map((m) => [m.type.code, m.level]), [['IST0145', 'ERROR'], ['IST0162', 'WARNING']]);
    const onlyWarning = computeStatus(input({ findings: [warning] }));
    assert.equal(cond(onlyWarning, 'Accepted').status, 'True');
    assert.equal(onlyWarning.validationMessages!.length, 1);
  });

  it('bounds validation messages in number and length', () => {
    const many = Array.from({ length: 50 }, (_, i) => finding('ReferencedResourceNotFound', vs, `spec.http[${i}]`, `Referenced host not found: "h${i}${'y'.repeat(2000)}"`));
    const s = computeStatus(input({ findings: many }));
    assert.equal(s.validationMessages!.length, MAX_VALIDATION_MESSAGES);
    assert.ok(s.validationMessages!.every((m) => m.description.length <= MAX_STATUS_TEXT));
    assert.ok(cond(s, 'Accepted').message.length <= MAX_STATUS_TEXT);
    assert.match(cond(s, 'Accepted').message, /and 49 more/);
  });

  it('lastTransitionTime moves only when a condition\'s status does', () => {
    const first = computeStatus(input({ proxies: { affected: 2, upToDate: 1, rejected: 0 }, now: T0 }));
    const still = computeStatus(input({ proxies: { affected: 3, upToDate: 1, rejected: 0 }, previous: first, now: T1 }));
    assert.equal(cond(still, 'Reconciled').lastTransitionTime, T0, 'False to False');
    const done = computeStatus(input({ previous: still, now: T1 }));
    assert.equal(cond(done, 'Reconciled').lastTransitionTime, T1, 'False to True');
    assert.equal(cond(done, 'Accepted').lastTransitionTime, T0, 'Accepted stayed True');
  });
});

describe('status comparison (write or not)', () => {
  it('ignores lastTransitionTime and fields meshd does not write; sees any other difference', () => {
    const a = computeStatus(input({ now: T0 }));
    const stored = JSON.parse(JSON.stringify({ ...a, conditions: a.conditions.map((c) => ({ ...c, lastTransitionTime: T1 })), somethingElse: 1 })) as unknown;
    assert.ok(sameStatus(stored, a));
    assert.ok(!sameStatus(stored, computeStatus(input({ proxies: { affected: 2, upToDate: 1, rejected: 0 } }))));
    assert.ok(!sameStatus(stored, computeStatus(input({ generation: 4 }))));
    assert.ok(!sameStatus(undefined, a), 'no status yet');
    // An empty validationMessages list equals none.
    assert.ok(sameStatus({ ...(stored as object), validationMessages: [] }, a));
  });
});

describe('write rate: token bucket', () => {
  it('allows a burst, then the rate', () => {
    let now = 0;
    const b = new TokenBucket(20, 5, () => now);
    let taken = 0;
    while (b.take()) taken++;
    assert.equal(taken, 5, 'the burst');
    assert.equal(b.waitMs(), 50, 'one token per 50 ms at 20/s');
    now += 49;
    assert.equal(b.take(), false);
    now += 1;
    assert.equal(b.take(), true);
    now += 10_000;
    taken = 0;
    while (b.take()) taken++;
    assert.equal(taken, 5, 'a quiet time refills the burst only');
  });
});

describe('which proxies an object affects', () => {
  const yaml = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: ingress, namespace: gw }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: mesh-only, namespace: apps, generation: 1 }
spec: { hosts: [reviews], exportTo: ["."], http: [{ route: [{ destination: { host: reviews } }] }] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: edge, namespace: gw, generation: 1 }
spec: { hosts: ["*"], gateways: [ingress], http: [{ route: [{ destination: { host: reviews.apps.svc.cluster.local } }] }] }
`;
  it('counts sidecars of the namespaces a VirtualService is exported to, and gateway proxies its Gateway selects', async () => {
    const store = new ConfigStore();
    store.replaceSource('t', parseYamlText(yaml, 't.yaml').objects);
    const generator = new ConfigGenerator();
    generator.update(buildSnapshot(store, 'cluster.local'));
    const s = generator.snapshot!;
    const hooks = { onSent: () => undefined, onAck: () => undefined, onNack: () => undefined, onStaleNonce: () => undefined, onSecretRefused: () => undefined };
    const sink = { write: async (): Promise<void> => undefined };
    const conn = (id: string, labels: Record<string, string>) => new Connection(parseProxy(id, { LABELS: labels, INTERCEPTION_MODE: 'NONE' }), 'sotw', generator, sink, hooks, 'meshd');
    const conns = [conn('sidecar~10.0.0.1~a-1.apps~apps.svc.cluster.local', { app: 'a' }), conn('sidecar~10.0.0.2~b-1.other~other.svc.cluster.local', { app: 'b' }), conn('router~10.0.0.3~gw-1.gw~gw.svc.cluster.local', { istio: 'ingressgateway' }), conn('sidecar~10.0.0.4~new-1.apps~apps.svc.cluster.local', { app: 'n' })];
    // Each asks for clusters; the first three acknowledge them, the fourth is still connecting.
    for (const c of conns) c.onSotwRequest(TypeUrl.Cluster, [], '', '', undefined);
    await Promise.all(conns.map((c) => c.flush()));
    for (const c of conns.slice(0, 3)) {
      const d = c.watches.get(TypeUrl.Cluster)!.delivery;
      c.onSotwRequest(TypeUrl.Cluster, [], d.lastNonce, d.lastVersion, undefined);
    }
    const index = DistributionIndex.of(conns, s.version);
    assert.equal(index.proxies, 3);
    const find = (name: string) => s.config.virtualServices.find((v) => v.metadata.name === name) as VirtualServiceObject;
    assert.deepEqual(index.counts(find('mesh-only'), s.version, s.config), { affected: 1, upToDate: 1, rejected: 0 }, 'the apps sidecar (not the other namespace\'s)');
    assert.deepEqual(index.counts(find('edge'), s.version, s.config), { affected: 1, upToDate: 1, rejected: 0 }, 'the gateway proxy');
    assert.equal(index.counts(s.config.gateways[0]!, s.version, s.config).affected, 1);
    // A generation that only a later snapshot holds: not up to date yet.
    assert.deepEqual(index.counts(find('mesh-only'), s.version + 1, s.config), { affected: 1, upToDate: 0, rejected: 0 });
  });
});
