// DestinationRule resilience policies through a real Envoy sidecar: outlier detection that
// ejects a failing endpoint, and connection-pool limits that shed load with 503s, measured
// by the traffic that actually arrives.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { startMeshd, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess, type HttpResponse } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';

const REVIEWS = 'reviews.default.svc.cluster.local';
const LIMITED = 'limited.default.svc.cluster.local';
const UNLIMITED = 'unlimited.default.svc.cluster.local';
const VERSIONS = ['v1', 'v2', 'v3'] as const;
const IPS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
/** The reviews endpoint that answers every request with 500. */
const FAILING = 'v2';
/** One slow backend behind both the limited and the unlimited service. */
const SLOW_IP = '127.0.0.5';
const SLOW_MS = 300;
const EJECT_WITHIN_MS = 5000;

function pod(name: string, app: string, version: string, ip: string): string {
  return `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: default, labels: {app: ${app}, version: ${version}}}
spec: {serviceAccountName: ${app}}
status: {podIP: ${ip}, phase: Running}
`;
}

function service(name: string, app: string, servicePort: number, backendPort: number, endpoints: { ip: string; pod: string }[]): string {
  return `---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  selector: {app: ${app}}
  ports: [{name: http, port: ${servicePort}, targetPort: ${backendPort}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-a, namespace: default, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: http, port: ${backendPort}}]
endpoints:
${endpoints.map((e) => `- addresses: ["${e.ip}"]\n  targetRef: {kind: Pod, name: ${e.pod}, namespace: default}`).join('\n')}
`;
}

function meshYaml(servicePort: number, backendPort: number): string {
  return [
    service(
      'reviews',
      'reviews',
      servicePort,
      backendPort,
      VERSIONS.map((v, i) => ({ ip: IPS[i]!, pod: `reviews-${v}` })),
    ),
    ...VERSIONS.map((v, i) => pod(`reviews-${v}`, 'reviews', v, IPS[i]!)),
    // Two services selecting the same slow pod: one with a connection pool limit, one without.
    service('limited', 'slow', servicePort, backendPort, [{ ip: SLOW_IP, pod: 'slow-v1' }]),
    service('unlimited', 'slow', servicePort, backendPort, [{ ip: SLOW_IP, pod: 'slow-v1' }]),
    pod('slow-v1', 'slow', 'v1', SLOW_IP),
  ].join('');
}

