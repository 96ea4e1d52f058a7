/**
 * The ADS protocol as a proxy sees it: the real `meshd serve` driven by a raw xDS
 * client, state-of-the-world and delta. Each test starts its own meshd (stopped when
 * the test ends) so that counters, config edits and connections never leak between tests.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { serviceYaml, startMeshd, type MeshdProcess } from '../support/meshd.js';
import {
  connectAds,
  deltaAck,
  istioNode,
  resourceNames,
  sotwAck,
  TypeUrl,
  type AdsStream,
  type DecodedResponse,
  type DeltaStream,
  type SotwStream,
} from '../support/ads-client.js';

// ---- fixture -------------------------------------------------------------------

const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';
const RATINGS_HTTP = 'outbound|9080||ratings.default.svc.cluster.local';
const RATINGS_GRPC = 'outbound|9090||ratings.default.svc.cluster.local';
const DETAILS = 'outbound|9080||details.other.svc.cluster.local';
const EXTRA = 'outbound|8000||extra.default.svc.cluster.local';
const BUILTIN = ['BlackHoleCluster', 'InboundPassthroughCluster', 'PassthroughCluster'];
const ALL_CLUSTERS = [...BUILTIN, DETAILS, RATINGS_HTTP, RATINGS_GRPC, REVIEWS].sort();
const OUTBOUND = [DETAILS, RATINGS_HTTP, RATINGS_GRPC, REVIEWS].sort();

function reviewsYaml(extraReadyIp?: string): string {
  return serviceYaml({
    name: 'reviews',
    ports: [{ name: 'http', port: 9080 }],
    endpoints: [{ ip: '10.1.0.1' }, { ip: '10.1.0.2' }, { ip: '10.1.0.3', ready: false }, ...(extraReadyIp ? [{ ip: extraReadyIp }] : [])],
  });
}

/** Two ports; the EndpointSlice lists them in the other order, with other numbers, so only matching by name is right. */
const RATINGS_YAML = `apiVersion: v1
kind: Service
metadata:
  name: ratings
  namespace: default
spec:
  selector:
    app: ratings
  ports:
  - name: http
    port: 9080
    targetPort: 8080
  - name: grpc
    port: 9090
    targetPort: 7070
    appProtocol: grpc
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ratings-abc
  namespace: default
  labels:
    kubernetes.io/service-name: ratings
addressType: IPv4
ports:
- name: grpc
  port: 7070
- name: http
  port: 8080
endpoints:
- addresses: ["10.2.0.1"]
  conditions:
    ready: true
- addresses: ["10.2.0.2"]
  conditions:
    ready: false
- addresses: ["10.2.0.3"]
`;

const DETAILS_YAML = serviceYaml({ name: 'details', namespace: 'other', ports: [{ name: 'http', port: 9080 }], endpoints: [{ ip: '10.3.0.1' }] });
const EXTRA_YAML = serviceYaml({ name: 'extra', ports: [{ name: 'http', port: 8000 }], endpoints: [{ ip: '10.4.0.1' }] });

const FILES: Record<string, string> = { 'reviews.yaml': reviewsYaml(), 'ratings.yaml': RATINGS_YAML, 'details.yaml': DETAILS_YAML };

const NODE = istioNode();
const NODE_ID = NODE.id;

// ---- helpers -------------------------------------------------------------------

const meshds = new Set<MeshdProcess>();
const streams = new Set<AdsStream<object>>();

async function meshd(files: Record<string, string> = FILES): Promise<MeshdProcess> {
  const m = await startMeshd({ files });
  meshds.add(m);
  return m;
}

function sotw(m: MeshdProcess): SotwStream {
  const s = connectAds(m.xdsAddress);
  streams.add(s);
  return s;
}

function delta(m: MeshdProcess): DeltaStream {
  const s = connectAds(m.xdsAddress, { delta: true });
  streams.add(s);
  return s;
}

