// proxy-status, proxy-config and version against real Envoys and meshd on a real apiserver,
// reached as istioctl reaches them: each Envoy's admin API through the API server's
// pods/<pod>:15000/proxy, meshd through the istiod pods' :15014/proxy. Pods are registered with
// addresses of `lo` where the Envoys' admin and meshd's monitoring port listen (no kubelet);
// 198.19.255.x, since the apiserver's pods/proxy refuses loopback pod IPs ("address not allowed").
// Also Istio's own istioctl, built from the Go module proxy, asks meshd over xDS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, readyEndpointSlice, waitForCrds } from '../support/kube-objects.js';
import { httpText, startMeshd, MESHD_CLI, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, type EnvoyProcess } from '../support/envoy.js';
import { freePort } from '../support/backends.js';
import { selfSignedCertificate } from '../support/tls.js';
import { testAddresses } from '../support/addresses.js';
import { redactCredentials } from '../../src/inspect/config-dump.js';
import { eventually } from '../support/poll.js';
import { connectAds, istioNode, TypeUrl, type SotwStream } from '../support/ads-client.js';

const NS = 'apps';
const GW_NS = 'gw';
const ADMIN = 15000;
const MONITORING = 15014;
const REPLICA = 'istiod-7d4b9c-x2x9k';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Rows of a table istioctl-style (columns at least 5 spaces apart), cut at the header's column starts. */
function parseTable(text: string): Record<string, string>[] {
  const [header, ...lines] = text.split('\n').filter((l) => l.length > 0);
  assert.ok(header, `a table: ${text}`);
  const names = header.split(/ {2,}/).map((s) => s.trim());
  const starts = names.map((n) => header.indexOf(n));
  return lines.map((l) => Object.fromEntries(names.map((n, i) => [n, l.slice(starts[i], i + 1 < starts.length ? starts[i + 1] : undefined).trim()])));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

describe('proxy-status, proxy-config and version', () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let sidecar: EnvoyProcess;
  let gateway: EnvoyProcess;
  let kubeconfig: string;
  let servicePort: number;
  let gwHttpPort: number;
  let gwHttpsPort: number;
  const [sidecarIp, gatewayIp, meshdIp, backendIp] = testAddresses(4, 201) as [string, string, string, string];
  const nacking: SotwStream[] = [];

  const meshdCli = (...args: string[]): Promise<Run> => run(process.execPath, [MESHD_CLI, ...args, '--kubeconfig', kubeconfig]);
  const token = async (ns: string, sa: string): Promise<string> =>
    (await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['istio-ca'], expirationSeconds: 3600 } })).status.token;
  const tokenFile = async (ns: string, sa: string): Promise<string> => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-token-'));
    chmodSync(dir, 0o755);
    const file = join(dir, 'token');
    writeFileSync(file, await token(ns, sa), { mode: 0o644 });
    return file;
  };
  const pod = async (ns: string, name: string, ip: string, labels: Record<string, string>, sa = 'default'): Promise<void> => {
    await kube.request('POST', `/api/v1/namespaces/${ns}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { serviceAccountName: sa, containers: [{ name: 'c', image: 'x', ports: [{ containerPort: ADMIN }] }] } });
    await kube.request('PATCH', `/api/v1/namespaces/${ns}/pods/${name}/status`, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] } });
  };
  const bootstrap = (args: string[]): string => execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--format', 'json', ...args], { encoding: 'utf8' });

  before(async () => {
    kube = await startKube();
    kubeconfig = kube.kubeconfig(kube.adminToken);
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io']);
    await kube.createNamespace(NS);
    await kube.createNamespace(GW_NS);
    await kube.request('POST', '/api/v1/namespaces/istio-system/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
    await kube.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sleep' } });
    await kube.request('POST', `/api/v1/namespaces/${GW_NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'ingress' } });
    servicePort = await freePort();
    gwHttpPort = await freePort();
    gwHttpsPort = await freePort();

    await pod(NS, 'sleep-1', sidecarIp, { app: 'sleep' }, 'sleep');
    await pod(GW_NS, 'ingress-1', gatewayIp, { istio: 'ingressgateway' }, 'ingress');
    await pod(NS, 'httpbin-1', backendIp, { app: 'httpbin', version: 'v1' });
    await pod('istio-system', REPLICA, meshdIp, { app: 'istiod' });
    await kube.request('POST', `/api/v1/namespaces/${NS}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: servicePort, targetPort: 8080 }] } });
    await kube.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, readyEndpointSlice({ name: 'httpbin-abc', service: 'httpbin', ports: [{ name: 'http', port: 8080 }], pods: [{ ip: backendIp, name: 'httpbin-1', namespace: NS }] }));
    await kube.request('POST', `/apis/networking.istio.io/v1/namespaces/${NS}/destinationrules`, { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'httpbin' }, spec: { host: 'httpbin', subsets: [{ name: 'v1', labels: { version: 'v1' } }] } });
    const cert = selfSignedCertificate('httpbin.example.com');
    await kube.request('POST', `/api/v1/namespaces/${GW_NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'httpbin-cred' }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(cert.certPem).toString('base64'), 'tls.key': Buffer.from(cert.keyPem).toString('base64') } });
    await kube.request('POST', `/apis/networking.istio.io/v1/namespaces/${GW_NS}/gateways`, {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: 'ingress' },
      spec: {
        selector: { istio: 'ingressgateway' },
        servers: [
          { port: { number: gwHttpPort, name: 'http', protocol: 'HTTP' }, hosts: ['httpbin.example.com'] },
          { port: { number: gwHttpsPort, name: 'https', protocol: 'HTTPS' }, hosts: ['httpbin.example.com'], tls: { mode: 'SIMPLE', credentialName: 'httpbin-cred' } },
        ],
      },
    });
    await kube.request('POST', `/apis/networking.istio.io/v1/namespaces/${GW_NS}/virtualservices`, {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'httpbin' },
      spec: { hosts: ['httpbin.example.com'], gateways: ['ingress'], http: [{ match: [{ uri: { prefix: '/status' } }], route: [{ destination: { host: `httpbin.${NS}.svc.cluster.local`, port: { number: servicePort }, subset: 'v1' } }] }] },
    });

    meshd = await startMeshd({ extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--monitoring-addr', `${meshdIp}:${MONITORING}`], env: { POD_NAME: REPLICA }, waitForConfig: true });
    const xds = `127.0.0.1:${meshd.grpcPort}`;
    sidecar = await startEnvoy({
      name: 'sleep-1',
      bootstrap: bootstrap(['--pod', 'sleep-1', '--namespace', NS, '--service-account', 'sleep', '--labels', 'app=sleep', '--ip', sidecarIp, '--interception', 'NONE', '--xds-address', xds, '--admin-address', sidecarIp, '--admin-port', String(ADMIN), '--token-file', await tokenFile(NS, 'sleep')]),
    });
    gateway = await startEnvoy({
      name: 'ingress-1',
      bootstrap: bootstrap(['--type', 'router', '--pod', 'ingress-1', '--namespace', GW_NS, '--service-account', 'ingress', '--labels', 'istio=ingressgateway', '--ip', gatewayIp, '--xds-address', xds, '--admin-address', gatewayIp, '--admin-port', String(ADMIN), '--token-file', await tokenFile(GW_NS, 'ingress'), '--delta']),
    });
  });

  after(async () => {
    for (const s of nacking) await s.close();
    await sidecar?.stop();
    await gateway?.stop();
    await meshd?.stop();
    await kube?.stop();
  });

  const statusRows = async (): Promise<Record<string, string>[]> => {
    const r = await meshdCli('proxy-status');
    assert.equal(r.code, 0, r.stderr);
    return parseTable(r.stdout);
  };

  it('proxy-status: every connected Envoy SYNCED, through the istiod pods\' pods/proxy', async () => {
    const rows = await eventually('both Envoys SYNCED', async () => {
      const rs = await statusRows();
      const want = ['ingress-1.gw', 'sleep-1.apps'];
      return want.every((n) => rs.some((r) => r.NAME === n && r.CDS === 'SYNCED' && r.LDS === 'SYNCED' && r.EDS === 'SYNCED' && r.RDS === 'SYNCED')) ? rs : undefined;
    }, 15_000);
    for (const r of rows) {
      assert.equal(r.ECDS, 'IGNORED', 'meshd serves no ECDS');
      assert.equal(r.ISTIOD, REPLICA);
      assert.equal(r.CLUSTER, 'Kubernetes');
      assert.equal(r.VERSION, 'meshd-0.1');
    }
  });

  it('proxy-status: a proxy that NACKed is STALE', async () => {
    const s = connectAds(`127.0.0.1:${meshd.grpcPort}`);
    nacking.push(s);
    s.send({ node: istioNode({ pod: 'nack-1', namespace: NS, ip: '10.9.9.9', metadata: { ISTIO_VERSION: '1.31.0' } }), type_url: TypeUrl.Cluster });
    const cds = await s.next(5000);
    s.send({ type_url: TypeUrl.Cluster, version_info: '', response_nonce: cds.nonce, error_detail: { code: 3, message: 'rejected for the test' } });
    const row = await eventually('nack-1 STALE', async () => (await statusRows()).find((r) => r.NAME === 'nack-1.apps' && r.CDS === 'STALE'), 10_000);
    assert.equal(row.LDS, 'IGNORED', 'it never asked for listeners');
    assert.equal(row.VERSION, '1.31.0');
  });

  it('proxy-status <pod>: what meshd sent matches what the Envoy holds', async () => {
    const r = await meshdCli('proxy-status', 'sleep-1.apps');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Clusters Match\nListeners Match\nRoutes Match \(RDS last loaded at \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d UTC\)\n$/);
    const g = await meshdCli('proxy-status', 'ingress-1', '-n', GW_NS);
    assert.match(g.stdout, /^Clusters Match\nListeners Match\nRoutes Match/, g.stderr);
    // With MESHD_INSPECT_CAPTURE=1 these real dumps become the golden tests' inputs.
    if (process.env.MESHD_INSPECT_CAPTURE === '1') {
      for (const [name, envoy, id] of [['sidecar', sidecar, 'sleep-1.apps'], ['gateway', gateway, 'ingress-1.gw']] as const) {
        const dir = join(REPO_ROOT, 'test', 'golden', 'inspect', name);
        mkdirSync(dir, { recursive: true });
        const syncz = JSON.parse((await httpText(MONITORING, '/debug/syncz', meshdIp)).body) as { proxy: string }[];
        const nodeId = syncz.find((e) => e.proxy.includes(`~${id}~`))!.proxy;
        // (the service-account token in the bootstrap is left out)
        writeFileSync(join(dir, 'config_dump.json'), JSON.stringify(redactCredentials(JSON.parse(await envoy.admin('/config_dump'))), null, 2) + '\n');
        writeFileSync(join(dir, 'clusters.json'), JSON.stringify(JSON.parse(await envoy.admin('/clusters?format=json')), null, 2) + '\n');
        writeFileSync(join(dir, 'meshd_dump.json'), (await httpText(MONITORING, `/debug/config_dump?proxyID=${encodeURIComponent(nodeId)}`, meshdIp)).body);
        writeFileSync(join(dir, 'syncz.json'), JSON.stringify(syncz, null, 2) + '\n');
      }
    }
  });

  it('proxy-config cluster: one row per cluster of the Envoy, with subsets and types', async () => {
    const dump = await sidecar.configDump();
    const envoyClusters: Any[] = dump.configs.find((c: Any) => c['@type'].endsWith('ClustersConfigDump'));
    const all = [...(envoyClusters as Any).dynamic_active_clusters, ...(envoyClusters as Any).static_clusters].map((c: Any) => c.cluster);
    const r = await meshdCli('proxy-config', 'cluster', 'sleep-1.apps');
    assert.equal(r.code, 0, r.stderr);
    const rows = parseTable(r.stdout);
    const names = rows.map((x) => (x.PORT === '-' ? x['SERVICE FQDN']! : `${x.DIRECTION}|${x.PORT}|${x.SUBSET === '-' ? '' : x.SUBSET}|${x['SERVICE FQDN']}`));
    assert.deepEqual([...names].sort(), all.map((c: Any) => c.name as string).sort());
    for (const row of rows) {
      const name = names[rows.indexOf(row)]!;
      assert.equal(row.TYPE, all.find((c: Any) => c.name === name).type ?? 'STATIC', name);
    }
    assert.ok(rows.some((x) => x.SUBSET === 'v1' && x['SERVICE FQDN'] === `httpbin.${NS}.svc.cluster.local` && x.PORT === String(servicePort) && x.DIRECTION === 'outbound'));
    const filtered = parseTable((await meshdCli('pc', 'clusters', 'sleep-1.apps', '--fqdn', 'httpbin', '--subset', 'v1')).stdout);
    assert.deepEqual(filtered.map((x) => x.SUBSET), ['v1']);
    const json = JSON.parse((await meshdCli('pc', 'cluster', 'sleep-1.apps', '-o', 'json', '--direction', 'outbound')).stdout) as { name: string }[];
    assert.deepEqual(json.map((c) => c.name).sort(), all.map((c: Any) => c.name as string).filter((n: string) => n.includes('outbound')).sort());
  });

  it('proxy-config listener and route: rows match the Envoy\'s listeners and routes (sidecar and gateway)', async () => {
    for (const [target, envoy] of [['sleep-1.apps', sidecar], ['ingress-1.gw', gateway]] as const) {
      const dump = await envoy.configDump();
      const ls = dump.configs.find((c: Any) => c['@type'].endsWith('ListenersConfigDump'));
      const listeners = [...(ls.dynamic_listeners ?? []).map((l: Any) => l.active_state.listener), ...(ls.static_listeners ?? []).map((l: Any) => l.listener)];
      const chains = listeners.reduce((n: number, l: Any) => n + (l.filter_chains?.length ?? 0) + (l.default_filter_chain ? 1 : 0), 0);
      const lrows = parseTable((await meshdCli('proxy-config', 'listener', target)).stdout);
      assert.equal(lrows.length, chains, `${target}: one row per filter chain`);
      assert.deepEqual([...new Set(lrows.map((x) => Number(x.PORT)))].sort(), [...new Set(listeners.map((l: Any) => l.address.socket_address.port_value as number))].sort());
      const rs = dump.configs.find((c: Any) => c['@type'].endsWith('RoutesConfigDump'));
      const routeConfigs = [...(rs.dynamic_route_configs ?? []), ...(rs.static_route_configs ?? [])].map((x: Any) => x.route_config);
      const rrows = parseTable((await meshdCli('proxy-config', 'route', target)).stdout);
      for (const rc of routeConfigs) {
        const expected = (rc.virtual_hosts ?? []).reduce((n: number, vh: Any) => n + Math.max(1, (vh.routes ?? []).filter((x: Any) => x.route?.cluster !== 'PassthroughCluster').length), 0);
        assert.equal(rrows.filter((x) => x.NAME === rc.name).length, expected, `${target}: rows of route ${rc.name}`);
      }
    }
    const gw = parseTable((await meshdCli('proxy-config', 'listener', 'ingress-1.gw', '--port', String(gwHttpsPort))).stdout);
    assert.deepEqual(gw.map((x) => [x.ADDRESSES, x.MATCH]), [['0.0.0.0', 'SNI: httpbin.example.com']]);
    assert.match(gw[0]!.DESTINATION!, /^Route: https\./);
    const http = parseTable((await meshdCli('proxy-config', 'routes', 'ingress-1.gw', '--name', `http.${gwHttpPort}`)).stdout);
    assert.deepEqual(http.map((x) => [x['VHOST NAME'], x.DOMAINS, x.MATCH]), [[`httpbin.example.com:${gwHttpPort}`, 'httpbin.example.com', '/status*']]);
  });

  it('proxy-config endpoint: every host of the Envoy\'s /clusters with its health', async () => {
    const clusters = JSON.parse(await sidecar.admin('/clusters?format=json')) as { cluster_statuses: { name: string; host_statuses?: unknown[] }[] };
    const hosts = clusters.cluster_statuses.reduce((n, c) => n + (c.host_statuses?.length ?? 0), 0);
    const rows = parseTable((await meshdCli('proxy-config', 'endpoints', 'sleep-1.apps')).stdout);
    assert.equal(rows.length, hosts);
    const backend = rows.filter((x) => x.ENDPOINT === `${backendIp}:8080`);
    assert.deepEqual(backend.map((x) => x.CLUSTER).sort(), [`outbound|${servicePort}||httpbin.${NS}.svc.cluster.local`, `outbound|${servicePort}|v1|httpbin.${NS}.svc.cluster.local`].sort());
    assert.ok(backend.every((x) => x.STATUS === 'HEALTHY' && x['OUTLIER CHECK'] === 'OK'));
    const one = parseTable((await meshdCli('pc', 'endpoint', 'sleep-1.apps', '--cluster', `outbound|${servicePort}|v1|httpbin.${NS}.svc.cluster.local`)).stdout);
    assert.equal(one.length, 1);
  });

  it('proxy-config secret: the workload certificate and root the Envoy holds (sidecar), the credential (gateway)', async () => {
    const rows = await eventually('default and ROOTCA', async () => {
      const rs = parseTable((await meshdCli('proxy-config', 'secret', 'sleep-1.apps')).stdout);
      return rs.length === 2 ? rs : undefined;
    });
    const certs = JSON.parse(await sidecar.admin('/certs')) as { certificates: { cert_chain: { serial_number: string; subject_alt_names: { uri?: string }[] }[] }[] };
    const leaf = certs.certificates.flatMap((c) => c.cert_chain).find((c) => c.subject_alt_names.some((s) => s.uri === `spiffe://cluster.local/ns/${NS}/sa/sleep`));
    assert.ok(leaf);
    const def = rows.find((x) => x['RESOURCE NAME'] === 'default')!;
    assert.deepEqual([def.TYPE, def.STATUS, def['VALID CERT']], ['Cert Chain', 'ACTIVE', 'true']);
    assert.equal(def['SERIAL NUMBER']!.replace(/^0+/, ''), leaf.serial_number.toLowerCase().replace(/^0+/, ''));
    const root = rows.find((x) => x['RESOURCE NAME'] === 'ROOTCA')!;
    assert.equal(root.TYPE, 'CA');
    const gw = parseTable((await meshdCli('proxy-config', 'secret', 'ingress-1.gw')).stdout);
    const cred = gw.find((x) => x['RESOURCE NAME'] === 'kubernetes://httpbin-cred');
    assert.ok(cred, `the gateway's credential: ${JSON.stringify(gw)}`);
    const served = new X509Certificate(selfSignedPem(await gateway.configDump()));
    assert.equal(cred['NOT AFTER'], new Date(served.validTo).toISOString().replace(/\.\d{3}Z$/, 'Z'));
  });

  it('proxy-config log: reads and sets the Envoy\'s log levels', async () => {
    const set = await meshdCli('proxy-config', 'log', 'sleep-1.apps', '--level', 'http:debug');
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /^ {2}http: debug$/m);
    const read = await meshdCli('pc', 'log', 'sleep-1.apps');
    assert.match(read.stdout, /^ {2}http: debug$/m);
    assert.match(read.stdout, /^ {2}router: info$/m);
  });

  it('proxy-config bootstrap: the Envoy\'s bootstrap, its token redacted', async () => {
    const r = await meshdCli('proxy-config', 'bootstrap', 'sleep-1.apps');
    assert.equal(r.code, 0, r.stderr);
    const b = JSON.parse(r.stdout) as { bootstrap: { node: { id: string } } };
    assert.equal(b.bootstrap.node.id, `sidecar~${sidecarIp}~sleep-1.${NS}~${NS}.svc.cluster.local`);
    assert.ok(r.stdout.includes('[redacted]') && !r.stdout.includes('Bearer ey'), 'the token is not printed');
    const all = await meshdCli('proxy-config', 'all', 'sleep-1.apps');
    assert.equal(all.code, 0, all.stderr);
    for (const h of ['SERVICE FQDN', 'ADDRESSES', 'VHOST NAME', 'ENDPOINT', 'RESOURCE NAME']) assert.ok(all.stdout.includes(h), h);
  });

  it('a bad pod name gives a clear error; a pod meshd does not serve too', async () => {
    const r = await meshdCli('proxy-config', 'cluster', 'nosuch', '-n', NS);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^meshd: pod "nosuch" not found in namespace "apps" \(pods there: .*sleep-1.*\); give <pod>\.<namespace> or -n <namespace>\n$/);
    const s = await meshdCli('proxy-status', 'httpbin-1.apps');
    assert.equal(s.code, 1);
    assert.match(s.stderr, /proxy httpbin-1\.apps is not connected to meshd \(checked 1 replica: istiod-7d4b9c-x2x9k\)/);
    const ns = await meshdCli('proxy-status', '-i', 'nowhere');
    assert.match(ns.stderr, /no running meshd \(istiod\) pods in namespace "nowhere"/);
  });

  it('version: client, control plane and data plane, as istioctl', async () => {
    const r = await meshdCli('version');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^client version: 0\.1\.0\ncontrol plane version: 0\.1\.0\ndata plane version: (1\.31\.0 \(1 proxies\), )?meshd-0\.1 \(2 proxies\)\n$/);
    const json = JSON.parse((await meshdCli('version', '-o', 'json')).stdout) as { meshVersion: { Info: { id: string } }[] };
    assert.deepEqual(json.meshVersion.map((m) => m.Info.id), [REPLICA]);
  });

  it('the debug endpoints bound what a client sends back', async () => {
    const huge = 'x'.repeat(10_000);
    const r = await httpText(MONITORING, `/debug/config_dump?proxyID=${huge}`, meshdIp);
    assert.equal(r.status, 404);
    assert.ok(r.body.length < 1000, `the 404 is ${r.body.length} bytes`);
    const s = await httpText(MONITORING, `/debug/syncz?namespace=${huge}`, meshdIp);
    assert.equal(s.status, 200);
    assert.deepEqual(JSON.parse(s.body), []);
  });

  describe('over xDS (istio.io/debug/*)', () => {
    let rootPem: Buffer;
    before(async () => {
      rootPem = Buffer.from(JSON.parse((await httpText(MONITORING, '/debug/caz', meshdIp)).body).rootCertPem as string);
    });
    /** An ADS stream over TLS to 15012 (meshd's certificate checked), with a token if given. */
    const secureAds = (t: string | undefined): SotwStream =>
      connectAds(`127.0.0.1:${meshd.secureGrpcPort}`, { credentials: grpc.credentials.createSsl(rootPem), metadata: t ? { authorization: `Bearer ${t}` } : {} });

    it('refuses a caller without a token, answers one of meshd\'s namespace with every proxy, one of another namespace with its own', async () => {
      const anon = connectAds(`127.0.0.1:${meshd.grpcPort}`);
      anon.send({ node: istioNode({ pod: 'istioctl' }), type_url: 'istio.io/debug/syncz' });
      const st = await anon.ended(5000);
      assert.equal(st.code, grpc.status.UNAUTHENTICATED);
      assert.match(st.details, /needs a verified caller/);
      await anon.close();

      const sys = secureAds(await token('istio-system', 'default'));
      sys.send({ node: istioNode({ pod: 'istioctl', namespace: 'istio-system' }), type_url: 'istio.io/debug/syncz' });
      const all = await sys.next(5000);
      assert.equal(JSON.parse(all.control_plane!).ID, REPLICA);
      const ids = all.resources.map((x) => (x.body as { node: { id: string } }).node.id);
      for (const want of ['sleep-1.apps', 'ingress-1.gw', 'nack-1.apps']) assert.ok(ids.includes(want), `${want} in ${ids.join(', ')}`);
      // Its ACK is not answered again.
      sys.send({ type_url: 'istio.io/debug/syncz', response_nonce: all.nonce, version_info: all.version_info });
      await sys.expectNoResponse(500);
      await sys.close();

      const apps = secureAds(await token(NS, 'sleep'));
      apps.send({ node: istioNode({ pod: 'debugger', namespace: NS }), type_url: 'istio.io/debug/syncz' });
      const mine = await apps.next(5000);
      assert.ok(mine.resources.every((x) => (x.body as { node: { id: string } }).node.id.endsWith('.apps')));
      apps.send({ type_url: 'istio.io/debug/config_dump', resource_names: ['ingress-1.gw'], response_nonce: 'other' });
      assert.equal((await apps.next(5000)).resources.length, 0, 'another namespace\'s proxy is not dumped');
      await apps.close();
    });

    it('bounds hostile requests: huge names, many names, many requests; never a key', async () => {
      const t = await token('istio-system', 'default');
      const huge = secureAds(t);
      huge.send({ node: istioNode({ pod: 'h', namespace: 'istio-system' }), type_url: 'istio.io/debug/config_dump', resource_names: ['y'.repeat(100_000)] });
      assert.equal((await huge.ended(5000)).code, grpc.status.INVALID_ARGUMENT);
      await huge.close();
      const many = secureAds(t);
      many.send({ node: istioNode({ pod: 'h', namespace: 'istio-system' }), type_url: 'istio.io/debug/syncz', resource_names: Array.from({ length: 1000 }, (_, i) => `n${i}`) });
      assert.equal((await many.ended(5000)).code, grpc.status.INVALID_ARGUMENT);
      await many.close();
      const flood = secureAds(t);
      let answered = 0;
      for (let i = 0; i < 70 && !flood.status; i++) {
        flood.send({ ...(i === 0 ? { node: istioNode({ pod: 'h', namespace: 'istio-system' }) } : {}), type_url: 'istio.io/debug/config_dump', resource_names: ['ingress-1.gw'], response_nonce: `n${i}` });
        await flood.next(5000).then(() => answered++, () => undefined);
      }
      const st = await flood.ended(5000);
      assert.equal(st.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(answered, 64);
      for (const r of flood.received) assert.ok(!JSON.stringify(r).includes('PRIVATE KEY'), 'no private key in a dump');
      const secrets = flood.received[0]!.resources.find((x) => x.type_url.endsWith('SecretsConfigDump'))!.body as { dynamic_active_secrets: { name: string }[] };
      assert.ok(secrets.dynamic_active_secrets.some((s) => s.name === 'kubernetes://httpbin-cred'));
      await flood.close();
    });
  });

  describe("Istio's istioctl against meshd", () => {
    const paths = join(homedir(), '.cache', 'meshd', 'istioctl-paths');
    const istioctl = (): string => {
      assert.ok(existsSync(paths), `istioctl is not built: run scripts/provision-istioctl.sh (npm run provision)`);
      return /^ISTIOCTL=(.*)$/m.exec(readFileSync(paths, 'utf8'))![1]!;
    };

    it('istioctl proxy-status (token over TLS to 15012) lists the proxies SYNCED, ISTIOD the replica', async () => {
      const r = await run(istioctl(), ['proxy-status', '--xds-address', `127.0.0.1:${meshd.secureGrpcPort}`, '--kubeconfig', kubeconfig, '-v', '1', '--timeout', '20s']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const rows = parseTable(r.stdout);
      const sleep = rows.find((x) => x.NAME === 'sleep-1.apps');
      assert.ok(sleep, r.stdout);
      assert.equal(sleep.ISTIOD, REPLICA);
      for (const col of ['CDS', 'LDS', 'EDS', 'RDS']) assert.match(sleep[col]!, /^SYNCED/, `${col}: ${r.stdout}`);
      const nack = rows.find((x) => x.NAME === 'nack-1.apps');
      assert.match(nack?.CDS ?? '', /^ERROR/, 'a NACKed type is ERROR for istioctl, as istiod reports it');
    });

    it('istioctl proxy-status <pod> --file <Envoy config dump>: Clusters, Listeners and Routes Match', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'meshd-dump-'));
      const file = join(dir, 'config_dump.json');
      writeFileSync(file, await sidecar.admin('/config_dump'));
      const r = await run(istioctl(), ['proxy-status', 'sleep-1.apps', '--file', file, '--xds-address', `127.0.0.1:${meshd.secureGrpcPort}`, '--kubeconfig', kubeconfig, '--timeout', '20s']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /^Clusters Match\nListeners Match\nRoutes Match/);
    });

    it('istioctl --plaintext without a token is refused, as istiod refuses it', async () => {
      const r = await run(istioctl(), ['proxy-status', '--xds-address', `127.0.0.1:${meshd.grpcPort}`, '--plaintext', '--kubeconfig', kubeconfig, '--timeout', '5s']);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr + r.stdout, /Unauthenticated.*needs a verified caller/, r.stderr + r.stdout);
    });
  });
});

/** The certificate of the gateway's credential, as its Envoy holds it. */
function selfSignedPem(dump: Any): string {
  const s = dump.configs.find((c: Any) => c['@type'].endsWith('SecretsConfigDump'));
  const cred = s.dynamic_active_secrets.find((x: Any) => x.name === 'kubernetes://httpbin-cred');
  const chain = cred.secret.tls_certificate.certificate_chain;
  return chain.inline_bytes ? Buffer.from(chain.inline_bytes, 'base64').toString('utf8') : chain.inline_string;
}
