// The Telemetry API's model and resolution: which Telemetries apply to a proxy (root <
// namespace < workload, targetRef for gateways), the mesh config's telemetry providers
// validated field by field, and how the levels merge into access loggers and tracing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseMeshConfig, MeshConfigError } from '../../src/model/mesh-config.js';
import { parseMeshObject, type TelemetryObject } from '../../src/model/objects.js';
import { telemetriesFor } from '../../src/model/telemetry.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { proxyTelemetry } from '../../src/translate/telemetry.js';

function telemetry(namespace: string, name: string, spec: Record<string, unknown>, creationTimestamp?: string): TelemetryObject {
  const r = parseMeshObject({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace, ...(creationTimestamp ? { creationTimestamp } : {}) }, spec });
  assert.ok(r.ok === true, JSON.stringify(r));
  return r.value as TelemetryObject;
}

describe('Telemetry resolution', () => {
  const all = [
    telemetry('istio-system', 'mesh', {}),
    telemetry('istio-system', 'root-selector', { selector: { matchLabels: { app: 'web' } } }),
    telemetry('shop', 'ns-new', {}, '2024-02-01T00:00:00Z'),
    telemetry('shop', 'ns-old', {}, '2024-01-01T00:00:00Z'),
    telemetry('shop', 'web', { selector: { matchLabels: { app: 'web' } } }),
    telemetry('shop', 'gw', { targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' }] }),
  ];
  const names = (ts: TelemetryObject[]): string[] => ts.map((t) => `${t.metadata.namespace}/${t.metadata.name}`);

  it('root, then the oldest namespace-wide one, then the workload one; root selectors only in the root namespace', () => {
    assert.deepEqual(names(telemetriesFor(all, { namespace: 'shop', labels: { app: 'web' }, type: 'sidecar' }, 'istio-system')), ['istio-system/mesh', 'shop/ns-old', 'shop/web']);
    assert.deepEqual(names(telemetriesFor(all, { namespace: 'other', labels: { app: 'web' }, type: 'sidecar' }, 'istio-system')), ['istio-system/mesh']);
  });

  it('targetRef selects the gateway proxies of that Gateway, not sidecars with the same label', () => {
    const labels = { 'gateway.networking.k8s.io/gateway-name': 'edge' };
    assert.deepEqual(names(telemetriesFor(all, { namespace: 'shop', labels, type: 'router' }, 'istio-system')), ['istio-system/mesh', 'shop/ns-old', 'shop/gw']);
    assert.deepEqual(names(telemetriesFor(all, { namespace: 'shop', labels, type: 'sidecar' }, 'istio-system')), ['istio-system/mesh', 'shop/ns-old']);
  });

  it('refuses what Istio refuses, naming the field', () => {
    const r = parseMeshObject({ apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'x', namespace: 'a' }, spec: { selector: { matchLabels: { a: 'b' } }, targetRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'g' } } });
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map((e) => e.field), ['spec.selector']);
  });
});

describe('mesh config telemetry providers', () => {
  it('validates each kind field by field, with defaults', () => {
    const m = parseMeshConfig(
      [
        'extensionProviders:',
        '- {name: z, zipkin: {service: zipkin.tracing.svc.cluster.local, port: "9411"}}',
        '- {name: o, opentelemetry: {service: tracing/otel.tracing.svc.cluster.local, port: 4317}}',
        '- {name: f, envoyFileAccessLog: {path: /dev/stdout, logFormat: {labels: {a: "%PROTOCOL%"}}}}',
      ].join('\n'),
      'test',
    ).config;
    assert.deepEqual(m.extensionProviders, [
      { name: 'z', kind: 'zipkin', settings: { service: 'zipkin.tracing.svc.cluster.local', port: 9411, path: '/api/v2/spans', enable64bitTraceId: false } },
      { name: 'o', kind: 'opentelemetry', settings: { service: 'tracing/otel.tracing.svc.cluster.local', port: 4317, transport: { kind: 'grpc', initialMetadata: [] } } },
      { name: 'f', kind: 'envoyFileAccessLog', settings: { path: '/dev/stdout', logFormat: { labels: { a: '%PROTOCOL%' } } } },
    ]);
  });

  it('names the bad field', () => {
    assert.throws(() => parseMeshConfig('extensionProviders:\n- {name: z, zipkin: {service: zipkin, port: 0}}\n', 'test'), (e: MeshConfigError) => e.problems.some((p) => p.startsWith('extensionProviders[0].zipkin.port: expected a port')));
    assert.throws(() => parseMeshConfig('extensionProviders:\n- {name: f, envoyFileAccessLog: {path: /x, logFormat: {text: a, labels: {}}}}\n', 'test'), (e: MeshConfigError) => e.problems.some((p) => p.includes('envoyFileAccessLog.logFormat') && p.includes('exactly one of text and labels')));
    assert.throws(() => parseMeshConfig('extensionProviders:\n- {name: o, opentelemetry: {service: a.b, port: 1, grpc: {}, http: {path: /v1/traces}}}\n', 'test'), (e: MeshConfigError) => e.problems.some((p) => p.includes('at most one of grpc and http')));
  });
});