// Every test's streams and meshd processes end with the test (each meshd holds an inotify instance).
afterEach(async () => {
  const open = [...streams];
  streams.clear();
  await Promise.all(open.map((s) => s.close()));
  const running = [...meshds];
  meshds.clear();
  await Promise.all(running.map((m) => m.stop()));
});

/** The value of one sample in Prometheus text output; 0 when the series does not exist yet. */
function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line.trim());
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) got[k!] = v!;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

async function metrics(m: MeshdProcess): Promise<string> {
  const r = await m.monitoring('/metrics');
  assert.equal(r.status, 200);
  return r.body;
}

async function metric(m: MeshdProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await metrics(m), name, labels);
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface TypeSync {
  status: string;
  sent?: string;
  sentNonce?: string;
  acked?: string;
  ackedNonce?: string;
  lastNack?: { error: string; version: string; nonce: string };
}
interface SyncEntry {
  proxy: string;
  connection: string;
  protocol: string;
  types: Record<string, TypeSync>;
}

async function syncz(m: MeshdProcess): Promise<SyncEntry[]> {
  const r = await m.monitoring('/debug/syncz');
  assert.equal(r.status, 200);
  return JSON.parse(r.body) as SyncEntry[];
}

/** The sync state of `type` (cds, eds...) for the only connection of `proxyId`. */
async function typeSync(m: MeshdProcess, type: string, proxyId = NODE_ID): Promise<TypeSync | undefined> {
  const entries = (await syncz(m)).filter((e) => e.proxy === proxyId);
  assert.ok(entries.length <= 1, `expected at most one connection of ${proxyId}, got ${entries.length}`);
  return entries[0]?.types[type];
}

function byName(r: DecodedResponse): Map<string, DecodedResponse['resources'][number]> {
  return new Map(r.resources.map((x) => [x.name, x]));
}

/** host:port of every endpoint of a decoded ClusterLoadAssignment, sorted. */
function endpointsOf(body: Record<string, unknown>): string[] {
  type Cla = { endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } } }[] }[] };
  const out: string[] = [];
  for (const locality of (body as Cla).endpoints ?? []) {
    for (const lb of locality.lb_endpoints ?? []) {
      const sa = lb.endpoint?.address?.socket_address;
      out.push(`${sa?.address}:${sa?.port_value}`);
    }
  }
  return out.sort();
}

/** Opens a SotW stream and completes the initial CDS exchange (request, response, ACK). */
async function sotwWithCds(m: MeshdProcess): Promise<{ s: SotwStream; cds: DecodedResponse }> {
  const s = sotw(m);
  s.send({ node: NODE, type_url: TypeUrl.Cluster });
  const cds = await s.next();
  assert.equal(cds.type_url, TypeUrl.Cluster);
  s.send(sotwAck(cds));
  return { s, cds };
}

async function deltaWithCds(m: MeshdProcess): Promise<{ d: DeltaStream; cds: DecodedResponse }> {
  const d = delta(m);
  d.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names_subscribe: [] });
  const cds = await d.next();
  assert.equal(cds.type_url, TypeUrl.Cluster);
  d.send(deltaAck(cds));
  return { d, cds };
}

// ---- 1. initial CDS and ACK --------------------------------------------------------

