// ServiceEntry through a real Envoy. Local HTTP servers stand in for hosts outside the
// mesh: a STATIC ServiceEntry whose endpoint is 127.0.0.1 and a DNS one whose endpoint is
// `localhost` (resolved by Envoy) both answer, a VirtualService on a ServiceEntry host
// applies (fault abort, header route to another ServiceEntry host), and, through a captured
// sidecar under REGISTRY_ONLY, the ServiceEntry host is reachable while an unlisted host
// gets 502 (it passed through under ALLOW_ANY); and Istio's egress gateway route: the
// sidecar sends the host to istio-egressgateway, which sends it on to the host.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, envoyForProxyUid, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import { createPod, type Pod } from '../support/netns.js';
import { appGet as podAppGet, type AppGetResult } from '../support/pod-http.js';

const STATIC_HOST = 'static.external.test';
const DNS_HOST = 'dns.external.test';

function serviceEntry(o: { name: string; host: string; port: number; resolution: string; endpoints?: string[]; targetPort?: number; addresses?: string[] }): string {
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: ServiceEntry',
    `metadata: {name: ${o.name}, namespace: default}`,
    'spec:',
    `  hosts: [${o.host}]`,
    ...(o.addresses ? [`  addresses: ${JSON.stringify(o.addresses)}`] : []),
    `  ports: [{number: ${o.port}, name: http, protocol: HTTP${o.targetPort ? `, targetPort: ${o.targetPort}` : ''}}]`,
    '  location: MESH_EXTERNAL',
    `  resolution: ${o.resolution}`,
    ...(o.endpoints ? ['  endpoints:', ...o.endpoints.map((e) => `  - ${e}`)] : []),
    '',
  ].join('\n');
}

