// meshd watching a real kube-apiserver (built from the Go module proxy) with the
// manifests' least-privilege RBAC, feeding a real Envoy: objects created, scaled and
// deleted through the API move traffic; apiserver, etcd and meshd restarts lose no
// request; invalid Istio objects are left out alone.
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
import { connectAds, istioNode, TypeUrl } from '../support/ads-client.js';
import { testAddresses } from '../support/addresses.js';
import { spread, trafficLoop } from '../support/traffic.js';

/** Bound for a change made through the API to reach Envoy's traffic. */
const CONVERGENCE_BOUND_MS = 5000;
const NS = 'default';

function serviceObject(name: string, port: number, targetPort: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS },
    spec: { selector: { app: name }, ports: [{ name: 'http', port, targetPort }] },
  };
}

function sliceObject(service: string, port: number, ips: string[]): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${service}-abc`, namespace: NS, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  };
}

describe('meshd with a real kube-apiserver', () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  const backends: Backend[] = [];
  let backendPort: number;
  const ports: Record<string, number> = {};
  // Kubernetes refuses loopback endpoint addresses: backends listen on a dummy interface.
  const [ip0, ip1, ip2] = testAddresses(3) as [string, string, string];

  const svcPath = (name: string): string => `/api/v1/namespaces/${NS}/services/${name}`;
  const slicePath = (name: string): string => `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/${name}-abc`;
  const apply = async (obj: Record<string, unknown>, path: string): Promise<void> => void (await kube.apply(path, obj));
  const hostOf = (name: string): string => `${name}.${NS}.svc.cluster.local`;

  async function startMeshdOnKube(grpcPort?: number): Promise<MeshdProcess> {
    return startMeshd({ grpcPort, extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken)] });
  }

  before(async () => {
    kube = await startKube();
    const manifests = readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml'));
    await applyAll(kube, manifests);
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io', 'telemetries.telemetry.istio.io']);
    backendPort = await freePort(ip0);
    for (const [i, ip] of [ip0, ip1, ip2].entries()) backends.push(await startHttpBackend(`b${i}`, { host: ip, port: backendPort }));
    for (const name of ['web', 'stable', 'late']) ports[name] = await freePort();
    meshd = await startMeshdOnKube();
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'client-1', '--namespace', NS,
      '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta',
    ], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'kube' });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    for (const b of backends) await b.close();
    await kube?.stop();
  });

  it('runs with the manifests\' ClusterRole, not as an administrator', async () => {
    const metrics = (await meshd.monitoring('/metrics')).body;
    for (const kind of ['Service', 'EndpointSlice', 'Pod', 'Namespace', 'Secret', 'Gateway', 'VirtualService', 'DestinationRule', 'PeerAuthentication']) {
      assert.match(metrics, new RegExp(`meshd_informer_synced\\{kind="${kind}"\\} 1`), `${kind} informer synced`);
    }
    assert.equal((await meshd.monitoring('/ready')).status, 200);
    const denied = await kube.requestRaw('POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'x', image: 'x' }] } }, kube.meshdToken);
    assert.equal(denied.status, 403, 'the token meshd uses cannot create pods');
  });

  it('a Service and EndpointSlice created through the API route traffic; scaling moves it; deleting removes it', async () => {
    const port = ports.web!;
    let t = Date.now();
    await apply(serviceObject('web', port, backendPort), svcPath('web'));
    await apply(sliceObject('web', backendPort, [ip0, ip1]), slicePath('web'));
    await envoy.waitFor(async () => (await spread(port, hostOf('web'), 4)).size === 2, { what: 'traffic to both endpoints', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 25 });
    console.log(`# create: routed ${Date.now() - t} ms after the API writes`);

    t = Date.now();
    await apply(sliceObject('web', backendPort, [ip0, ip1, ip2]), slicePath('web'));
    await envoy.waitFor(async () => (await spread(port, hostOf('web'), 6)).has('b2'), { what: 'traffic to the added endpoint', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 25 });
    console.log(`# scale up: ${Date.now() - t} ms`);

    t = Date.now();
    await apply(sliceObject('web', backendPort, [ip2]), slicePath('web'));
    await envoy.waitFor(async () => [...(await spread(port, hostOf('web'), 6)).keys()].join() === 'b2', { what: 'traffic only to the remaining endpoint', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 25 });
    console.log(`# scale down: ${Date.now() - t} ms`);

    t = Date.now();
    await kube.request('DELETE', slicePath('web'));
    await kube.request('DELETE', svcPath('web'));
    await envoy.waitFor(async () => !(await envoy.clusterNames()).includes(`outbound|${port}||${hostOf('web')}`), { what: 'cluster removal', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 25 });
    await envoy.waitFor(async () => !(await envoy.hasActiveListener(`127.0.0.1_${port}`)), { what: 'listener removal', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 25 });
    console.log(`# delete: ${Date.now() - t} ms`);
  });

  it('an apiserver restart loses no request, and changes made while it was down arrive', async () => {
    const port = ports.stable!;
    await apply(serviceObject('stable', port, backendPort), svcPath('stable'));
    await apply(sliceObject('stable', backendPort, [ip0, ip1]), slicePath('stable'));
    await envoy.waitFor(async () => (await spread(port, hostOf('stable'), 4)).size === 2, { what: 'stable routed', timeoutMs: CONVERGENCE_BOUND_MS });
    const loop = trafficLoop(port, hostOf('stable'));
    await kube.stopApiserver('SIGKILL');
    // A second apiserver on the same etcd takes the writes while meshd's is down.
    const peer = await kube.startPeerApiserver();
    try {
      await peer.request('PATCH', `${slicePath('stable')}?fieldManager=meshd-test&force=true`, sliceObject('stable', backendPort, [ip2]), undefined, { contentType: 'application/apply-patch+yaml' });
      await peer.request('PATCH', `${svcPath('late')}?fieldManager=meshd-test&force=true`, serviceObject('late', ports.late!, backendPort), undefined, { contentType: 'application/apply-patch+yaml' });
      await peer.request('PATCH', `${slicePath('late')}?fieldManager=meshd-test&force=true`, sliceObject('late', backendPort, [ip1]), undefined, { contentType: 'application/apply-patch+yaml' });
      await new Promise((r) => setTimeout(r, 1000));
      const during = await spread(port, hostOf('stable'), 6);
      assert.ok(!during.has('b2'), 'meshd cannot see changes while its apiserver is down');
    } finally {
      await peer.stop();
    }
    const t = Date.now();
    await kube.startApiserver();
    await envoy.waitFor(async () => [...(await spread(port, hostOf('stable'), 6)).keys()].join() === 'b2', { what: 'the change made while down', timeoutMs: 30_000, intervalMs: 50 });
    await envoy.waitFor(async () => (await spread(ports.late!, hostOf('late'), 2)).has('b1'), { what: 'the service created while down', timeoutMs: 30_000, intervalMs: 50 });
    console.log(`# apiserver back: converged ${Date.now() - t} ms after it became ready`);
    const r = await loop.stop();
    console.log(`# during the apiserver restart: ${r.ok} requests ok, ${r.failed} failed`);
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join('; ')}`);
    assert.ok(r.ok > 50);
    assert.ok((await meshd.monitoring('/metrics')).body.match(/meshd_informer_restarts_total\{kind="EndpointSlice"\} [1-9]/), 'the informer failed and relisted');
  });

  it('an etcd restart loses no request, and meshd follows changes after it', async () => {
    const port = ports.stable!;
    const loop = trafficLoop(port, hostOf('stable'));
    await kube.stopEtcd('SIGKILL');
    await new Promise((r) => setTimeout(r, 3000));
    await kube.startEtcd();
    await apply(sliceObject('stable', backendPort, [ip0]), slicePath('stable'));
    await envoy.waitFor(async () => [...(await spread(port, hostOf('stable'), 6)).keys()].join() === 'b0', { what: 'a change after etcd came back', timeoutMs: 30_000, intervalMs: 50 });
    const r = await loop.stop();
    console.log(`# during the etcd restart: ${r.ok} requests ok, ${r.failed} failed`);
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join('; ')}`);
  });

  it('a meshd restart: Envoy keeps routing, and the new meshd resyncs it with the same versions', async () => {
    const port = ports.stable!;
    const dumpVersions = async (): Promise<string> => {
      const dump = await envoy.configDump();
      const items: string[] = [];
      for (const c of dump.configs as { dynamic_active_clusters?: { version_info: string; cluster: { name: string } }[]; dynamic_listeners?: { name: string; active_state?: { version_info: string } }[] }[]) {
        for (const x of c.dynamic_active_clusters ?? []) items.push(`${x.cluster.name}=${x.version_info}`);
        for (const x of c.dynamic_listeners ?? []) items.push(`${x.name}=${x.active_state?.version_info}`);
      }
      return items.sort().join('\n');
    };
    const beforeDump = await dumpVersions();
    assert.match(beforeDump, new RegExp(`outbound\\|${port}\\|\\|stable\\.default\\.svc\\.cluster\\.local=[0-9a-f]{16}`));
    const grpcPort = meshd.grpcPort;
    const loop = trafficLoop(port, hostOf('stable'));
    await meshd.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    const whileDown = await spread(port, hostOf('stable'), 5);
    assert.deepEqual([...whileDown.keys()], ['b0'], 'Envoy routes with meshd gone');
    meshd = await startMeshdOnKube(grpcPort);
    await envoy.waitFor(async () => {
      const syncz = JSON.parse((await meshd.monitoring('/debug/syncz')).body) as { types: Record<string, { status: string }> }[];
      return syncz.length === 1 && ['cds', 'eds', 'lds', 'rds'].every((t) => syncz[0]!.types[t]?.status === 'SYNCED');
    }, { what: 'Envoy resynced with the new meshd', timeoutMs: 30_000, intervalMs: 100 });
    const r = await loop.stop();
    console.log(`# during the meshd restart: ${r.ok} requests ok, ${r.failed} failed`);
    assert.equal(r.failed, 0, `failed requests: ${r.errors.join('; ')}`);
    assert.equal(await dumpVersions(), beforeDump, 'every cluster and listener keeps its version');
    assert.equal(await envoy.rejectedUpdates(), 0);
  });

  it('an invalid VirtualService passes the CRD schema but is left out alone, with its namespace, name and field logged', async () => {
    const vs = (name: string, http: unknown[]): Record<string, unknown> => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name, namespace: NS },
      spec: { hosts: ['stable'], http },
    });
    await kube.apply(`/apis/networking.istio.io/v1/namespaces/${NS}/virtualservices/broken`, vs('broken', [{ match: [{ uri: { prefix: '/x' } }] }]));
    await kube.apply(`/apis/networking.istio.io/v1beta1/namespaces/${NS}/virtualservices/fine`, { ...vs('fine', [{ route: [{ destination: { host: 'stable' } }] }]), apiVersion: 'networking.istio.io/v1beta1' });
    const deadline = Date.now() + CONVERGENCE_BOUND_MS;
    let configz: { kind: string; metadata?: { name: string } }[] = [];
    while (Date.now() < deadline) {
      configz = JSON.parse((await meshd.monitoring('/debug/configz?kind=VirtualService')).body) as typeof configz;
      if (configz.some((c) => c.metadata?.name === 'fine') && meshd.records().some((r) => r.object === `${NS}/broken`)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(configz.map((c) => c.metadata?.name), ['fine'], 'only the valid VirtualService is kept');
    const rec = meshd.records().find((r) => r.object === `${NS}/broken`)!;
    assert.ok(rec, 'the invalid VirtualService is logged');
    assert.equal(rec.kind, 'VirtualService');
    assert.equal(rec.field, 'spec.http[0]');
    assert.match(String(rec.msg), /no destination/);
    const still = await spread(ports.stable!, hostOf('stable'), 3);
    assert.deepEqual([...still.keys()], ['b0'], 'the rest keeps serving');
  });

  it('a PeerAuthentication created through the API (v1beta1) reaches meshd at v1; edits and deletes follow; an invalid one is logged and left out', async () => {
    type Held = { kind: string; metadata: { name: string; namespace: string; creationTimestamp?: string }; spec: Record<string, unknown> };
    const held = async (): Promise<Held[]> => JSON.parse((await meshd.monitoring('/debug/configz?kind=PeerAuthentication')).body) as Held[];
    const until = async (what: string, ok: (h: Held[]) => boolean): Promise<Held[]> => {
      const deadline = Date.now() + CONVERGENCE_BOUND_MS;
      for (;;) {
        const h = await held();
        if (ok(h)) return h;
        if (Date.now() > deadline) throw new Error(`${what}: meshd holds ${JSON.stringify(h)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const path = (v: string, name: string) => `/apis/security.istio.io/${v}/namespaces/${NS}/peerauthentications/${name}`;
    const spec = { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9080': { mode: 'DISABLE' } } };
    const created = await kube.apply<{ metadata: { creationTimestamp: string } }>(path('v1beta1', 'reviews'), { apiVersion: 'security.istio.io/v1beta1', kind: 'PeerAuthentication', metadata: { name: 'reviews', namespace: NS }, spec });
    let h = await until('created', (x) => x.some((p) => p.metadata.name === 'reviews'));
    assert.deepEqual(h.map((p) => [p.kind, p.metadata.namespace, p.metadata.name]), [['PeerAuthentication', NS, 'reviews']]);
    assert.deepEqual(h[0]!.spec, spec);
    assert.equal(h[0]!.metadata.creationTimestamp, created.metadata.creationTimestamp, 'the creation time, Istio\'s tie-breaker, is kept');

    await kube.request('PATCH', path('v1', 'reviews'), { spec: { mtls: { mode: 'PERMISSIVE' } } });
    h = await until('edited', (x) => (x[0]?.spec.mtls as { mode?: string } | undefined)?.mode === 'PERMISSIVE');
    assert.deepEqual(h[0]!.spec.portLevelMtls, spec.portLevelMtls);

    // Passes the CRD schema (no wildcard check there) but not meshd's validation.
    await kube.apply(path('v1', 'wildcard'), { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'wildcard', namespace: NS }, spec: { selector: { matchLabels: { app: 'rev*' } } } });
    const deadline = Date.now() + CONVERGENCE_BOUND_MS;
    while (!meshd.records().some((r) => r.object === `${NS}/wildcard`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const rec = meshd.records().find((r) => r.object === `${NS}/wildcard`);
    assert.ok(rec, 'the invalid PeerAuthentication is logged');
    assert.equal(rec.kind, 'PeerAuthentication');
    assert.equal(rec.field, 'spec.selector.matchLabels.app');
    assert.match(String(rec.msg), /wildcards are not supported/);
    assert.deepEqual((await held()).map((p) => p.metadata.name), ['reviews'], 'only the valid one is held');

    await kube.request('DELETE', path('v1', 'reviews'));
    await until('deleted', (x) => x.length === 0);
  });

  it('a Telemetry created through the API (v1alpha1) reaches meshd at v1 and turns the proxy\'s access log on; deleting it turns it off', async () => {
    const path = (v: string) => `/apis/telemetry.istio.io/${v}/namespaces/${NS}/telemetries/logs`;
    const accessLogs = async (): Promise<string> => JSON.stringify(await envoy.configDump('?resource=dynamic_listeners'));
    assert.ok(!(await accessLogs()).includes('envoy.access_loggers.file'), 'no access log before');
    await kube.apply(path('v1alpha1'), { apiVersion: 'telemetry.istio.io/v1alpha1', kind: 'Telemetry', metadata: { name: 'logs', namespace: NS }, spec: { accessLogging: [{ providers: [{ name: 'envoy' }] }] } });
    await envoy.waitFor(async () => (await accessLogs()).includes('envoy.access_loggers.file'), { what: 'the access logger from the Telemetry', timeoutMs: CONVERGENCE_BOUND_MS });
    const held = JSON.parse((await meshd.monitoring('/debug/configz?kind=Telemetry')).body) as { metadata: { name: string } }[];
    assert.deepEqual(held.map((t) => t.metadata.name), ['logs']);
    await kube.request('DELETE', path('v1'));
    await envoy.waitFor(async () => !(await accessLogs()).includes('envoy.access_loggers.file'), { what: 'the access logger to go', timeoutMs: CONVERGENCE_BOUND_MS });
  });

  it('a proxy\'s labels and service account come from its Pod, which wins over its metadata', async () => {
    await kube.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reviews' } });
    await kube.request('POST', `/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'reviews-1', labels: { app: 'reviews' } },
      spec: { serviceAccountName: 'reviews', containers: [{ name: 'app', image: 'reviews' }] },
    });
    await kube.request('PATCH', `/api/v1/namespaces/${NS}/pods/reviews-1/status`, { status: { phase: 'Running', podIP: '10.1.0.7', podIPs: [{ ip: '10.1.0.7' }], conditions: [{ type: 'Ready', status: 'True' }] } });
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: NS }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, targetPort: 9081 }] } }, svcPath('reviews'));
    await new Promise((r) => setTimeout(r, 500));
    const stream = connectAds(meshd.xdsAddress, { delta: true });
    try {
      stream.send({ node: istioNode({ ip: '10.1.0.7', pod: 'reviews-1', namespace: NS, labels: { app: 'ratings' }, metadata: { SERVICE_ACCOUNT: 'impostor' } }), type_url: TypeUrl.Listener, resource_names_subscribe: ['*'] });
      const r = await stream.next(5000);
      const inbound = r.resources.find((x) => x.name === 'virtualInbound');
      const chains = ((inbound?.body.filter_chains ?? []) as { filter_chain_match?: { destination_port?: { value: number } } }[]).map((c) => c.filter_chain_match?.destination_port?.value);
      assert.deepEqual(chains, [9081], 'inbound ports come from the services selecting the Pod\'s labels');
      const warn = meshd.records().find((x) => x.msg === 'proxy metadata disagrees with its Pod; using the Pod');
      assert.ok(warn, 'the disagreement is logged');
      assert.match(JSON.stringify(warn.disagreements), /LABELS\.app/);
      assert.match(JSON.stringify(warn.disagreements), /SERVICE_ACCOUNT/);
    } finally {
      stream.close();
    }
  });
});