describe('initial wildcard CDS', () => {
  it('SotW: gets every cluster, a version and a nonce; the ACK gets no further response', async () => {
    const m = await meshd();
    const s = sotw(m);
    s.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names: [] });
    const r = await s.next();
    assert.equal(r.type_url, TypeUrl.Cluster);
    assert.deepEqual(resourceNames(r), ALL_CLUSTERS);
    assert.match(r.version_info, /\S/, 'version_info must not be empty');
    assert.match(r.nonce, /\S/, 'nonce must not be empty');
    for (const res of r.resources) {
      assert.equal(res.type_url, TypeUrl.Cluster);
      assert.equal(res.body.name, res.name);
    }
    const reviews = byName(r).get(REVIEWS)!.body as { type?: string; eds_cluster_config?: { service_name?: string } };
    assert.equal(reviews.type, 'EDS');
    assert.equal(reviews.eds_cluster_config?.service_name, REVIEWS);
    assert.equal((byName(r).get('PassthroughCluster')!.body as { type?: string }).type, 'ORIGINAL_DST');

    s.send(sotwAck(r));
    await s.expectNoResponse(1000);
    assert.equal(s.status, undefined, 'the stream must stay open');
  });

  it('delta: gets every cluster with a per-resource version; the ACK gets no further response', async () => {
    const m = await meshd();
    const d = delta(m);
    d.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names_subscribe: [] });
    const r = await d.next();
    assert.equal(r.type_url, TypeUrl.Cluster);
    assert.deepEqual(resourceNames(r), ALL_CLUSTERS);
    assert.match(r.nonce, /\S/);
    assert.deepEqual(r.removed_resources, []);
    for (const res of r.resources) {
      assert.match(res.version ?? '', /\S/, `${res.name} has no version`);
      assert.equal(res.body.name, res.name);
    }
    d.send(deltaAck(r));
    await d.expectNoResponse(1000);
  });
});

// ---- 2. NACK ---------------------------------------------------------------------

describe('NACK', () => {
  for (const protocol of ['sotw', 'delta'] as const) {
    it(`${protocol}: is recorded and counted, the same config is not resent, and a real change is pushed`, async () => {
      const m = await meshd();
      const s: AdsStream<object> = protocol === 'sotw' ? sotw(m) : delta(m);
      if (protocol === 'sotw') s.send({ node: NODE, type_url: TypeUrl.Cluster });
      else s.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names_subscribe: [] });
      const r = await s.next();
      const before = await metric(m, 'pilot_total_xds_rejects', { type: 'cds' });
      const message = 'cluster outbound|9080||reviews.default.svc.cluster.local: proto constraint validation failed (test NACK)';
      const error_detail = { code: grpc.status.INVALID_ARGUMENT, message };
      if (protocol === 'sotw') s.send({ type_url: TypeUrl.Cluster, version_info: '', response_nonce: r.nonce, error_detail, resource_names: [] });
      else s.send({ type_url: TypeUrl.Cluster, response_nonce: r.nonce, error_detail });

      const cds = await eventually('the NACK in /debug/syncz', async () => {
        const t = await typeSync(m, 'cds');
        return t?.lastNack ? t : undefined;
      });
      assert.equal(cds.lastNack!.error, message);
      assert.equal(cds.lastNack!.nonce, r.nonce);
      assert.equal(cds.status, 'STALE', 'a rejected push is not SYNCED');
      assert.equal(await metric(m, 'pilot_total_xds_rejects', { type: 'cds' }), before + 1);

      await s.expectNoResponse(1000);

      m.writeConfig('extra.yaml', EXTRA_YAML);
      const next = await s.next(5000);
      assert.equal(next.type_url, TypeUrl.Cluster);
      assert.notEqual(next.nonce, r.nonce);
      if (protocol === 'sotw') {
        assert.deepEqual(resourceNames(next), [...ALL_CLUSTERS, EXTRA].sort());
        assert.notEqual(next.version_info, r.version_info);
      } else {
        assert.deepEqual(resourceNames(next), [EXTRA]);
      }
    });
  }
});

// ---- 3. stale nonce -----------------------------------------------------------------