describe('ServiceEntry: external hosts through a real Envoy (no capture)', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let staticBackend: Backend;
  let dnsBackend: Backend;
  let port: number;

  const get = (host: string, headers: Record<string, string> = {}) => httpGet(`http://127.0.0.1:${port}/get`, { headers: { host, ...headers }, timeoutMs: 5000 });

  async function clusterTypes(): Promise<Map<string, string>> {
    const dump = (await envoy.configDump('?resource=dynamic_active_clusters')) as { configs: { cluster: { name: string; type?: string } }[] };
    return new Map(dump.configs.map((c) => [c.cluster.name, c.cluster.type ?? 'STATIC']));
  }

  before(async () => {
    staticBackend = await startHttpBackend('ext-static');
    dnsBackend = await startHttpBackend('ext-dns');
    port = await freePort();
    meshd = await startMeshd({
      files: {
        'static.yaml': serviceEntry({ name: 'ext-static', host: STATIC_HOST, port, targetPort: staticBackend.port, resolution: 'STATIC', endpoints: ['{address: 127.0.0.1}'] }),
        'dns.yaml': serviceEntry({ name: 'ext-dns', host: DNS_HOST, port, resolution: 'DNS', endpoints: [`{address: localhost, ports: {http: ${dnsBackend.port}}}`] }),
      },
    });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'sleep-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'service-entry' });
    await envoy.waitFor(async () => (await get(STATIC_HOST).catch(() => undefined))?.status === 200, { what: 'the route to the ServiceEntry host', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    await staticBackend?.close();
    await dnsBackend?.close();
  });

  it('STATIC: the endpoint 127.0.0.1 answers, over EDS', async () => {
    const r = await get(STATIC_HOST);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-backend'], 'ext-static');
    assert.equal((await clusterTypes()).get(`outbound|${port}||${STATIC_HOST}`), 'EDS');
  });

  it('DNS: Envoy resolves the endpoint localhost (STRICT_DNS)', async () => {
    await envoy.waitFor(async () => (await get(DNS_HOST).catch(() => undefined))?.status === 200, { what: 'localhost to resolve', timeoutMs: 10_000 });
    const r = await get(DNS_HOST);
    assert.equal(r.headers['x-backend'], 'ext-dns');
    assert.equal((await clusterTypes()).get(`outbound|${port}||${DNS_HOST}`), 'STRICT_DNS');
  });

  it('DNS_ROUND_ROBIN: a LOGICAL_DNS cluster of the endpoint', async () => {
    meshd.writeConfig('dns.yaml', serviceEntry({ name: 'ext-dns', host: DNS_HOST, port, resolution: 'DNS_ROUND_ROBIN', endpoints: [`{address: localhost, ports: {http: ${dnsBackend.port}}}`] }));
    await envoy.waitFor(async () => (await clusterTypes()).get(`outbound|${port}||${DNS_HOST}`) === 'LOGICAL_DNS', { what: 'the LOGICAL_DNS cluster', timeoutMs: 10_000 });
    await envoy.waitFor(async () => (await get(DNS_HOST).catch(() => undefined))?.headers['x-backend'] === 'ext-dns', { what: 'the LOGICAL_DNS host to answer', timeoutMs: 10_000 });
  });

  it('a host no ServiceEntry lists has no route (the catch-all answers 502) and reaches nothing', async () => {
    const before = staticBackend.requests.length + dnsBackend.requests.length;
    const r = await get('unlisted.external.test');
    assert.equal(r.status, 502);
    assert.equal(staticBackend.requests.length + dnsBackend.requests.length, before);
  });

  it('a VirtualService on a ServiceEntry host applies: fault abort, and a header route to another ServiceEntry host', async () => {
    meshd.writeConfig(
      'vs.yaml',
      [
        'apiVersion: networking.istio.io/v1',
        'kind: VirtualService',
        'metadata: {name: dns-external, namespace: default}',
        'spec:',
        `  hosts: [${DNS_HOST}]`,
        '  http:',
        '  - match: [{headers: {x-fail: {exact: "1"}}}]',
        '    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}',
        `    route: [{destination: {host: ${DNS_HOST}}}]`,
        '  - match: [{headers: {x-to: {exact: static}}}]',
        `    route: [{destination: {host: ${STATIC_HOST}}}]`,
        `  - route: [{destination: {host: ${DNS_HOST}}}]`,
        '',
      ].join('\n'),
    );
    await envoy.waitFor(async () => (await get(DNS_HOST, { 'x-fail': '1' })).status === 418, { what: 'the fault to apply', timeoutMs: 10_000 });
    const before = dnsBackend.requests.length;
    assert.equal((await get(DNS_HOST, { 'x-fail': '1' })).status, 418);
    assert.equal(dnsBackend.requests.length, before, 'the aborted request reached nothing');
    const routed = await get(DNS_HOST, { 'x-to': 'static' });
    assert.equal(routed.status, 200);
    assert.equal(routed.headers['x-backend'], 'ext-static');
    assert.equal((await get(DNS_HOST)).headers['x-backend'], 'ext-dns');
    meshd.removeConfig('vs.yaml');
    await envoy.waitFor(async () => (await get(DNS_HOST, { 'x-fail': '1' })).status === 200, { what: 'the VirtualService to go', timeoutMs: 10_000 });
  });

  it('an invalid ServiceEntry is refused, naming the field; the others keep serving', async () => {
    meshd.writeConfig('bad.yaml', serviceEntry({ name: 'bad', host: 'bad.external.test', port, resolution: 'STATIC', endpoints: ['{address: not-an-ip.example}'] }));
    await envoy.waitFor(() => meshd.records().some((r) => String(r.msg).includes('spec.endpoints[0].address')), { what: 'the refusal', timeoutMs: 10_000 });
    assert.equal((await get(STATIC_HOST)).status, 200);
    assert.equal((await get('bad.external.test')).status, 502);
    meshd.removeConfig('bad.yaml');
  });

  it('deleting the ServiceEntry removes its host', async () => {
    meshd.removeConfig('static.yaml');
    await envoy.waitFor(async () => (await get(STATIC_HOST)).status === 502, { what: 'the host to go', timeoutMs: 10_000 });
    assert.equal((await clusterTypes()).has(`outbound|${port}||${STATIC_HOST}`), false);
  });
});


describe('ServiceEntry: REGISTRY_ONLY through a captured sidecar', () => {
  const PROXY_UID = 1337;
  const ADMIN_PORT = 15000;
  let pod: Pod;
  let meshd: MeshdProcess;
  let envoy: ChildProcess;
  let envoyLog = '';
  let external: Backend;
  let dir: string;
  let meshFile: string;

  const appGet = (url: string, host?: string): Promise<AppGetResult> => podAppGet(pod, url, host);

  async function until(what: string, predicate: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${envoyLog.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const writeMeshConfig = (yaml: string): void => {
    writeFileSync(`${meshFile}.tmp`, yaml);
    renameSync(`${meshFile}.tmp`, meshFile);
  };

  before(async () => {
    pod = await createPod({ name: 'svcentry', proxyUid: PROXY_UID, excludeInboundPorts: [ADMIN_PORT] });
    external = await startHttpBackend('external', { host: pod.hostIp });
    dir = mkdtempSync(join(tmpdir(), 'meshd-svcentry-'));
    meshFile = join(dir, 'mesh.yaml');
    writeFileSync(meshFile, 'outboundTrafficPolicy: {mode: ALLOW_ANY}\n');
    meshd = await startMeshd({
      files: { 'api.yaml': serviceEntry({ name: 'api', host: 'api.external.test', port: external.port, resolution: 'STATIC', endpoints: [`{address: ${pod.hostIp}}`] }) },
      extraArgs: ['--grpc-addr', `${pod.hostIp}:0`, '--mesh-config', meshFile],
    });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--ip', pod.podIp, '--pod', 'sleep-1', '--namespace', 'default', '--labels', 'app=sleep',
      '--xds-address', `${pod.hostIp}:${meshd.grpcPort}`, '--admin-port', String(ADMIN_PORT), '--admin-address', '0.0.0.0', '--format', 'json',
    ], { encoding: 'utf8' });
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'envoy.json'), bootstrap, { mode: 0o644 });
    envoy = pod.spawn([envoyForProxyUid(), '-c', join(dir, 'envoy.json'), '--disable-hot-restart', '--concurrency', '1', '-l', 'info'], { uid: PROXY_UID });
    envoy.stdout!.on('data', (c: Buffer) => (envoyLog = (envoyLog + c.toString()).slice(-100_000)));
    envoy.stderr!.on('data', (c: Buffer) => (envoyLog = (envoyLog + c.toString()).slice(-100_000)));
    await until('Envoy in the pod to be ready', async () => (await httpGet(`http://${pod.podIp}:${ADMIN_PORT}/ready`, { timeoutMs: 1000 }).catch(() => undefined))?.status === 200);
    await until('the ServiceEntry host to answer', async () => (await appGet(`http://${pod.hostIp}:${external.port}/`, 'api.external.test')).backend === 'external');
  });

  after(async () => {
    await pod?.destroy();
    await meshd?.stop();
    await external?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ALLOW_ANY: an unlisted host passes through to its original destination', async () => {
    const r = await appGet(`http://${pod.hostIp}:${external.port}/`, 'unlisted.external.test');
    assert.equal(r.status, 200);
    assert.equal(r.backend, 'external');
  });

  it('REGISTRY_ONLY: the unlisted host gets 502 and reaches nothing; the ServiceEntry host works', async () => {
    writeMeshConfig('outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n');
    await until('the catch-all to answer 502', async () => (await appGet(`http://${pod.hostIp}:${external.port}/`, 'unlisted.external.test')).status === 502);
    const before = external.requests.length;
    assert.equal((await appGet(`http://${pod.hostIp}:${external.port}/`, 'unlisted.external.test')).status, 502);
    assert.equal(external.requests.length, before, 'the blocked request reached nothing');
    const r = await appGet(`http://${pod.hostIp}:${external.port}/`, 'api.external.test');
    assert.equal(r.status, 200);
    assert.equal(r.backend, 'external');
    assert.equal(external.requests.length, before + 1);
  });

  it('REGISTRY_ONLY: once the ServiceEntry is deleted, its host is blocked too', async () => {
    meshd.removeConfig('api.yaml');
    await until('the host to be blocked', async () => {
      const r = await appGet(`http://${pod.hostIp}:${external.port}/`, 'api.external.test');
      return r.status !== 200;
    });
  });
});

