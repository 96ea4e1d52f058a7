/**
 * Status on Istio objects, against a real apiserver (meshd with the manifests' RBAC) and a
 * real sidecar Envoy connected over ADS: a VirtualService becomes Reconciled once the Envoy
 * acknowledges it (not while the Envoy is stopped); a NACK (the Envoy's runtime caps regex
 * programs at size 1, so a regex match is rejected) shows in status and clears when the
 * object is fixed; a Gateway losing a host conflict says so and names the winner; nothing is
 * written when nothing changed; a Sidecar scopes the proxy, with status and IST0111; a
 * ServiceEntry (and the WorkloadEntry it selects) from the apiserver reaches the proxy, with
 * status and IST0134.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, readyEndpointSlice, waitForCrds } from '../support/kube-objects.js';
import { MESHD_CLI, REPO_ROOT, startMeshd, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, type EnvoyProcess } from '../support/envoy.js';
import { freePort } from '../support/backends.js';
import { testAddresses } from '../support/addresses.js';
import { eventually, metricValue } from '../support/poll.js';

const NS = 'apps';
const GW_NS = 'gw';
const VS_PATH = `/apis/networking.istio.io/v1/namespaces/${NS}/virtualservices`;
const GW_PATH = `/apis/networking.istio.io/v1/namespaces/${GW_NS}/gateways`;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}
interface Stored {
  metadata: { generation: number; resourceVersion: string };
  status?: { observedGeneration?: number; conditions?: Condition[]; validationMessages?: { type: { code: string }; level: string; description: string }[] };
}

const condition = (o: Stored, type: string): Condition | undefined => o.status?.conditions?.find((c) => c.type === type);

describe('status on Istio objects, written by the leader', { timeout: 300_000 }, () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let servicePort: number;
  const [sidecarIp, backendIp] = testAddresses(2, 231) as [string, string];

  const httpRoute = (match: Record<string, unknown>) => ({ match: [{ uri: match }], route: [{ destination: { host: 'httpbin', port: { number: servicePort } } }] });
  const getVs = (name: string): Promise<Stored> => kube.request<Stored>('GET', `${VS_PATH}/${name}`);
  const writes = async (result: string): Promise<number> => metricValue((await meshd.monitoring('/metrics')).body, 'meshd_status_writes_total', { result });
  /** The sidecar's route for the httpbin port holds a route with this prefix or regex. */
  const envoyRoutes = async (): Promise<string> => JSON.stringify((await envoy.configDump()).configs.filter((c: { '@type': string }) => c['@type'].endsWith('RoutesConfigDump')));

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io']);
    await kube.createNamespace(NS);
    await kube.createNamespace(GW_NS);
    servicePort = await freePort();
    await kube.request('POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sleep-1', labels: { app: 'sleep' } }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    await kube.request('PATCH', `/api/v1/namespaces/${NS}/pods/sleep-1/status`, { status: { phase: 'Running', podIP: sidecarIp, podIPs: [{ ip: sidecarIp }], conditions: [{ type: 'Ready', status: 'True' }] } });
    await kube.request('POST', `/api/v1/namespaces/${NS}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: servicePort, targetPort: 8080 }] } });
    await kube.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, readyEndpointSlice({ name: 'httpbin-abc', service: 'httpbin', ports: [{ name: 'http', port: 8080 }], pods: [{ ip: backendIp, name: 'httpbin-1', namespace: NS }] }));
    meshd = await startMeshd({ extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--grpc-addr', '127.0.0.1:0', '--secure-grpc-addr', 'off'], waitForConfig: true });
    const bootstrap = JSON.parse(
      execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--format', 'json', '--pod', 'sleep-1', '--namespace', NS, '--labels', 'app=sleep', '--ip', sidecarIp, '--interception', 'NONE', '--xds-address', `127.0.0.1:${meshd.grpcPort}`, '--admin-address', sidecarIp, '--admin-port', String(await freePort())], { encoding: 'utf8' }),
    ) as { layered_runtime: { layers: { static_layer?: Record<string, unknown> }[] } };
    // Any regex program is too large for this Envoy: config with a regex is rejected (NACK).
    bootstrap.layered_runtime.layers[0]!.static_layer!['re2.max_program_size.error_level'] = 1;
    envoy = await startEnvoy({ name: 'sleep-1', bootstrap });
    await envoy.waitFor(async () => (await envoy.stats()).get('cluster_manager.cds.update_success')! >= 1, { what: 'the first CDS update', timeoutMs: 20_000 });
  });

  after(async () => {
    if (envoy && envoy.exitStatus() === undefined) process.kill(envoy.pid, 'SIGCONT');
    await envoy?.stop();
    await meshd?.stop();
    await kube?.stop();
  });

  it('a VirtualService is Reconciled once the Envoy ACKs it, not before; observedGeneration is its generation', async () => {
    // The Envoy is stopped: meshd's push waits for its ACK.
    process.kill(envoy.pid, 'SIGSTOP');
    try {
      await kube.request('POST', VS_PATH, { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'httpbin' }, spec: { hosts: ['httpbin'], http: [httpRoute({ prefix: '/status-one' })] } });
      const pending = await eventually('Reconciled False while the Envoy is stopped', async () => {
        const vs = await getVs('httpbin');
        return condition(vs, 'Reconciled')?.status === 'False' ? vs : undefined;
      }, 20_000);
      const c = condition(pending, 'Reconciled')!;
      assert.equal(c.reason, 'InProgress');
      assert.equal(c.message, '0 of 1 proxy up to date');
      assert.equal(condition(pending, 'Accepted')?.status, 'True');
    } finally {
      process.kill(envoy.pid, 'SIGCONT');
    }
    const vs = await eventually('Reconciled True after the ACK', async () => {
      const o = await getVs('httpbin');
      return condition(o, 'Reconciled')?.status === 'True' ? o : undefined;
    }, 20_000);
    assert.match(await envoyRoutes(), /\/status-one/, 'the Envoy holds the route');
    assert.equal(vs.status?.observedGeneration, vs.metadata.generation);
    for (const c of vs.status?.conditions ?? []) assert.equal(c.observedGeneration, vs.metadata.generation, c.type);
  });

  it('a NACK shows in status; fixing the VirtualService turns it Reconciled again', async () => {
    const before = await getVs('httpbin');
    await kube.request('PATCH', `${VS_PATH}/httpbin`, { spec: { http: [httpRoute({ regex: '/status-[a-z]+' })] } });
    const rejected = await eventually('Reconciled False with the rejection', async () => {
      const o = await getVs('httpbin');
      const c = condition(o, 'Reconciled');
      return o.metadata.generation > before.metadata.generation && c?.status === 'False' && c.reason === 'Rejected' ? o : undefined;
    }, 20_000);
    const c = condition(rejected, 'Reconciled')!;
    assert.match(c.message, /^0 of 1 proxy up to date, 1 rejected: RDS: .*regex/is);
    assert.ok(c.message.length <= 512, 'the rejection text is bounded');
    assert.equal(c.observedGeneration, rejected.metadata.generation);
    assert.ok((await envoy.rejectedUpdates()) >= 1, 'the Envoy did reject an update');

    await kube.request('PATCH', `${VS_PATH}/httpbin`, { spec: { http: [httpRoute({ prefix: '/status-two' })] } });
    const fixed = await eventually('Reconciled True after the fix', async () => {
      const o = await getVs('httpbin');
      return o.metadata.generation > rejected.metadata.generation && condition(o, 'Reconciled')?.status === 'True' ? o : undefined;
    }, 20_000);
    assert.equal(fixed.status?.observedGeneration, fixed.metadata.generation);
    assert.match(await envoyRoutes(), /\/status-two/);
    // The Accepted condition did not change: its lastTransitionTime stayed.
    assert.equal(condition(fixed, 'Accepted')?.lastTransitionTime, condition(before, 'Accepted')?.lastTransitionTime);
  });

  it('a Gateway losing a host conflict says so and names the winner; deleting the winner clears it', async () => {
    const gateway = (name: string) => ({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name }, spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['shop.example.com'] }] } });
    // The first by namespace/name keeps the port and host.
    await kube.request('POST', GW_PATH, gateway('second'));
    await kube.request('POST', GW_PATH, gateway('first'));
    const loser = await eventually('the second Gateway not Accepted', async () => {
      const o = await kube.request<Stored>('GET', `${GW_PATH}/second`);
      return condition(o, 'Accepted')?.status === 'False' ? o : undefined;
    }, 20_000);
    const c = condition(loser, 'Accepted')!;
    assert.equal(c.reason, 'Conflicted');
    assert.match(c.message, /gw\/first/, 'names the winner');
    assert.ok(loser.status?.validationMessages?.some((m) => m.type.code === 'IST0145' && m.level === 'ERROR'));
    const winner = await kube.request<Stored>('GET', `${GW_PATH}/first`);
    assert.equal(condition(winner, 'Accepted')?.status, 'True');

    await kube.request('DELETE', `${GW_PATH}/first`);
    const cleared = await eventually('the second Gateway Accepted', async () => {
      const o = await kube.request<Stored>('GET', `${GW_PATH}/second`);
      return condition(o, 'Accepted')?.status === 'True' ? o : undefined;
    }, 20_000);
    assert.equal(cleared.status?.validationMessages, undefined);
  });

  it('nothing is written when nothing changed: an unrelated change and informer relists leave status alone', async () => {
    const vs = await eventually('a settled VirtualService', async () => {
      const o = await getVs('httpbin');
      return condition(o, 'Reconciled')?.status === 'True' ? o : undefined;
    }, 20_000);
    const written = await writes('written');
    const unchanged = await writes('unchanged');
    // A change that is pushed but changes nothing for the VirtualService's status.
    await kube.request('PATCH', `/api/v1/namespaces/${NS}/services/httpbin`, { metadata: { labels: { touched: 'yes' } } });
    // A status pass ran after it (it found the status unchanged)...
    await eventually('a status pass after the change', async () => ((await writes('unchanged')) > unchanged ? true : undefined), 20_000);
    await new Promise((r) => setTimeout(r, 2000));
    // ...and wrote nothing: no write counted, the object untouched.
    assert.equal(await writes('written'), written);
    assert.equal((await getVs('httpbin')).metadata.resourceVersion, vs.metadata.resourceVersion);
  });

  it('a Sidecar (v1alpha3) scopes the proxy and is Reconciled once it ACKs; two without a selector get IST0111', async () => {
    const path = (v: string) => `/apis/networking.istio.io/${v}/namespaces/${NS}/sidecars`;
    const clusters = async (): Promise<string> => JSON.stringify((await envoy.configDump('?resource=dynamic_active_clusters')).configs);
    const httpbinCluster = `outbound|${servicePort}||httpbin.${NS}.svc.cluster.local`;
    assert.match(await clusters(), new RegExp(httpbinCluster.replace(/[|.]/g, '\\$&')));
    await kube.request('POST', path('v1alpha3'), { apiVersion: 'networking.istio.io/v1alpha3', kind: 'Sidecar', metadata: { name: 'only-system' }, spec: { egress: [{ hosts: ['istio-system/*'] }] } });
    await envoy.waitFor(async () => !(await clusters()).includes(httpbinCluster), { what: 'the unimported cluster to go', timeoutMs: 20_000 });
    const reconciled = await eventually('the Sidecar Reconciled', async () => {
      const o = await kube.request<Stored>('GET', `${path('v1')}/only-system`);
      return condition(o, 'Reconciled')?.status === 'True' ? o : undefined;
    }, 20_000);
    assert.equal(condition(reconciled, 'Reconciled')?.message, 'every connected proxy it affects is up to date');

    await kube.request('POST', path('v1'), { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'also-wide' }, spec: { egress: [{ hosts: ['./*'] }] } });
    const flagged = await eventually('IST0111 on the second Sidecar', async () => {
      const o = await kube.request<Stored>('GET', `${path('v1')}/also-wide`);
      return o.status?.validationMessages?.some((m) => m.type.code === 'IST0111') ? o : undefined;
    }, 20_000);
    assert.ok(flagged.status?.validationMessages?.some((m) => m.type.code === 'IST0111' && m.level === 'ERROR'));
    await kube.request('DELETE', `${path('v1')}/also-wide`);
    await kube.request('DELETE', `${path('v1')}/only-system`);
    await envoy.waitFor(async () => (await clusters()).includes(httpbinCluster), { what: 'the cluster to come back', timeoutMs: 20_000 });
  });

  it('a ServiceEntry (v1beta1) and the WorkloadEntry it selects reach the proxy and are Reconciled; a TCP port without addresses gets IST0134', async () => {
    const sePath = (v: string) => `/apis/networking.istio.io/${v}/namespaces/${NS}/serviceentries`;
    const wePath = `/apis/networking.istio.io/v1/namespaces/${NS}/workloadentries`;
    const cluster = 'outbound|9443||vm.status.test';
    const clusters = async (): Promise<string> => JSON.stringify((await envoy.configDump('?resource=dynamic_active_clusters')).configs);
    const endpoints = async (): Promise<string> => JSON.stringify((await envoy.configDump('?include_eds')).configs.filter((c: { '@type': string }) => c['@type'].endsWith('EndpointsConfigDump')));
    await kube.request('POST', wePath, { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'vm-1' }, spec: { address: '10.250.0.1', labels: { app: 'vm' }, serviceAccount: 'vm' } });
    await kube.request('POST', sePath('v1beta1'), {
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'ServiceEntry',
      metadata: { name: 'vm' },
      spec: { hosts: ['vm.status.test'], ports: [{ number: 9443, name: 'tcp-vm', protocol: 'TCP' }], location: 'MESH_INTERNAL', resolution: 'STATIC', workloadSelector: { labels: { app: 'vm' } } },
    });
    await envoy.waitFor(async () => (await clusters()).includes(cluster) && (await endpoints()).includes('10.250.0.1'), { what: 'the ServiceEntry cluster and its WorkloadEntry endpoint', timeoutMs: 20_000 });
    const se = await eventually('the ServiceEntry Reconciled with IST0134', async () => {
      const o = await kube.request<Stored>('GET', `${sePath('v1')}/vm`);
      return condition(o, 'Reconciled')?.status === 'True' && o.status?.validationMessages?.some((m) => m.type.code === 'IST0134') ? o : undefined;
    }, 20_000);
    assert.ok(se.status?.validationMessages?.some((m) => m.type.code === 'IST0134' && m.level === 'WARNING'));
    assert.equal(condition(se, 'Accepted')?.status, 'True', 'a warning does not refuse it');
    await eventually('the WorkloadEntry Reconciled', async () => {
      const o = await kube.request<Stored>('GET', `${wePath}/vm-1`);
      return condition(o, 'Reconciled')?.status === 'True' ? o : undefined;
    }, 20_000);
    await kube.request('DELETE', `${sePath('v1')}/vm`);
    await kube.request('DELETE', `${wePath}/vm-1`);
    await envoy.waitFor(async () => !(await clusters()).includes(cluster), { what: 'the ServiceEntry cluster to go', timeoutMs: 20_000 });
  });
});