describe('stale nonce', () => {
  it('SotW: a request with an old nonce is ignored, even with a new subscription, and counted', async () => {
    const m = await meshd();
    const s = sotw(m);
    s.send({ node: NODE, type_url: TypeUrl.ClusterLoadAssignment, resource_names: [REVIEWS] });
    const r1 = await s.next();
    assert.deepEqual(resourceNames(r1), [REVIEWS]);
    s.send(sotwAck(r1, [REVIEWS, DETAILS]));
    const r2 = await s.next();
    assert.deepEqual(resourceNames(r2), [DETAILS], 'only the newly subscribed name');
    assert.notEqual(r2.nonce, r1.nonce);

    const before = await metric(m, 'pilot_xds_expired_nonce', { type: 'eds' });
    // Stale: answers r1 although r2 was sent since; the change of names must be ignored too.
    s.send({ type_url: TypeUrl.ClusterLoadAssignment, version_info: r1.version_info, response_nonce: r1.nonce, resource_names: [REVIEWS, DETAILS, RATINGS_HTTP] });
    await s.expectNoResponse(1000);
    assert.equal(await metric(m, 'pilot_xds_expired_nonce', { type: 'eds' }), before + 1);
    assert.equal((await typeSync(m, 'eds'))?.status, 'STALE');

    s.send(sotwAck(r2, [REVIEWS, DETAILS]));
    await eventually('eds SYNCED', async () => ((await typeSync(m, 'eds'))?.status === 'SYNCED' ? true : undefined));
    await s.expectNoResponse(500);
  });

  it('delta: an ACK of an old nonce does not acknowledge the newer push, and is counted', async () => {
    const m = await meshd();
    const { d, cds: r1 } = await deltaWithCds(m);
    await eventually('cds SYNCED', async () => ((await typeSync(m, 'cds'))?.status === 'SYNCED' ? true : undefined));
    m.writeConfig('extra.yaml', EXTRA_YAML);
    const r2 = await d.next(5000);
    assert.deepEqual(resourceNames(r2), [EXTRA]);

    const before = await metric(m, 'pilot_xds_expired_nonce', { type: 'cds' });
    d.send({ type_url: TypeUrl.Cluster, response_nonce: r1.nonce });
    await d.expectNoResponse(1000);
    assert.equal(await metric(m, 'pilot_xds_expired_nonce', { type: 'cds' }), before + 1);
    const t = await typeSync(m, 'cds');
    assert.equal(t?.status, 'STALE');
    assert.equal(t?.ackedNonce, r1.nonce);

    d.send(deltaAck(r2));
    await eventually('cds SYNCED', async () => ((await typeSync(m, 'cds'))?.status === 'SYNCED' ? true : undefined));
  });

  // A proxy that reconnects (to a restarted or another meshd) may still carry the nonce it
  // last answered; on a new stream that is not stale, and the proxy must get its config
  // (istiod treats it as a reconnect).
  it('SotW: the first request on a new stream is answered even if it carries a nonce from an earlier stream', async () => {
    const m = await meshd();
    const s = sotw(m);
    s.send({ node: NODE, type_url: TypeUrl.Cluster, version_info: 'from-earlier-stream', response_nonce: 'nonce-from-earlier-stream' });
    const r = await s.next(2000);
    assert.deepEqual(resourceNames(r), ALL_CLUSTERS);
  });

  it('delta: the first request on a new stream is answered even if it carries a nonce from an earlier stream', async () => {
    const m = await meshd();
    const d = delta(m);
    d.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names_subscribe: [], response_nonce: 'nonce-from-earlier-stream' });
    const r = await d.next(2000);
    assert.deepEqual(resourceNames(r), ALL_CLUSTERS);
  });
});

// ---- 4. EDS and RDS by name ---------------------------------------------------------

