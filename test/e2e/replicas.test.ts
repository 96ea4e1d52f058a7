/**
 * Two meshd replicas on one real kube-apiserver, as the default profile runs them, and a
 * real Envoy whose xDS cluster lists both. Under a steady stream of requests: the leader is
 * killed (kill -9) and restarted, then the other replica is SIGTERMed; an EndpointSlice
 * changes while each is down. No request fails, each change reaches Envoy, the Lease moves,
 * and the root ConfigMaps are still reconciled by whichever replica leads.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { startMeshd, MESHD_CLI, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import { testAddresses } from '../support/addresses.js';
import { spread, trafficLoop } from '../support/traffic.js';
import { eventually, metricValue } from '../support/poll.js';

const NS = 'default';
const LEASE = '/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/meshd-leader';
const ROOT_CM = `/api/v1/namespaces/${NS}/configmaps/istio-ca-root-cert`;

interface Bootstrap {
  static_resources: { clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: unknown[] }[] } }[] };
}

describe('two replicas survive losing either', () => {
  let kube: KubeCluster;
  const replicas: (MeshdProcess | undefined)[] = [undefined, undefined];
  const grpcPorts: number[] = [];
  let envoy: EnvoyProcess;
  const backends: Backend[] = [];
  let backendPort: number;
  let webPort: number;
  const [ip0, ip1] = testAddresses(2) as [string, string];
  const host = `web.${NS}.svc.cluster.local`;

  const startReplica = async (i: number): Promise<MeshdProcess> => {
    const m = await startMeshd({
      grpcPort: grpcPorts[i],
      extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--leader-lease-duration', '3s', '--drain-duration', '1s'],
      env: { POD_NAME: `meshd-${i}` },
    });
    replicas[i] = m;
    return m;
  };
  const slice = (ip: string): Record<string, unknown> => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-abc', namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }],
    endpoints: [{ addresses: [ip], conditions: { ready: true } }],
  });
  const setSlice = (ip: string): Promise<unknown> => kube.apply(`/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/web-abc`, slice(ip));
  const holder = async (): Promise<string> => (await kube.request<{ spec?: { holderIdentity?: string } }>('GET', LEASE)).spec?.holderIdentity ?? '';
  const leaderIndex = async (): Promise<number | undefined> => {
    for (const [i, m] of replicas.entries()) {
      if (!m) continue;
      const v = metricValue((await m.monitoring('/metrics').catch(() => ({ body: '' }))).body, 'meshd_leader');
      if (v === 1) return i;
    }
    return undefined;
  };
  const routesTo = async (backend: string): Promise<boolean> => [...(await spread(webPort, host, 4)).keys()].join() === backend;

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'gateways.networking.istio.io', 'peerauthentications.security.istio.io']);
    backendPort = await freePort(ip0);
    backends.push(await startHttpBackend('b0', { host: ip0, port: backendPort }), await startHttpBackend('b1', { host: ip1, port: backendPort }));
    webPort = await freePort();
    await kube.apply(`/api/v1/namespaces/${NS}/services/web`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: webPort, targetPort: backendPort }] } });
    await setSlice(ip0);
    grpcPorts.push(await freePort(), await freePort());
    await Promise.all([startReplica(0), startReplica(1)]);
    // Envoy's xDS cluster lists both replicas, as the istiod Service's endpoints would.
    const bootstrap = parse(
      execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', `127.0.0.1:${grpcPorts[0]}`, '--pod', 'client-1', '--namespace', NS, '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' }),
    ) as Bootstrap;
    const xds = bootstrap.static_resources.clusters.find((c) => c.name === 'xds-grpc')!;
    xds.load_assignment.endpoints[0]!.lb_endpoints.push({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: grpcPorts[1] } } } });
    envoy = await startEnvoy({ bootstrap: bootstrap as unknown as object, name: 'replicas' });
    await envoy.waitFor(() => routesTo('b0'), { what: 'web routed to b0', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    for (const m of replicas) await m?.stop();
    for (const b of backends) await b.close();
    await kube?.stop();
  });

  it('exactly one replica leads and holds the Lease', async () => {
    const leader = await eventually('a leader', leaderIndex, 10_000);
    assert.match(await holder(), new RegExp(`^meshd-${leader}`));
    const other = 1 - leader;
    assert.equal(metricValue((await replicas[other]!.monitoring('/metrics')).body, 'meshd_leader'), 0);
    await eventually('the root ConfigMap', async () => ((await kube.requestRaw('GET', ROOT_CM)).status === 200 ? true : undefined), 10_000);
  });

  it('kill -9 of the leader, a change while it is down, its restart, then SIGTERM of the other: no request fails', async () => {
    const loop = trafficLoop(webPort, host);
    const first = (await leaderIndex())!;
    const second = 1 - first;
    let t = Date.now();
    await replicas[first]!.stop('SIGKILL');
    replicas[first] = undefined;
    await setSlice(ip1);
    await envoy.waitFor(() => routesTo('b1'), { what: 'the change made while the leader was down', timeoutMs: 30_000, intervalMs: 100 });
    console.log(`# leader killed: the change reached Envoy in ${Date.now() - t} ms`);
    t = Date.now();
    await eventually('the Lease moved to the other replica', async () => ((await holder()).startsWith(`meshd-${second}`) && (await leaderIndex()) === second ? true : undefined), 15_000);
    console.log(`# the Lease moved ${Date.now() - t} ms after the change arrived (lease duration 3 s)`);
    // The new leader reconciles the root ConfigMaps.
    await kube.request('DELETE', ROOT_CM);
    await eventually('the root ConfigMap put back by the new leader', async () => ((await kube.requestRaw('GET', ROOT_CM)).status === 200 ? true : undefined), 10_000);

    await startReplica(first);
    t = Date.now();
    const exit = replicas[second]!.stop('SIGTERM');
    replicas[second] = undefined;
    assert.equal(await exit, 0);
    await eventually('the Lease handed over on SIGTERM', async () => ((await holder()).startsWith(`meshd-${first}`) ? true : undefined), 10_000);
    console.log(`# SIGTERM: the Lease moved in ${Date.now() - t} ms`);
    await setSlice(ip0);
    await envoy.waitFor(() => routesTo('b0'), { what: 'a change after the SIGTERM, through the restarted replica', timeoutMs: 30_000, intervalMs: 100 });
    const syncz = JSON.parse((await replicas[first]!.monitoring('/debug/syncz')).body) as { proxy: string }[];
    assert.equal(syncz.length, 1, 'Envoy is connected to the remaining replica');
    await kube.request('DELETE', ROOT_CM);
    await eventually('the root ConfigMap put back', async () => ((await kube.requestRaw('GET', ROOT_CM)).status === 200 ? true : undefined), 10_000);
    const r = await loop.stop();
    console.log(`# across both outages: ${r.ok} requests ok, ${r.failed} failed`);
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join('; ')}`);
    assert.ok(r.ok > 50);
    assert.equal(await envoy.rejectedUpdates(), 0);
  });
});