describe("ServiceEntry: Istio's egress gateway route (sidecar -> istio-egressgateway -> external host)", () => {
  const HOST = 'egress.external.test';
  let meshd: MeshdProcess;
  let sidecar: EnvoyProcess;
  let gateway: EnvoyProcess;
  let external: Backend;
  let port: number;
  let gatewayServicePort: number;
  let gatewayPort: number;
  let tutorial: string;

  const get = (headers: Record<string, string> = {}) => httpGet(`http://127.0.0.1:${port}/get`, { headers: { host: HOST, ...headers }, timeoutMs: 5000 });
  const upstreamRequests = async (envoy: EnvoyProcess, cluster: string): Promise<number> => (await envoy.stats()).get(`cluster.${cluster}.upstream_rq_total`) ?? 0;

  before(async () => {
    external = await startHttpBackend('external');
    port = await freePort();
    gatewayServicePort = await freePort();
    gatewayPort = await freePort();
    // The egress tutorial's objects, with the external host served locally and the demo
    // profile's istio-egressgateway Service sending its port to the gateway's listener.
    tutorial = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [${HOST}]
  ports: [{number: ${port}, name: http-port, protocol: HTTP, targetPort: ${external.port}}]
  resolution: DNS
  endpoints: [{address: localhost}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: ${gatewayServicePort}, name: http, protocol: HTTP}, hosts: [${HOST}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets: [{name: external}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway, namespace: default}
spec:
  hosts: [${HOST}]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: ${port}}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: ${gatewayServicePort}}}}]
  - match: [{gateways: [istio-egressgateway], port: ${gatewayServicePort}}]
    route: [{destination: {host: ${HOST}, port: {number: ${port}}}}]