describe('resources by name', () => {
  it('SotW: EDS returns exactly the requested assignments, with ready endpoints on the ports matched by name', async () => {
    const m = await meshd();
    const s = sotw(m);
    s.send({ node: NODE, type_url: TypeUrl.ClusterLoadAssignment, resource_names: [REVIEWS, RATINGS_GRPC] });
    const r = await s.next();
    assert.equal(r.type_url, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(resourceNames(r), [REVIEWS, RATINGS_GRPC].sort());
    const got = byName(r);
    assert.equal(got.get(REVIEWS)!.body.cluster_name, REVIEWS);
    assert.deepEqual(endpointsOf(got.get(REVIEWS)!.body), ['10.1.0.1:9080', '10.1.0.2:9080'], '10.1.0.3 is not ready');
    // The grpc port's endpoints listen on the slice port named "grpc" (7070), not on the first one listed.
    assert.deepEqual(endpointsOf(got.get(RATINGS_GRPC)!.body), ['10.2.0.1:7070', '10.2.0.3:7070'], 'ready (or unset) endpoints on 7070');

    s.send(sotwAck(r, [REVIEWS, RATINGS_GRPC, RATINGS_HTTP]));
    const r2 = await s.next();
    assert.deepEqual(resourceNames(r2), [RATINGS_HTTP]);
    assert.deepEqual(endpointsOf(r2.resources[0]!.body), ['10.2.0.1:8080', '10.2.0.3:8080']);
  });

  it('SotW: an unknown EDS name gets an empty ClusterLoadAssignment, an unknown RDS name an empty RouteConfiguration', async () => {
    const m = await meshd();
    const s = sotw(m);
    const unknownCluster = 'outbound|1234||nosuch.default.svc.cluster.local';
    s.send({ node: NODE, type_url: TypeUrl.ClusterLoadAssignment, resource_names: [unknownCluster] });
    const eds = await s.next();
    assert.equal(eds.type_url, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(resourceNames(eds), [unknownCluster]);
    assert.equal(eds.resources[0]!.body.cluster_name, unknownCluster);
    assert.deepEqual(endpointsOf(eds.resources[0]!.body), []);
    s.send(sotwAck(eds, [unknownCluster]));

    s.send({ type_url: TypeUrl.RouteConfiguration, resource_names: ['no-such-route'] });
    const rds = await s.next();
    assert.equal(rds.type_url, TypeUrl.RouteConfiguration);
    assert.deepEqual(resourceNames(rds), ['no-such-route']);
    assert.equal(rds.resources[0]!.body.name, 'no-such-route');
    assert.deepEqual(rds.resources[0]!.body.virtual_hosts ?? [], []);
  });

  it('delta: subscribing by name returns those assignments with versions; unknown names get empty ones', async () => {
    const m = await meshd();
    const d = delta(m);
    const unknownCluster = 'outbound|1234||nosuch.default.svc.cluster.local';
    d.send({ node: NODE, type_url: TypeUrl.ClusterLoadAssignment, resource_names_subscribe: [REVIEWS, RATINGS_HTTP, unknownCluster] });
    const r = await d.next();
    assert.deepEqual(resourceNames(r), [RATINGS_HTTP, REVIEWS, unknownCluster].sort());
    const got = byName(r);
    assert.deepEqual(endpointsOf(got.get(REVIEWS)!.body), ['10.1.0.1:9080', '10.1.0.2:9080']);
    assert.deepEqual(endpointsOf(got.get(RATINGS_HTTP)!.body), ['10.2.0.1:8080', '10.2.0.3:8080']);
    assert.deepEqual(endpointsOf(got.get(unknownCluster)!.body), []);
    for (const res of r.resources) assert.match(res.version ?? '', /\S/);
    d.send(deltaAck(r));

    d.send({ type_url: TypeUrl.RouteConfiguration, resource_names_subscribe: ['no-such-route'] });
    const rds = await d.next();
    assert.deepEqual(resourceNames(rds), ['no-such-route']);
  });
});

// ---- 5. endpoint-only change ---------------------------------------------------------

describe('EndpointSlice-only change', () => {
  it('SotW: pushes only the changed ClusterLoadAssignment, and no CDS or LDS', async () => {
    const m = await meshd();
    const { s } = await sotwWithCds(m);
    s.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names: OUTBOUND });
    const eds = await s.next();
    assert.deepEqual(resourceNames(eds), OUTBOUND);
    s.send(sotwAck(eds, OUTBOUND));
    s.send({ type_url: TypeUrl.Listener, resource_names: [] });
    const lds = await s.next();
    assert.equal(lds.type_url, TypeUrl.Listener);
    assert.ok(lds.resources.length > 0, 'a sidecar gets listeners');
    s.send(sotwAck(lds));
    await s.expectNoResponse(300);

    m.writeConfig('reviews.yaml', reviewsYaml('10.1.0.4'));
    const r = await s.next(5000);
    assert.equal(r.type_url, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(resourceNames(r), [REVIEWS]);
    assert.deepEqual(endpointsOf(r.resources[0]!.body), ['10.1.0.1:9080', '10.1.0.2:9080', '10.1.0.4:9080']);
    assert.notEqual(r.version_info, eds.version_info);
    s.send(sotwAck(r, OUTBOUND));
    await s.expectNoResponse(1000);
  });

  it('delta: the EDS response carries exactly one resource, and nothing else is pushed', async () => {
    const m = await meshd();
    const { d } = await deltaWithCds(m);
    d.send({ type_url: TypeUrl.ClusterLoadAssignment, resource_names_subscribe: OUTBOUND });
    const eds = await d.next();
    assert.deepEqual(resourceNames(eds), OUTBOUND);
    d.send(deltaAck(eds));
    d.send({ type_url: TypeUrl.Listener, resource_names_subscribe: [] });
    const lds = await d.next();
    assert.equal(lds.type_url, TypeUrl.Listener);
    d.send(deltaAck(lds));
    await d.expectNoResponse(300);

    m.writeConfig('reviews.yaml', reviewsYaml('10.1.0.4'));
    const r = await d.next(5000);
    assert.equal(r.type_url, TypeUrl.ClusterLoadAssignment);
    assert.equal(r.resources.length, 1);
    assert.equal(r.resources[0]!.name, REVIEWS);
    assert.notEqual(r.resources[0]!.version, byName(eds).get(REVIEWS)!.version);
    assert.deepEqual(r.removed_resources, []);
    assert.deepEqual(endpointsOf(r.resources[0]!.body), ['10.1.0.1:9080', '10.1.0.2:9080', '10.1.0.4:9080']);
    d.send(deltaAck(r));
    await d.expectNoResponse(1000);
  });
});

// ---- 6. delta removals and reconnects ---------------------------------------------------

describe('delta removals and reconnects', () => {
  it('removing a Service yields removed_resources with its cluster', async () => {
    const m = await meshd();
    const { d, cds } = await deltaWithCds(m);
    assert.deepEqual(resourceNames(cds), ALL_CLUSTERS);
    m.removeConfig('details.yaml');
    const r = await d.next(5000);
    assert.equal(r.type_url, TypeUrl.Cluster);
    assert.deepEqual(r.removed_resources, [DETAILS]);
    assert.deepEqual(r.resources, []);
    d.send(deltaAck(r));
    await d.expectNoResponse(1000);
  });

  it('a reconnect with initial_resource_versions gets only what differs', async () => {
    const m = await meshd();
    const { d, cds } = await deltaWithCds(m);
    const versions: Record<string, string> = Object.fromEntries(cds.resources.map((x) => [x.name, x.version ?? '']));
    await d.close();

    // Same versions: nothing to send.
    const same = delta(m);
    same.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names_subscribe: [], initial_resource_versions: versions });
    const r1 = await same.next();
    assert.equal(r1.type_url, TypeUrl.Cluster);
    assert.deepEqual(r1.resources, [], 'nothing differs');
    assert.deepEqual(r1.removed_resources, []);
    same.send(deltaAck(r1));
    await same.expectNoResponse(500);
    await same.close();

    // One stale version: only that resource.
    const stale = delta(m);
    stale.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names_subscribe: [], initial_resource_versions: { ...versions, [REVIEWS]: 'stale-version' } });
    const r2 = await stale.next();
    assert.deepEqual(resourceNames(r2), [REVIEWS]);
    assert.equal(r2.resources[0]!.version, versions[REVIEWS]);
    assert.deepEqual(r2.removed_resources, []);
    stale.send(deltaAck(r2));
    await stale.expectNoResponse(500);
    await stale.close();

    // A resource the proxy still has but that no longer exists: removed.
    const gone = delta(m);
    const ghost = 'outbound|9080||ghost.default.svc.cluster.local';
    gone.send({ node: NODE, type_url: TypeUrl.Cluster, resource_names_subscribe: [], initial_resource_versions: { ...versions, [ghost]: 'v1' } });
    const removedIn: DecodedResponse[] = [];
    const deadline = Date.now() + 3000;
    while (!removedIn.some((r) => r.removed_resources.includes(ghost)) && Date.now() < deadline) {
      const r = await gone.next(Math.max(1, deadline - Date.now()));
      assert.deepEqual(r.resources, [], `only the removal is owed, got ${resourceNames(r).join(', ')}`);
      removedIn.push(r);
      gone.send(deltaAck(r));
    }
    assert.ok(removedIn.some((r) => r.removed_resources.includes(ghost)), 'the unknown resource is removed');
  });
});

