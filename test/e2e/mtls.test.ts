// Mutual TLS between two real Envoys with certificates from meshd: meshd on a real
// kube-apiserver checks each proxy's service-account token (TokenReview) and sends it its
// own certificate over SDS. The server's Envoy runs in a "pod" network namespace with
// Istio's iptables capture; the client's Envoy calls the service through auto mTLS.
// The app behind the server sees who called (x-forwarded-client-cert); PeerAuthentication
// switches the server between PERMISSIVE and STRICT; certificates rotate under traffic.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { startMeshd, MESHD_CLI, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { envoyForProxyUid, httpGet, startEnvoy, type EnvoyProcess } from '../support/envoy.js';
import { createPod, type Pod } from '../support/netns.js';
import { freePort, tcpRoundTrip } from '../support/backends.js';
import { selfSignedCertificate } from '../support/tls.js';
import { connectAds, istioNode, TypeUrl } from '../support/ads-client.js';

const NS = 'apps';
const PROXY_UID = 1337;
const SERVER_ADMIN = 15000;
const APP_PORT = 8080;
/** The app also serves its own TLS here: mesh mTLS must not take that over. */
const APP_TLS_PORT = 8443;
/** A port no Service names: inbound traffic to it passes through the sidecar. */
const UNDECLARED_PORT = 9090;
const TRUST = 'cluster.local';
/** Short-lived workload certificates, renewed at half their life: rotation happens during the test. */
const CERT_TTL_SECONDS = 24;

const spiffe = (sa: string): string => `spiffe://${TRUST}/ns/${NS}/sa/${sa}`;

/** The app behind the server's sidecar: answers with the request headers it got. */
const ECHO_APP = `require('node:http').createServer((q, s) => { s.setHeader('content-type', 'application/json'); s.end(JSON.stringify(q.headers)); }).listen(${APP_PORT});`;
/** Ports of the `backend` Service, which declares no protocol on them (sniffed): an HTTP app and a TCP echo. */
const SNIFFED_HTTP_PORT = 8070;
const SNIFFED_TCP_PORT = 8071;

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * One GET; resolves with status, body and the local port of the socket it used. Without an agent it opens a new
 * connection: Node's global agent keeps sockets alive, and a pooled connection opened before a policy change would
 * still be served under the old one.
 */