`;
    meshd = await startMeshd({
      files: {
        'egressgateway.yaml': serviceYaml({ name: 'istio-egressgateway', namespace: 'istio-system', selector: { istio: 'egressgateway' }, ports: [{ name: 'http2', port: gatewayServicePort, targetPort: gatewayPort }], endpoints: [{ ip: '127.0.0.1' }] }),
        'tutorial.yaml': tutorial,
      },
    });
    const gatewayBootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--type', 'router', '--pod', 'istio-egressgateway-1', '--namespace', 'istio-system',
      '--labels', 'istio=egressgateway,app=istio-egressgateway', '--xds-address', meshd.xdsAddress, '--admin-port', '0', '--readiness-port', '0', '--delta',
    ], { encoding: 'utf8' });
    gateway = await startEnvoy({ bootstrap: parse(gatewayBootstrap) as object, name: 'egressgateway' });
    await gateway.waitFor(() => gateway.hasActiveListener(`0.0.0.0_${gatewayPort}`), { what: 'the egress gateway listener on the targetPort', timeoutMs: 10_000 });
    const sidecarBootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'sleep-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    sidecar = await startEnvoy({ bootstrap: parse(sidecarBootstrap) as object, name: 'egress-sidecar' });
    await sidecar.waitFor(async () => (await get().catch(() => undefined))?.status === 200, { what: 'the route through the egress gateway', timeoutMs: 15_000 });
  });

  after(async () => {
    await sidecar?.stop();
    await gateway?.stop();
    await meshd?.stop();
    await external?.close();
  });

  it('the sidecar sends the external host to the egress gateway, which sends it to the host', async () => {
    const viaGateway = `outbound|${gatewayServicePort}|external|istio-egressgateway.istio-system.svc.cluster.local`;
    const toHost = `outbound|${port}||${HOST}`;
    const sidecarBefore = await upstreamRequests(sidecar, viaGateway);
    const gatewayBefore = await upstreamRequests(gateway, toHost);
    const externalBefore = external.requests.length;
    const r = await get();
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-backend'], 'external');
    assert.equal(await upstreamRequests(sidecar, viaGateway), sidecarBefore + 1, 'the sidecar sent it to the egress gateway subset');
    assert.equal(await upstreamRequests(sidecar, toHost), 0, 'the sidecar did not go to the host directly');
    assert.equal(await upstreamRequests(gateway, toHost), gatewayBefore + 1, 'the egress gateway sent it to the ServiceEntry host');
    assert.equal(external.requests.length, externalBefore + 1);
    assert.equal(external.requests.at(-1)!.headers.host, HOST);
  });

  it('without the VirtualService the sidecar goes to the host directly', async () => {
    meshd.writeConfig('tutorial.yaml', tutorial.split('---\n').filter((doc) => !doc.includes('kind: VirtualService')).join('---\n'));
    await sidecar.waitFor(async () => (await get()).status === 200 && (await upstreamRequests(sidecar, `outbound|${port}||${HOST}`)) > 0, { what: 'the direct route', timeoutMs: 10_000 });
    const gatewayBefore = await upstreamRequests(gateway, `outbound|${port}||${HOST}`);
    assert.equal((await get()).status, 200);
    assert.equal(await upstreamRequests(gateway, `outbound|${port}||${HOST}`), gatewayBefore, 'the gateway saw nothing');
  });
});