// ---- 7. invalid streams ---------------------------------------------------------------

describe('invalid requests end the stream with INVALID_ARGUMENT; an unknown type does not', () => {
  for (const protocol of ['sotw', 'delta'] as const) {
    it(`${protocol}: malformed node id`, async () => {
      const m = await meshd();
      const s: AdsStream<object> = protocol === 'sotw' ? sotw(m) : delta(m);
      s.send({ node: { id: 'not-a-node' }, type_url: TypeUrl.Cluster });
      const st = await s.ended(3000);
      assert.equal(st.code, grpc.status.INVALID_ARGUMENT, `got ${grpc.status[st.code]}: ${st.details}`);
      assert.match(st.details, /not-a-node/);
      assert.match(st.details, /sidecar~/, 'the message shows the expected format');
      await assert.rejects(s.next(200), /ended \(INVALID_ARGUMENT/);
      assert.deepEqual(await syncz(m), [], 'no connection is kept');
    });

    it(`${protocol}: unknown type_url is answered with no resources and the stream goes on`, async () => {
      const m = await meshd();
      const unknown = 'type.googleapis.com/envoy.config.nosuch.v3.Thing';
      let s: AdsStream<object>;
      if (protocol === 'sotw') {
        // After a good exchange: the connection exists, and it stays.
        s = (await sotwWithCds(m)).s;
        s.send({ type_url: unknown, resource_names: [] });
      } else {
        s = delta(m);
        s.send({ node: NODE, type_url: unknown });
      }
      const r = await s.next(3000);
      assert.equal(r.type_url, unknown);
      assert.deepEqual(r.resources, []);
      await s.expectNoResponse(300);
      assert.equal(s.status, undefined, 'the stream is still open');
      assert.equal((await syncz(m)).length, 1);
      assert.equal(await metric(m, 'pilot_xds'), 1);
      await s.close();
    });
  }
});

// ---- 8. content-hash versions ------------------------------------------------------------

describe('versions are content hashes', () => {
  it('two meshd processes on the same config give the same CDS version_info and delta versions', async () => {
    const [a, b] = await Promise.all([meshd(), meshd()]);
    const cdsOf = async (m: MeshdProcess): Promise<{ sotw: DecodedResponse; delta: DecodedResponse }> => {
      const s = sotw(m);
      s.send({ node: NODE, type_url: TypeUrl.Cluster });
      const d = delta(m);
      d.send({ node: istioNode({ ip: '10.0.0.2', pod: 'app-2' }), type_url: TypeUrl.Cluster, resource_names_subscribe: [] });
      const out = { sotw: await s.next(), delta: await d.next() };
      await Promise.all([s.close(), d.close()]);
      return out;
    };
    const ra = await cdsOf(a);
    // Another config change history must not matter either: b sees an edit and its revert first.
    b.writeConfig('extra.yaml', EXTRA_YAML);
    await eventually('b to serve the extra service', async () => ((await b.monitoring('/debug/registryz')).body.includes('extra.default') ? true : undefined));
    b.removeConfig('extra.yaml');
    await eventually('b to drop the extra service', async () => (!(await b.monitoring('/debug/registryz')).body.includes('extra.default') ? true : undefined));
    const rb = await cdsOf(b);

    assert.match(ra.sotw.version_info, /\S/);
    assert.equal(ra.sotw.version_info, rb.sotw.version_info);
    assert.notEqual(ra.sotw.nonce, '');
    const versions = (r: DecodedResponse): Record<string, string> => Object.fromEntries(r.resources.map((x) => [x.name, x.version ?? '']));
    const va = versions(ra.delta);
    assert.deepEqual(Object.keys(va).sort(), ALL_CLUSTERS);
    assert.deepEqual(va, versions(rb.delta));
    assert.equal(new Set(Object.values(va)).size, ALL_CLUSTERS.length, 'different resources have different versions');
    assert.equal(ra.delta.system_version_info, rb.delta.system_version_info);

    // And a different content gives a different version.
    const c = await meshd({ ...FILES, 'extra.yaml': EXTRA_YAML });
    const rc = await cdsOf(c);
    assert.notEqual(rc.sotw.version_info, ra.sotw.version_info);
    assert.deepEqual(versions(rc.delta)[REVIEWS], va[REVIEWS], 'an unchanged cluster keeps its version');
  });
});

// ---- 9. debug endpoints -------------------------------------------------------------------

describe('debug and monitoring endpoints', () => {
  it('syncz goes STALE then SYNCED; config_dump, registryz, ready and metrics describe the proxy and mesh', async () => {
    const m = await meshd();
    assert.equal((await m.monitoring('/ready')).status, 200);

    const s = sotw(m);
    s.send({ node: NODE, type_url: TypeUrl.Cluster });
    const r = await s.next();
    const stale = await eventually('cds in syncz', async () => typeSync(m, 'cds'));
    assert.equal(stale.status, 'STALE', 'sent but not acknowledged');
    assert.equal(stale.sent, r.version_info);
    assert.equal(stale.sentNonce, r.nonce);

    s.send(sotwAck(r));
    const synced = await eventually('cds SYNCED', async () => {
      const t = await typeSync(m, 'cds');
      return t?.status === 'SYNCED' ? t : undefined;
    });
    assert.equal(synced.acked, r.version_info);
    assert.equal(synced.ackedNonce, r.nonce);
    const entry = (await syncz(m)).find((e) => e.proxy === NODE_ID)!;
    assert.equal(entry.protocol, 'sotw');

    const dump = await m.monitoring(`/debug/config_dump?proxyID=${encodeURIComponent(NODE_ID)}`);
    assert.equal(dump.status, 200);
    const parsed = JSON.parse(dump.body) as { proxy: string; configs: Record<string, { name: string; version: string; resource: Record<string, unknown> }[]> };
    assert.equal(parsed.proxy, NODE_ID);
    assert.deepEqual(parsed.configs.cds!.map((c) => c.name).sort(), ALL_CLUSTERS);
    assert.equal(parsed.configs.cds!.find((c) => c.name === REVIEWS)!.resource['@type'], TypeUrl.Cluster);
    const missing = await m.monitoring(`/debug/config_dump?proxyID=${encodeURIComponent('sidecar~10.9.9.9~nobody.default~default.svc.cluster.local')}`);
    assert.equal(missing.status, 404);

    const reg = await m.monitoring('/debug/registryz');
    assert.equal(reg.status, 200);
    const services = JSON.parse(reg.body) as { hostname: string; endpoints: Record<string, string[]> }[];
    assert.deepEqual(services.map((x) => x.hostname).sort(), ['details.other.svc.cluster.local', 'ratings.default.svc.cluster.local', 'reviews.default.svc.cluster.local']);
    assert.deepEqual(services.find((x) => x.hostname.startsWith('reviews'))!.endpoints['9080']!.sort(), ['10.1.0.1:9080', '10.1.0.2:9080']);

    const text = await metrics(m);
    assert.equal(metricValue(text, 'pilot_xds'), 1, 'one connected proxy');
    assert.ok(metricValue(text, 'pilot_xds_pushes', { type: 'cds' }) >= 1, 'a CDS push was counted');
    assert.equal(metricValue(text, 'pilot_services'), 3);

    await s.close();
    await eventually('pilot_xds back to 0', async () => ((await metric(m, 'pilot_xds')) === 0 ? true : undefined));
  });
});