const RULES = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: limited, namespace: default}
spec:
  host: limited
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
`;

describe('resilience policies through a real Envoy sidecar', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  const backends = new Map<string, Backend>();
  let servicePort: number;

  const get = (host: string, path = '/'): Promise<HttpResponse> =>
    httpGet(`http://127.0.0.1:${servicePort}${path}`, { headers: { host }, timeoutMs: 5000 });
  const cluster = (host: string): string => `outbound|${servicePort}||${host}`;
  const stat = async (name: string): Promise<number> => (await envoy.stats()).get(name) ?? 0;

  before(async () => {
    const backendPort = await freePort('127.0.0.2');
    servicePort = await freePort();
    for (const [i, v] of VERSIONS.entries()) {
      backends.set(
        v,
        await startHttpBackend(v, {
          host: IPS[i]!,
          port: backendPort,
          handler: (req, res) => {
            req.resume();
            res.writeHead(v === FAILING ? 500 : 200, { 'x-backend': v }).end(v);
          },
        }),
      );
    }
    backends.set(
      'slow',
      await startHttpBackend('slow', {
        host: SLOW_IP,
        port: backendPort,
        handler: (req, res) => {
          req.resume();
          setTimeout(() => res.writeHead(200, { 'x-backend': 'slow' }).end('slow'), SLOW_MS);
        },
      }),
    );
    meshd = await startMeshd({ files: { 'mesh.yaml': meshYaml(servicePort, backendPort), 'rules.yaml': RULES } });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'productpage-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'resilience' });
    for (const host of [LIMITED, UNLIMITED]) {
      await envoy.waitFor(async () => (await get(host).catch(() => undefined))?.status === 200, { what: `the route to ${host}`, timeoutMs: 10_000 });
    }
    // Envoy must hold all three reviews endpoints before the outlier test starts.
    await envoy.waitFor(async () => (await stat(`cluster.${cluster(REVIEWS)}.membership_total`)) === 3, { what: 'three reviews endpoints', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    for (const b of backends.values()) await b.close();
  });

  it(`ejects an endpoint that keeps answering 500 (within ${EJECT_WITHIN_MS / 1000} s) and sends it nothing afterwards`, async () => {
    const ejections = `cluster.${cluster(REVIEWS)}.outlier_detection.ejections_active`;
    assert.equal(await stat(ejections), 0, 'nothing ejected before the failures');
    const failing = backends.get(FAILING)!;
    const t0 = Date.now();
    let sent = 0;
    let failures = 0;
    while ((await stat(ejections)) < 1) {
      assert.ok(Date.now() - t0 < EJECT_WITHIN_MS, `not ejected after ${Date.now() - t0} ms, ${sent} requests, ${failures} answered 500`);
      const r = await get(REVIEWS);
      sent++;
      if (r.status === 500) {
        failures++;
        assert.equal(r.headers['x-backend'], FAILING, 'only the failing endpoint answers 500');
      }
    }
    const ejectedMs = Date.now() - t0;
    console.log(`# outlier detection: ejected after ${ejectedMs} ms, ${sent} requests, ${failures} answered 500 (no retries)`);
    assert.ok(failures >= 2, `${failures} failures reached the client: retries hid them`);

    const clusters = await envoy.admin('/clusters');
    const badHost = clusters.split('\n').find((l) => l.startsWith(`${cluster(REVIEWS)}::${IPS[VERSIONS.indexOf(FAILING)]}:`) && l.includes('::health_flags::'));
    assert.match(badHost ?? '', /failed_outlier_check/, `the failing endpoint is flagged in /clusters: ${badHost}`);

    const before = failing.requests.length;
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = await get(REVIEWS, `/after/${i}`);
      assert.equal(r.status, 200, `request ${i} after ejection`);
      seen.add(r.headers['x-backend'] ?? '?');
    }
    assert.equal(failing.requests.length - before, 0, 'the ejected endpoint got no requests');
    assert.deepEqual([...seen].sort(), VERSIONS.filter((v) => v !== FAILING).sort(), 'the healthy endpoints share the traffic');
  });

  it('sheds concurrent requests with 503 beyond the connection pool limit, and not without it', async () => {
    const slow = backends.get('slow')!;
    const overflowStat = `cluster.${cluster(LIMITED)}.upstream_rq_pending_overflow`;
    const overflowBefore = await stat(overflowStat);
    const burst = async (host: string): Promise<{ ok: number; shed: number; overloaded: number; other: number[]; reached: number; ms: number }> => {
      const reachedBefore = slow.requests.length;
      const t = Date.now();
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => get(host, `/burst/${i}`)));
      const ms = Date.now() - t;
      const ok = rs.filter((r) => r.status === 200).length;
      const shed = rs.filter((r) => r.status === 503).length;
      const overloaded = rs.filter((r) => r.status === 503 && r.headers['x-envoy-overloaded'] === 'true').length;
      const other = rs.filter((r) => r.status !== 200 && r.status !== 503).map((r) => r.status);
      return { ok, shed, overloaded, other, reached: slow.requests.length - reachedBefore, ms };
    };

    const limited = await burst(LIMITED);
    const overflow = (await stat(overflowStat)) - overflowBefore;
    console.log(`# connection pool (1 conn, 1 pending): ${limited.ok} ok, ${limited.shed} x 503 (${limited.overloaded} x-envoy-overloaded), ${overflow} pending overflows, ${limited.reached} reached the backend, ${limited.ms} ms`);
    assert.deepEqual(limited.other, [], 'only 200 or 503');
    assert.ok(limited.ok >= 1, 'some requests succeed');
    assert.ok(limited.shed >= 1, 'some requests are shed');
    assert.equal(limited.ok + limited.shed, 20);
    assert.equal(limited.overloaded, limited.shed, 'every 503 is Envoy shedding load (x-envoy-overloaded)');
    assert.ok(overflow >= limited.shed, `upstream_rq_pending_overflow rose by ${overflow}`);
    assert.equal(limited.reached, limited.ok, 'shed requests never reached the backend');

    const unlimited = await burst(UNLIMITED);
    console.log(`# no connection pool limit: ${unlimited.ok} ok, ${unlimited.shed} x 503, ${unlimited.ms} ms`);
    assert.equal(unlimited.ok, 20, `all 20 succeed without the DestinationRule (${unlimited.shed} x 503, others ${unlimited.other.join(',')})`);
    assert.equal(unlimited.reached, 20);
    assert.equal(await stat(`cluster.${cluster(UNLIMITED)}.upstream_rq_pending_overflow`), 0);
  });

  it('Envoy rejected nothing', async () => {
    assert.equal(await envoy.rejectedUpdates(), 0);
  });
});
