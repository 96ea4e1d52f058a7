// AuthorizationPolicy end to end, with real Envoys and meshd's mTLS identities: meshd on a
// real kube-apiserver, httpbin's sidecar in a "pod" network namespace with Istio's capture,
// and a client sidecar (`sleep`) started once as foo/sleep and once as bar/sleep, each with
// its own service-account token and so its own SPIFFE certificate. The tutorial's policies
// (allow sleep to GET /headers, deny POST, deny namespace bar, a header condition) give 200
// or 403 exactly where Istio's semantics say, over a table of requests; a plaintext caller
// and a TCP port are refused; deleting the policies restores access.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { startMeshd, MESHD_CLI, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { envoyForProxyUid, httpGet, httpRequest, startEnvoy, type EnvoyProcess } from '../support/envoy.js';
import { createPod, type Pod } from '../support/netns.js';
import { freePort } from '../support/backends.js';
import { eventually } from '../support/poll.js';

const PROXY_UID = 1337;
const SERVER_ADMIN = 15000;
const APP_PORT = 8080;
/** A port no Service names: inbound connections to it take the sidecar's TCP passthrough chain. */
const TCP_PORT = 9090;
const HOST = 'httpbin.foo.svc.cluster.local';
const POLICIES = '/apis/security.istio.io/v1/namespaces/foo/authorizationpolicies';

/** The app behind httpbin's sidecar: 200 and the path for anything that reaches it. */
const ECHO_APP = `require('node:http').createServer((q, s) => s.end('app ' + q.method + ' ' + q.url)).listen(${APP_PORT});`;