function get(port: number, path: string, o: { host?: string; agent?: Agent; address?: string; timeoutMs?: number } = {}): Promise<{ status: number; body: string; localPort: number | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: o.address ?? '127.0.0.1', port, path, agent: o.agent ?? false, headers: { host: o.host ?? `httpbin.${NS}.svc.cluster.local` }, timeout: o.timeoutMs ?? 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, localPort: req.socket?.localPort }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('mTLS between two Envoys with certificates from meshd', () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let pod: Pod;
  let serverEnvoy: ChildProcess;
  let serverLog = '';
  let client: EnvoyProcess;
  let clientPort: number;
  let sniffedPorts: { http: number; tcp: number };
  let rootPem: string;

  const token = async (sa: string): Promise<string> =>
    (await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['istio-ca'], expirationSeconds: 3600 } })).status.token;
  const tokenFile = async (sa: string): Promise<string> => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-token-'));
    chmodSync(dir, 0o755);
    const file = join(dir, 'token');
    writeFileSync(file, await token(sa), { mode: 0o644 });
    return file;
  };
  const bootstrap = (args: string[]): string => execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--format', 'json', ...args], { encoding: 'utf8' });
  const viaClient = (path: string, o: { agent?: Agent } = {}): ReturnType<typeof get> => get(clientPort, path, o);
  const plaintextToPod = (path: string): ReturnType<typeof get> => get(APP_PORT, path, { address: pod.podIp, timeoutMs: 3000 });
  const peerAuthentication = (mode: string): Promise<unknown> =>
    kube.request('POST', `/apis/security.istio.io/v1/namespaces/${NS}/peerauthentications`, { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: NS }, spec: { mtls: { mode } } });
  const serverCertSerial = async (): Promise<string> => {
    const certs = JSON.parse((await httpGet(`http://${pod.podIp}:${SERVER_ADMIN}/certs`)).body) as { certificates: { cert_chain: { serial_number: string; subject_alt_names: { uri?: string }[] }[] }[] };
    const leaf = certs.certificates.flatMap((c) => c.cert_chain).find((c) => c.subject_alt_names.some((s) => s.uri === spiffe('httpbin')));
    assert.ok(leaf, `the server Envoy holds a certificate for ${spiffe('httpbin')}`);
    return leaf.serial_number;
  };

  before(async () => {
    kube = await startKube();
    const manifests = readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml'));
    await applyAll(kube, manifests);
    await waitForCrds(kube, ['virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io']);
    await kube.createNamespace(NS);
    for (const sa of ['sleep', 'httpbin']) await kube.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });

    pod = await createPod({ name: 'httpbin', proxyUid: PROXY_UID, excludeInboundPorts: [SERVER_ADMIN] });
    // Without capture the client's outbound listener binds 127.0.0.1:<service port>: a free one.
    clientPort = await freePort();
    // The workload as Kubernetes knows it: a Pod (labelled for auto mTLS, as injection does), its Service and endpoints.
    await kube.request('POST', `/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'httpbin-1', labels: { app: 'httpbin', 'security.istio.io/tlsMode': 'istio' } },
      spec: { serviceAccountName: 'httpbin', containers: [{ name: 'app', image: 'httpbin' }] },
    });
    await kube.request('PATCH', `/api/v1/namespaces/${NS}/pods/httpbin-1/status`, { status: { phase: 'Running', podIP: pod.podIp, podIPs: [{ ip: pod.podIp }], conditions: [{ type: 'Ready', status: 'True' }] } });
    await kube.request('POST', `/api/v1/namespaces/${NS}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: clientPort, targetPort: APP_PORT }, { name: 'https', port: APP_TLS_PORT, targetPort: APP_TLS_PORT }] } });
    // Port names with no protocol prefix: both sides sniff.
    sniffedPorts = { http: await freePort(), tcp: await freePort() };
    await kube.request('POST', `/api/v1/namespaces/${NS}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'backend' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'web', port: sniffedPorts.http, targetPort: SNIFFED_HTTP_PORT }, { name: 'raw', port: sniffedPorts.tcp, targetPort: SNIFFED_TCP_PORT }] } });
    await kube.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'backend-abc', labels: { 'kubernetes.io/service-name': 'backend' } },
      addressType: 'IPv4',
      ports: [{ name: 'web', port: SNIFFED_HTTP_PORT, protocol: 'TCP' }, { name: 'raw', port: SNIFFED_TCP_PORT, protocol: 'TCP' }],
      endpoints: [{ addresses: [pod.podIp], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'httpbin-1', namespace: NS } }],
    });
    await kube.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'httpbin-abc', labels: { 'kubernetes.io/service-name': 'httpbin' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: APP_PORT, protocol: 'TCP' }, { name: 'https', port: APP_TLS_PORT, protocol: 'TCP' }],
      endpoints: [{ addresses: [pod.podIp], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'httpbin-1', namespace: NS } }],
    });

    meshd = await startMeshd({ extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--grpc-addr', '0.0.0.0:0', '--workload-cert-ttl', `${CERT_TTL_SECONDS}s`, '--debounce-after', '20ms'] });
    rootPem = JSON.parse((await meshd.monitoring('/debug/caz')).body).rootCertPem as string;

    // The server: Envoy in the pod, as uid 1337, with its token; the app on 8080.
    const serverBootstrap = bootstrap([
      '--ip', pod.podIp, '--pod', 'httpbin-1', '--namespace', NS, '--service-account', 'httpbin', '--labels', 'app=httpbin,security.istio.io/tlsMode=istio',
      '--xds-address', `${pod.hostIp}:${meshd.grpcPort}`, '--admin-port', String(SERVER_ADMIN), '--admin-address', '0.0.0.0', '--token-file', await tokenFile('httpbin'), '--delta',
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'meshd-mtls-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'envoy.json'), serverBootstrap, { mode: 0o644 });
    serverEnvoy = pod.spawn([envoyForProxyUid(), '-c', join(dir, 'envoy.json'), '--disable-hot-restart', '--concurrency', '1', '-l', 'info'], { uid: PROXY_UID });
    serverEnvoy.stdout!.on('data', (c: Buffer) => (serverLog = (serverLog + c.toString()).slice(-100_000)));
    serverEnvoy.stderr!.on('data', (c: Buffer) => (serverLog = (serverLog + c.toString()).slice(-100_000)));
    const app = pod.spawn([process.execPath, '-e', ECHO_APP]);
    app.stdout!.resume();
    app.stderr!.resume();
    const appCert = selfSignedCertificate('httpbin.example');
    writeFileSync(join(dir, 'app.crt'), appCert.certPem, { mode: 0o644 });
    writeFileSync(join(dir, 'app.key'), appCert.keyPem, { mode: 0o644 });
    const tlsApp = pod.spawn([
      process.execPath,
      '-e',
      `const fs = require('node:fs'); require('node:https').createServer({ cert: fs.readFileSync(${JSON.stringify(join(dir, 'app.crt'))}), key: fs.readFileSync(${JSON.stringify(join(dir, 'app.key'))}) }, (q, s) => s.end('app-tls')).listen(${APP_TLS_PORT});`,
    ]);
    tlsApp.stdout!.resume();
    tlsApp.stderr!.resume();
    const sniffedApps = pod.spawn([
      process.execPath,
      '-e',
      `require('node:http').createServer((q, s) => { s.setHeader('content-type', 'application/json'); s.end(JSON.stringify(q.headers)); }).listen(${SNIFFED_HTTP_PORT}); require('node:net').createServer((c) => c.pipe(c)).listen(${SNIFFED_TCP_PORT});`,
    ]);
    sniffedApps.stdout!.resume();
    sniffedApps.stderr!.resume();
    const other = pod.spawn([process.execPath, '-e', `require('node:http').createServer((q, s) => s.end('other')).listen(${UNDECLARED_PORT});`]);
    other.stdout!.resume();
    other.stderr!.resume();
    await until('the server Envoy to be ready', async () => ((await httpGet(`http://${pod.podIp}:${SERVER_ADMIN}/ready`, { timeoutMs: 1000 })).status === 200 ? true : undefined)).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${serverLog.slice(-4000)}`);
    });

    // The client: Envoy on the host without capture (outbound listeners on 127.0.0.1), with its
    // token, over TLS to meshd's 15012 (meshd's certificate checked against the mesh root).
    const rootFile = join(dir, 'root-cert.pem');
    writeFileSync(rootFile, rootPem, { mode: 0o644 });
    client = await startEnvoy({
      name: 'mtls-client',
      bootstrap: parse(
        bootstrap([
          '--ip', '127.0.0.1', '--pod', 'sleep-1', '--namespace', NS, '--service-account', 'sleep', '--labels', 'app=sleep', '--interception', 'NONE',
          '--xds-address', `127.0.0.1:${meshd.secureGrpcPort}`, '--xds-root-cert', rootFile, '--admin-port', '0', '--readiness-port', '0', '--token-file', await tokenFile('sleep'),
        ]),
      ) as object,
    });
  });

  after(async () => {
    await client?.stop();
    await pod?.destroy();
    await meshd?.stop();
    await kube?.stop();
  });

  it('the client reaches the server over mTLS, and the app sees the client\'s SPIFFE identity', async () => {
    const r = await until('a response through both sidecars', async () => {
      const res = await viaClient('/headers');
      return res.status === 200 ? res : undefined;
    });
    const headers = JSON.parse(r.body) as Record<string, string>;
    const xfcc = headers['x-forwarded-client-cert'] ?? '';
    assert.match(xfcc, new RegExp(`URI=${spiffe('sleep').replace(/[/.]/g, '\\$&')}`), `the server's sidecar verified the client as ${spiffe('sleep')}: ${xfcc}`);
    assert.match(xfcc, new RegExp(`By=${spiffe('httpbin').replace(/[/.]/g, '\\$&')}`), 'and presented its own identity');
    const stats = await client.admin(`/stats?filter=outbound.${clientPort}.*ssl.handshake`);
    assert.match(stats, /ssl\.handshake: [1-9]/, 'the client sidecar made a TLS handshake upstream');
  });

  it('the client sidecar gets its config over TLS from meshd\'s port 15012', async () => {
    const stats = await client.admin('/stats?filter=cluster.xds-grpc.ssl.handshake');
    assert.match(stats, /cluster\.xds-grpc\.ssl\.handshake: [1-9]/, stats);
  });

  it('the certificates chain to meshd\'s root and name each workload by its token, not its metadata', async () => {
    const certs = JSON.parse(await client.admin('/certs')) as { certificates: { ca_cert: { subject_alt_names: unknown[] }[]; cert_chain: { subject_alt_names: { uri?: string }[] }[] }[] };
    const uris = certs.certificates.flatMap((c) => c.cert_chain).flatMap((c) => c.subject_alt_names.map((s) => s.uri));
    assert.ok(uris.includes(spiffe('sleep')), `client certificate for ${spiffe('sleep')}: ${JSON.stringify(uris)}`);
    // An ADS stream with the httpbin token but claiming another service account in its metadata.
    const stream = connectAds(meshd.xdsAddress, { delta: true, metadata: { authorization: `Bearer ${await token('httpbin')}` } });
    try {
      stream.send({ node: istioNode({ ip: '10.9.9.9', pod: 'impostor-1', namespace: NS, metadata: { SERVICE_ACCOUNT: 'admin' } }), type_url: TypeUrl.Secret, resource_names_subscribe: ['default', 'ROOTCA'] });
      const r = await stream.next(10_000);
      const byName = new Map(r.resources.map((x) => [x.name, x.body]));
      const chain = String((byName.get('default') as { tls_certificate: { certificate_chain: { inline_string?: string; inline_bytes?: Uint8Array } } }).tls_certificate.certificate_chain.inline_string);
      const leaf = new X509Certificate(chain);
      assert.equal(leaf.subjectAltName, `URI:${spiffe('httpbin')}`, 'the certificate names the token\'s identity');
      assert.ok(leaf.verify(new X509Certificate(rootPem).publicKey), 'signed by meshd\'s root');
      const root = String((byName.get('ROOTCA') as { validation_context: { trusted_ca: { inline_string?: string } } }).validation_context.trusted_ca.inline_string);
      assert.equal(new X509Certificate(root).fingerprint256, new X509Certificate(rootPem).fingerprint256);
    } finally {
      stream.close();
    }
  });

  it('/debug/caz lists the workload certificates in use, never their keys', async () => {
    const body = (await meshd.monitoring('/debug/caz')).body;
    const caz = JSON.parse(body) as { workloadCertificates: { identity: string; notAfter: string }[] };
    const ids = caz.workloadCertificates.map((c) => c.identity);
    assert.ok(ids.includes(spiffe('sleep')) && ids.includes(spiffe('httpbin')), JSON.stringify(ids));
    assert.ok(!/PRIVATE KEY/.test(body), 'no key material');
  });

  it('a stream without a token never gets a workload certificate', async () => {
    const stream = connectAds(meshd.xdsAddress, { delta: true });
    try {
      stream.send({ node: istioNode({ ip: '10.9.9.8', pod: 'anon-1', namespace: NS, metadata: { SERVICE_ACCOUNT: 'httpbin' } }), type_url: TypeUrl.Secret, resource_names_subscribe: ['default'] });
      const r = await stream.next(2000).catch(() => undefined);
      assert.ok(!r || !r.resources.some((x) => x.name === 'default'), 'no `default` secret for an unauthenticated stream');
    } finally {
      stream.close();
    }
    const bad = connectAds(meshd.xdsAddress, { delta: true, metadata: { authorization: 'Bearer not-a-token' } });
    try {
      bad.send({ node: istioNode({ ip: '10.9.9.7', pod: 'bad-1', namespace: NS }), type_url: TypeUrl.Secret, resource_names_subscribe: ['default'] });
      await assert.rejects(bad.next(10_000), /UNAUTHENTICATED|16/, 'a stream with a bad token is refused');
    } finally {
      bad.close();
    }
  });

  it('PERMISSIVE by default: a plaintext client reaches the app too, without an identity', async () => {
    const r = await plaintextToPod('/headers');
    assert.equal(r.status, 200);
    const headers = JSON.parse(r.body) as Record<string, string>;
    assert.equal(headers['x-forwarded-client-cert'], undefined, 'no client identity over plaintext');
  });

  it("PERMISSIVE: a client's own TLS to the app (no mesh ALPN) passes through to the app untouched", async () => {
    const body = await until('the app\'s own HTTPS through the sidecar', () =>
      new Promise<string | undefined>((resolve) => {
        const req = httpsRequest({ host: pod.podIp, port: APP_TLS_PORT, path: '/', rejectUnauthorized: false, timeout: 3000 }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(res.statusCode === 200 ? b : undefined));
        });
        req.on('error', () => resolve(undefined));
        req.on('timeout', () => req.destroy());
        req.end();
      }),
    );
    assert.equal(body, 'app-tls', 'the TLS session was with the app, not with its sidecar');
  });

  it('the certificate is rotated before it expires and a long-running connection keeps working', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await serverCertSerial();
      const localPorts = new Set<number | undefined>();
      let rotated = false;
      const deadline = Date.now() + CERT_TTL_SECONDS * 1000;
      let requests = 0;
      while (Date.now() < deadline) {
        const r = await viaClient('/headers', { agent });
        assert.equal(r.status, 200, `request ${requests} across the rotation failed: ${r.body}`);
        localPorts.add(r.localPort);
        requests++;
        if ((await serverCertSerial()) !== first) {
          rotated = true;
          // A few more requests on the same connection after the swap.
          for (let i = 0; i < 5; i++) assert.equal((await viaClient('/headers', { agent })).status, 200);
          break;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.ok(rotated, `the server's certificate was renewed within its ${CERT_TTL_SECONDS} s lifetime`);
      assert.equal(localPorts.size, 1, 'every request went over the same client connection');
      const counts = await client.admin(`/stats?filter=outbound.${clientPort}.*upstream_cx_destroy$`);
      console.log(`# rotation after ${requests} requests; ${counts.trim()}`);
    } finally {
      agent.destroy();
    }
  });

  it('ports that declare no protocol: HTTP and TCP told apart on both sides, inside mTLS and in plaintext', async () => {
    // HTTP: the server's sidecar ran it through its HTTP connection manager (it set the client's identity).
    const r = await until('HTTP on the sniffed port', async () => {
      const res = await get(sniffedPorts.http, '/headers', { host: 'backend' }).catch(() => undefined);
      return res?.status === 200 ? res : undefined;
    });
    assert.match((JSON.parse(r.body) as Record<string, string>)['x-forwarded-client-cert'] ?? '', new RegExp(`URI=${spiffe('sleep').replace(/[/.]/g, '\\$&')}`), 'mTLS, and HTTP on the server side');
    // TCP: bytes that are not HTTP come back unchanged through both sidecars.
    const payload = '\x16 not http, not tls either\n';
    const echoed = await tcpRoundTrip(sniffedPorts.tcp, '127.0.0.1', payload);
    assert.equal(echoed, payload);
    const handshakes = await client.admin(`/stats?filter=outbound.${sniffedPorts.tcp}.*ssl.handshake`);
    assert.match(handshakes, /ssl\.handshake: [1-9]/, 'the TCP connection went over mTLS');
    // Plaintext straight to the pod (PERMISSIVE): sniffed as HTTP, no identity.
    const plain = await get(SNIFFED_HTTP_PORT, '/headers', { address: pod.podIp, host: 'backend' });
    assert.equal(plain.status, 200);
    assert.equal((JSON.parse(plain.body) as Record<string, string>)['x-forwarded-client-cert'], undefined);
  });

  it('STRICT refuses plaintext, mTLS still works; PERMISSIVE again takes both', async () => {
    assert.equal((await get(UNDECLARED_PORT, '/', { address: pod.podIp })).body, 'other', 'PERMISSIVE: plaintext to a port no Service names passes through');
    await peerAuthentication('STRICT');
    // Refused means the connection was closed on us; a timeout on a slow machine proves nothing.
    const refused = (attempt: Promise<unknown>): Promise<boolean> => attempt.then(() => false, (err: unknown) => !(err instanceof Error && err.message === 'timeout'));
    await until('plaintext to be refused', async () => ((await refused(plaintextToPod('/headers'))) ? true : undefined)).catch(async (err: unknown) => {
      const configz = (await meshd.monitoring('/debug/configz?kind=PeerAuthentication')).body;
      const dump = (await httpGet(`http://${pod.podIp}:${SERVER_ADMIN}/config_dump?resource=dynamic_listeners`)).body;
      const inbound = (JSON.parse(dump) as { configs: { name: string; active_state?: { listener: { filter_chains: { filter_chain_match: unknown }[] } } }[] }).configs.find((c) => c.name === 'virtualInbound');
      throw new Error(`${String(err)}\nmeshd has: ${configz.slice(0, 300)}\nserver inbound chains: ${JSON.stringify(inbound?.active_state?.listener.filter_chains.map((c) => c.filter_chain_match))}`);
    });
    assert.equal((await viaClient('/headers')).status, 200, 'mTLS from the client sidecar still works');
    assert.ok(await refused(get(UNDECLARED_PORT, '/', { address: pod.podIp, timeoutMs: 5000 })), 'STRICT: plaintext to a port no Service names is refused too');
    await kube.request('DELETE', `/apis/security.istio.io/v1/namespaces/${NS}/peerauthentications/default`);
    await until('plaintext to be accepted again', async () => ((await plaintextToPod('/headers').catch(() => undefined))?.status === 200 ? true : undefined));
  });
});