describe('Telemetry merging (translate/telemetry.ts)', () => {
  function snapshotWith(mesh: string, objects: TelemetryObject[]) {
    const store = new ConfigStore();
    store.replaceSource('t', objects);
    return buildSnapshot(store, 'cluster.local', undefined, parseMeshConfig(mesh, 'test').config).snapshot;
  }
  const paths = (logs: unknown[] | undefined): string[] => (logs ?? []).map((l) => (l as { typed_config: { path: string } }).typed_config.path);

  it('without a Telemetry the mesh config accessLogFile applies; with one, the Telemetry decides', () => {
    const legacy = snapshotWith('accessLogFile: /legacy.log\n', []);
    assert.deepEqual(paths(proxyTelemetry(legacy, { type: 'sidecar', namespace: 'a', labels: {} }).client.logs), ['/legacy.log']);
    const s = snapshotWith('accessLogFile: /legacy.log\n', [telemetry('istio-system', 'mesh', { accessLogging: [{ providers: [{ name: 'envoy' }] }] })]);
    assert.deepEqual(paths(proxyTelemetry(s, { type: 'sidecar', namespace: 'a', labels: {} }).client.logs), ['/dev/stdout']);
  });

  it('a workload entry without providers disables its parent\'s; match mode picks the side; the most specific provider list wins', () => {
    const mesh = 'extensionProviders:\n- {name: other, envoyFileAccessLog: {path: /other.log}}\n';
    const s = snapshotWith(mesh, [
      telemetry('istio-system', 'mesh', { accessLogging: [{ providers: [{ name: 'envoy' }] }] }),
      telemetry('a', 'quiet', { selector: { matchLabels: { app: 'quiet' } }, accessLogging: [{ disabled: true }] }),
      telemetry('a', 'in', { selector: { matchLabels: { app: 'in' } }, accessLogging: [{ match: { mode: 'SERVER' }, disabled: true }] }),
      telemetry('a', 'swap', { selector: { matchLabels: { app: 'swap' } }, accessLogging: [{ providers: [{ name: 'other' }] }] }),
    ]);
    const of = (app: string) => proxyTelemetry(s, { type: 'sidecar', namespace: 'a', labels: { app } });
    assert.deepEqual([paths(of('quiet').client.logs), paths(of('quiet').server.logs)], [[], []]);
    assert.deepEqual([paths(of('in').client.logs), paths(of('in').server.logs)], [['/dev/stdout'], []]);
    assert.deepEqual(paths(of('swap').client.logs), ['/other.log']);
    assert.deepEqual(paths(of('web').server.logs), ['/dev/stdout']);
  });

  it('tracing fields override one by one; sampling falls back to defaultConfig.tracing.sampling, then 1%', () => {
    const mesh = 'defaultConfig: {tracing: {sampling: 7}}\nextensionProviders:\n- {name: z, zipkin: {service: zipkin.t.svc.cluster.local, port: 9411}}\n';
    const zipkin = parseMeshObject({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'zipkin', namespace: 't' }, spec: { clusterIP: '10.0.0.1', ports: [{ name: 'http', port: 9411 }] } });
    assert.ok(zipkin.ok === true);
    const store = new ConfigStore();
    store.replaceSource('t', [
      zipkin.value,
      telemetry('istio-system', 'mesh', { tracing: [{ providers: [{ name: 'z' }], customTags: { a: { literal: { value: 'b' } } } }] }),
      telemetry('x', 'ns', { tracing: [{ randomSamplingPercentage: 50 }] }),
      telemetry('x', 'off', { selector: { matchLabels: { app: 'off' } }, tracing: [{ disableSpanReporting: true }] }),
    ]);
    const s = buildSnapshot(store, 'cluster.local', undefined, parseMeshConfig(mesh, 'test').config).snapshot;
    const tracing = (ns: string, app: string) => proxyTelemetry(s, { type: 'sidecar', namespace: ns, labels: { app } }).client.tracing as { random_sampling: { value: number }; custom_tags: unknown[] } | undefined;
    assert.equal(tracing('y', 'web')!.random_sampling.value, 7);
    assert.equal(tracing('x', 'web')!.random_sampling.value, 50);
    assert.deepEqual(tracing('x', 'web')!.custom_tags, [{ tag: 'a', literal: { value: 'b' } }]);
    assert.equal(tracing('x', 'off'), undefined);
    assert.deepEqual(proxyTelemetry(s, { type: 'sidecar', namespace: 'y', labels: {} }).collectors.map((c) => c.svc.hostname), ['zipkin.t.svc.cluster.local']);
  });
});