const POLICY_OBJECTS = [
  {
    metadata: { name: 'allow-sleep' },
    spec: {
      selector: { matchLabels: { app: 'httpbin' } },
      action: 'ALLOW',
      rules: [
        { from: [{ source: { principals: ['cluster.local/ns/foo/sa/sleep', 'cluster.local/ns/bar/sa/sleep'] } }], to: [{ operation: { methods: ['GET', 'POST'], paths: ['/headers', '/status/*'] } }] },
        { from: [{ source: { namespaces: ['foo'] } }], to: [{ operation: { paths: ['/ip'] } }], when: [{ key: 'request.headers[x-user]', values: ['alice'] }] },
      ],
    },
  },
  { metadata: { name: 'deny-post' }, spec: { selector: { matchLabels: { app: 'httpbin' } }, action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] } },
  { metadata: { name: 'deny-bar' }, spec: { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bar'] } }] }] } },
];

/** source identity x method x path x header -> status, as Istio's semantics say. */
const TABLE: { from: 'foo' | 'bar'; method: string; path: string; headers?: Record<string, string>; status: number; why: string }[] = [
  { from: 'foo', method: 'GET', path: '/headers', status: 200, why: 'ALLOW matches sleep in foo, GET /headers' },
  { from: 'foo', method: 'GET', path: '/status/418', status: 200, why: 'the prefix /status/* matches' },
  { from: 'foo', method: 'POST', path: '/headers', status: 403, why: 'DENY POST is evaluated before ALLOW' },
  { from: 'foo', method: 'GET', path: '/get', status: 403, why: 'no ALLOW rule matches the path' },
  { from: 'foo', method: 'DELETE', path: '/headers', status: 403, why: 'no ALLOW rule matches the method' },
  { from: 'foo', method: 'GET', path: '/ip', status: 403, why: 'the header condition is not met' },
  { from: 'foo', method: 'GET', path: '/ip', headers: { 'x-user': 'alice' }, status: 200, why: 'namespace foo with x-user: alice' },
  { from: 'foo', method: 'GET', path: '/ip', headers: { 'x-user': 'bob' }, status: 403, why: 'x-user is not alice' },
  { from: 'bar', method: 'GET', path: '/headers', status: 403, why: 'DENY from namespace bar, though ALLOW names bar/sleep' },
  { from: 'bar', method: 'GET', path: '/ip', headers: { 'x-user': 'alice' }, status: 403, why: 'DENY from namespace bar' },
  { from: 'bar', method: 'POST', path: '/status/200', status: 403, why: 'DENY POST and DENY bar' },
];

describe('AuthorizationPolicy between real Envoys with meshd identities', { timeout: 300_000 }, () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let pod: Pod;
  let serverEnvoy: ChildProcess;
  let serverLog = '';
  let servicePort: number;
  let rootFile: string;
  const clients = new Map<string, EnvoyProcess>();

  const bootstrap = (args: string[]): string => execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--format', 'json', ...args], { encoding: 'utf8' });
  const tokenFile = async (ns: string, sa: string): Promise<string> => {
    const r = await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['istio-ca'], expirationSeconds: 3600 } });
    const dir = mkdtempSync(join(tmpdir(), 'meshd-token-'));
    chmodSync(dir, 0o755);
    const file = join(dir, 'token');
    writeFileSync(file, r.status.token, { mode: 0o644 });
    return file;
  };

  /** The sleep sidecar of namespace `ns` (host network, no capture: it listens on 127.0.0.1:<service port>). */
  async function client(ns: string): Promise<EnvoyProcess> {
    let c = clients.get(ns);
    if (c) return c;
    for (const other of clients.values()) await other.stop();
    clients.clear();
    c = await startEnvoy({
      name: `authz-sleep-${ns}`,
      bootstrap: parse(
        bootstrap([
          '--ip', '127.0.0.1', '--pod', `sleep-${ns}`, '--namespace', ns, '--service-account', 'sleep', '--labels', 'app=sleep', '--interception', 'NONE',
          '--xds-address', `127.0.0.1:${meshd.secureGrpcPort}`, '--xds-root-cert', rootFile, '--admin-port', '0', '--readiness-port', '0', '--token-file', await tokenFile(ns, 'sleep'),
        ]),
      ) as object,
    });
    clients.set(ns, c);
    return c;
  }

  const call = async (ns: string, method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> => {
    await client(ns);
    return httpRequest(`http://127.0.0.1:${servicePort}${path}`, { method, headers: { host: HOST, ...headers }, timeoutMs: 5000 });
  };

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['peerauthentications.security.istio.io', 'authorizationpolicies.security.istio.io']);
    for (const ns of ['foo', 'bar']) {
      await kube.createNamespace(ns);
      await kube.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sleep' } });
    }
    await kube.request('POST', '/api/v1/namespaces/foo/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'httpbin' } });

    pod = await createPod({ name: 'authz-httpbin', proxyUid: PROXY_UID, excludeInboundPorts: [SERVER_ADMIN] });
    servicePort = await freePort();
    await kube.request('POST', '/api/v1/namespaces/foo/pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'httpbin-1', labels: { app: 'httpbin', 'security.istio.io/tlsMode': 'istio' } },
      spec: { serviceAccountName: 'httpbin', containers: [{ name: 'app', image: 'httpbin' }] },
    });
    await kube.request('PATCH', '/api/v1/namespaces/foo/pods/httpbin-1/status', { status: { phase: 'Running', podIP: pod.podIp, podIPs: [{ ip: pod.podIp }], conditions: [{ type: 'Ready', status: 'True' }] } });
    await kube.request('POST', '/api/v1/namespaces/foo/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: servicePort, targetPort: APP_PORT }] } });
    await kube.request('POST', '/apis/discovery.k8s.io/v1/namespaces/foo/endpointslices', {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'httpbin-abc', labels: { 'kubernetes.io/service-name': 'httpbin' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: APP_PORT, protocol: 'TCP' }],
      endpoints: [{ addresses: [pod.podIp], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'httpbin-1', namespace: 'foo' } }],
    });

    meshd = await startMeshd({ extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--grpc-addr', '0.0.0.0:0', '--debounce-after', '20ms'] });
    const rootPem = JSON.parse((await meshd.monitoring('/debug/caz')).body).rootCertPem as string;
    const dir = mkdtempSync(join(tmpdir(), 'meshd-authz-'));
    chmodSync(dir, 0o755);
    rootFile = join(dir, 'root-cert.pem');
    writeFileSync(rootFile, rootPem, { mode: 0o644 });
    writeFileSync(
      join(dir, 'envoy.json'),
      bootstrap([
        '--ip', pod.podIp, '--pod', 'httpbin-1', '--namespace', 'foo', '--service-account', 'httpbin', '--labels', 'app=httpbin,security.istio.io/tlsMode=istio',
        '--xds-address', `${pod.hostIp}:${meshd.grpcPort}`, '--admin-port', String(SERVER_ADMIN), '--admin-address', '0.0.0.0', '--token-file', await tokenFile('foo', 'httpbin'), '--delta',
      ]),
      { mode: 0o644 },
    );
    serverEnvoy = pod.spawn([envoyForProxyUid(), '-c', join(dir, 'envoy.json'), '--disable-hot-restart', '--concurrency', '1', '-l', 'info'], { uid: PROXY_UID });
    serverEnvoy.stdout!.on('data', (c: Buffer) => (serverLog = (serverLog + c.toString()).slice(-100_000)));
    serverEnvoy.stderr!.on('data', (c: Buffer) => (serverLog = (serverLog + c.toString()).slice(-100_000)));
    for (const program of [ECHO_APP, `require('node:net').createServer((s) => s.once('data', () => s.end('tcp-app'))).listen(${TCP_PORT});`]) {
      const app = pod.spawn([process.execPath, '-e', program]);
      app.stdout!.resume();
      app.stderr!.resume();
    }
    await eventually('the server Envoy to be ready', async () => ((await httpGet(`http://${pod.podIp}:${SERVER_ADMIN}/ready`, { timeoutMs: 1000 })).status === 200 ? true : undefined), 30_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${serverLog.slice(-4000)}`);
    });
  });

  after(async () => {
    for (const c of clients.values()) await c.stop();
    await pod?.destroy();
    await meshd?.stop();
    await kube?.stop();
  });

  /** The server sidecar's inbound RBAC filters, by action, as Envoy holds them. */
  async function serverRbacActions(): Promise<string[]> {
    const dump = JSON.stringify(JSON.parse((await httpGet(`http://${pod.podIp}:${SERVER_ADMIN}/config_dump`)).body));
    // ALLOW, the enum's zero value, is left out of the dump.
    return [...dump.matchAll(/"name":"envoy\.filters\.http\.rbac","typed_config":\{"@type":"[^"]+","rules":\{(?:"action":"(\w+)")?/g)].map((m) => m[1] ?? 'ALLOW');
  }

  /** A raw TCP exchange with the workload's undeclared port (through the sidecar's passthrough chain). */
  function tcpExchange(): Promise<string> {
    return new Promise((resolve) => {
      let data = '';
      // The client speaks first: the sidecar's TLS inspector reads the first bytes before choosing a chain.
      const s = connect({ host: pod.podIp, port: TCP_PORT }, () => s.write('hello\n'));
      s.setTimeout(3000, () => s.destroy());
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.on('error', () => resolve(`closed:${data}`));
      s.on('close', () => resolve(data === 'tcp-app' ? data : `closed:${data}`));
    });
  }

  it('without policies, both identities reach httpbin (and the TCP port answers)', async () => {
    for (const ns of ['foo', 'bar']) {
      const r = await eventually(`${ns}/sleep reaching httpbin`, async () => {
        const res = await call(ns, 'POST', '/anything');
        return res.status === 200 ? res : undefined;
      }, 30_000);
      assert.equal(r.body, 'app POST /anything');
    }
    assert.equal(await tcpExchange(), 'tcp-app');
  });

  it("the tutorial's policies: 200 and 403 over the table of identity x method x path x header", async () => {
    for (const p of POLICY_OBJECTS) await kube.request('POST', POLICIES, { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', ...p });
    await eventually('the server sidecar holds DENY and ALLOW RBAC filters', async () => {
      const actions = await serverRbacActions();
      return actions.includes('DENY') && actions.includes('ALLOW') ? true : undefined;
    }, 30_000);
    for (const from of ['foo', 'bar'] as const) {
      // The client sidecar (re)starts with this identity; its first request waits for its config.
      await eventually(`${from}/sleep's sidecar routing to httpbin`, async () => ((await call(from, 'GET', '/headers')).status !== 503 ? true : undefined), 30_000);
      for (const row of TABLE.filter((r) => r.from === from)) {
        const r = await call(from, row.method, row.path, row.headers);
        assert.equal(r.status, row.status, `${from}/sleep ${row.method} ${row.path} ${JSON.stringify(row.headers ?? {})}: ${row.why}; body ${r.body}`);
        if (row.status === 403) assert.equal(r.body, 'RBAC: access denied');
        else assert.equal(r.body, `app ${row.method} ${row.path}`);
      }
    }
  });

  it('a plaintext caller has no identity: refused; the TCP port (HTTP-only ALLOW rules dropped) closes the connection', async () => {
    const r = await httpRequest(`http://${pod.podIp}:${APP_PORT}/headers`, { headers: { host: HOST }, timeoutMs: 5000 });
    assert.equal(r.status, 403);
    assert.equal(r.body, 'RBAC: access denied');
    assert.match(await tcpExchange(), /^closed:/);
  });

  it('deleting the policies restores access', async () => {
    for (const p of POLICY_OBJECTS) await kube.request('DELETE', `${POLICIES}/${p.metadata.name}`);
    const r = await eventually('POST /headers allowed again', async () => {
      const res = await call('foo', 'POST', '/headers');
      return res.status === 200 ? res : undefined;
    }, 30_000);
    assert.equal(r.body, 'app POST /headers');
    assert.deepEqual(await serverRbacActions(), []);
    assert.equal(await tcpExchange(), 'tcp-app');
  });
});
