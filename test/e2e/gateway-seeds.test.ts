// The user's tutorial, end to end: httpbin exposed through the ingress gateway by the
// seeds' Gateway `httpbin-gateway` and VirtualService `httpbin-vs` (/status and /headers
// only, 404 elsewhere), plus exercise 3: /api/v1/* and /api/v2/* to two services. The
// gateway is a stock Envoy started from `meshd bootstrap --type router`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import { selfSignedCertificate } from '../support/tls.js';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests } from '../support/kube-objects.js';
import { connectAds, istioNode, TypeUrl } from '../support/ads-client.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

describe("the seeds' httpbin Gateway and VirtualService through a real gateway Envoy", () => {
  let meshd: MeshdProcess;
  let gateway: EnvoyProcess;
  const backends: Backend[] = [];
  let gatewayPort: number;

  const get = (host: string, path: string) => httpGet(`http://127.0.0.1:${gatewayPort}${path}`, { headers: { host }, timeoutMs: 5000 });

  before(async () => {
    gatewayPort = await freePort();
    const httpbin = await startHttpBackend('httpbin');
    const v1 = await startHttpBackend('api-v1');
    const v2 = await startHttpBackend('api-v2');
    backends.push(httpbin, v1, v2);
    // The tutorial's Gateway listens on 80; here on a free port, everything else as written.
    const seeds = readFileSync(join(REPO_ROOT, 'manifests', 'samples', 'httpbin-gateway.yaml'), 'utf8').replace(/number: 80\b/, `number: ${gatewayPort}`);
    assert.match(seeds, /name: httpbin-gateway/);
    const exercise = `apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: api-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: ${gatewayPort}, name: http-api, protocol: HTTP}, hosts: ["api.example.com"]}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: ["api.example.com"]
  gateways: [api-gateway]
  http:
  - match: [{uri: {prefix: /api/v1/}}]
    route: [{destination: {host: api-v1}}]
  - match: [{uri: {prefix: /api/v2/}}]
    route: [{destination: {host: api-v2}}]
`;
    meshd = await startMeshd({
      files: {
        'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port: 80, targetPort: httpbin.port }], endpoints: [{ ip: '127.0.0.1' }] }),
        'api.yaml':
          serviceYaml({ name: 'api-v1', ports: [{ name: 'http', port: 8080, targetPort: v1.port }], endpoints: [{ ip: '127.0.0.1' }] }) +
          '---\n' +
          serviceYaml({ name: 'api-v2', ports: [{ name: 'http', port: 8080, targetPort: v2.port }], endpoints: [{ ip: '127.0.0.1' }] }),
        'gateway.yaml': seeds,
        'exercise.yaml': exercise,
      },
    });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--type', 'router', '--pod', 'istio-ingressgateway-1', '--namespace', 'istio-system',
      '--labels', 'istio=ingressgateway,app=istio-ingressgateway', '--xds-address', meshd.xdsAddress, '--admin-port', '0', '--readiness-port', '0', '--delta',
    ], { encoding: 'utf8' });
    gateway = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'gateway' });
    await gateway.waitFor(() => gateway.hasActiveListener(`0.0.0.0_${gatewayPort}`), { what: 'the gateway listener', timeoutMs: 10_000 });
  });

  after(async () => {
    await gateway?.stop();
    await meshd?.stop();
    for (const b of backends) await b.close();
  });

  it('serves /status and /headers of httpbin.example.com', async () => {
    for (const path of ['/status/200', '/headers']) {
      const r = await get('httpbin.example.com', path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers['x-backend'], 'httpbin');
      assert.equal(JSON.parse(r.body).path, path);
    }
  });

  it('answers 404 for other paths and other hosts', async () => {
    assert.equal((await get('httpbin.example.com', '/anything')).status, 404);
    assert.equal((await get('other.example.com', '/status/200')).status, 404);
  });

  it('routes /api/v1/* and /api/v2/* to two services', async () => {
    assert.equal((await get('api.example.com', '/api/v1/users')).headers['x-backend'], 'api-v1');
    assert.equal((await get('api.example.com', '/api/v2/users')).headers['x-backend'], 'api-v2');
    assert.equal((await get('api.example.com', '/api/v3/users')).status, 404);
  });

  it('the gateway accepted every update', async () => {
    assert.equal(await gateway.rejectedUpdates(), 0);
  });
});

describe('HTTPS on the gateway with a certificate from a Secret (credentialName, over SDS)', () => {
  // The gateway proves it runs as a service account of istio-system (a TokenRequest token,
  // reviewed by a real kube-apiserver); only then does meshd send it the Secret's key.
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let gateway: EnvoyProcess;
  let backend: Backend;
  let httpsPort: number;
  let httpPort: number;
  let certPem: string;

  before(async () => {
    const cert = selfSignedCertificate('httpbin.example.com');
    certPem = cert.certPem;
    const keyPem = cert.keyPem;
    httpsPort = await freePort();
    httpPort = await freePort();
    backend = await startHttpBackend('httpbin');
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await kube.createNamespace('apps');
    for (const [ns, sa] of [['istio-system', 'istio-ingressgateway'], ['apps', 'sleep']] as const) {
      await kube.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
    }
    const token = async (ns: string, sa: string): Promise<string> =>
      (await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['istio-ca'], expirationSeconds: 3600 } })).status.token;
    gatewayToken = await token('istio-system', 'istio-ingressgateway');
    otherToken = await token('apps', 'sleep');
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'meshd-gw-token-')), 'istio-token');
    writeFileSync(tokenFile, gatewayToken);
    meshd = await startMeshd({
      // Config from the files; tokens reviewed by the apiserver.
      env: { KUBECONFIG: kube.kubeconfig(kube.meshdToken) },
      files: {
        'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port: 80, targetPort: backend.port }], endpoints: [{ ip: '127.0.0.1' }] }),
        'secret.yaml': `apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {name: httpbin-credential, namespace: istio-system}
data:
  tls.crt: ${b64(certPem)}
  tls.key: ${b64(keyPem)}
`,
        'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: httpbin-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${httpsPort}, name: https, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
  - port: {number: ${httpPort}, name: http, protocol: HTTP}
    hosts: [httpbin.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.example.com]
  gateways: [httpbin-gateway]
  http: [{route: [{destination: {host: httpbin}}]}]
`,
      },
    });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--type', 'router', '--pod', 'istio-ingressgateway-2', '--namespace', 'istio-system',
      '--labels', 'istio=ingressgateway', '--xds-address', meshd.xdsAddress, '--admin-port', '0', '--readiness-port', '0',
      '--service-account', 'istio-ingressgateway', '--token-file', tokenFile,
    ], { encoding: 'utf8' });
    gateway = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'gateway-tls' });
    await gateway.waitFor(() => gateway.hasActiveListener(`0.0.0.0_${httpsPort}`), { what: 'the HTTPS listener', timeoutMs: 10_000 });
  });

  after(async () => {
    await gateway?.stop();
    await meshd?.stop();
    await backend?.close();
    await kube?.stop();
  });

  let gatewayToken: string;
  let otherToken: string;
  const credential = async (token: string | undefined, pod: string): Promise<Record<string, unknown>> => {
    const s = connectAds(meshd.xdsAddress, { delta: true, ...(token ? { metadata: { authorization: `Bearer ${token}` } } : {}) });
    try {
      s.send({ node: istioNode({ type: 'router', pod, namespace: 'istio-system', ip: '10.9.0.2', labels: { istio: 'ingressgateway' } }), type_url: TypeUrl.Secret, resource_names_subscribe: ['kubernetes://httpbin-credential'] });
      const r = await s.next(5000);
      return r.resources[0]!.body;
    } finally {
      await s.close();
    }
  };

  it("sends the key only to a stream whose token is of the gateway's namespace", async () => {
    assert.ok((await credential(gatewayToken, 'gw-probe-1')).tls_certificate, 'istio-system/istio-ingressgateway gets the certificate and key');
    assert.equal((await credential(otherToken, 'gw-probe-2')).tls_certificate, undefined, 'apps/sleep claiming to be the gateway gets an empty secret');
    assert.equal((await credential(undefined, 'gw-probe-3')).tls_certificate, undefined, 'no token: an empty secret');
    assert.ok(meshd.records().some((r) => r.reason === 'identity-of-other-namespace' && r.identity === 'apps/sleep'));
  });

  it('terminates TLS with the Secret\'s certificate and routes to httpbin', async () => {
    const { request } = await import('node:https');
    const r = await new Promise<{ status: number; backend: string; peerCn: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: httpsPort, path: '/status/200', servername: 'httpbin.example.com', headers: { host: 'httpbin.example.com' }, ca: certPem, timeout: 5000 }, (res) => {
        res.resume();
        const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, backend: String(res.headers['x-backend']), peerCn: String(peer.subject?.CN) }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r.status, 200);
    assert.equal(r.backend, 'httpbin');
    assert.equal(r.peerCn, 'httpbin.example.com', 'the certificate served is the one from the Secret');
  });

  it('redirects plain HTTP to HTTPS when httpsRedirect is set', async () => {
    const r = await httpGet(`http://127.0.0.1:${httpPort}/status/200`, { headers: { host: 'httpbin.example.com' } });
    assert.equal(r.status, 301);
    assert.match(r.headers.location ?? '', /^https:\/\/httpbin\.example\.com/);
  });

  it('never shows the private key in debug output', async () => {
    const syncz = JSON.parse((await meshd.monitoring('/debug/syncz')).body) as { proxy: string }[];
    const dump = (await meshd.monitoring(`/debug/config_dump?proxyID=${encodeURIComponent(syncz[0]!.proxy)}`)).body;
    assert.match(dump, /kubernetes:\/\/httpbin-credential/);
    assert.match(dump, /\[redacted\]/);
    assert.doesNotMatch(dump, /PRIVATE KEY|LS0tLS1CRUdJTiBQUklWQVRF|LS0tLS1CRUdJTiBFQyBQUklWQVRF/);
    assert.doesNotMatch((await meshd.monitoring('/debug/configz?kind=Secret')).body, /LS0t/);
    assert.equal(await gateway.rejectedUpdates(), 0);
  });
});

describe('TLS passthrough by SNI on the gateway, and a TCP server', () => {
  let meshd: MeshdProcess;
  let gateway: EnvoyProcess;
  let tlsPort: number;
  let tcpPort: number;
  let certPem: string;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    const { createServer } = await import('node:https');
    const net = await import('node:net');
    const cert = selfSignedCertificate('secure.example.com');
    certPem = cert.certPem;
    // The backend terminates TLS itself: the gateway only passes the bytes through.
    const https = createServer({ cert: certPem, key: cert.keyPem }, (_req, res) => res.writeHead(200, { 'x-backend': 'secure' }).end('secure'));
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => https.close(() => r())));
    const echo = net.createServer((s) => s.on('data', (d) => s.write(`echo:${d.toString()}`)));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => echo.close(() => r())));
    const httpsPort = (https.address() as import('node:net').AddressInfo).port;
    const echoPort = (echo.address() as import('node:net').AddressInfo).port;
    tlsPort = await freePort();
    tcpPort = await freePort();
    meshd = await startMeshd({
      files: {
        'services.yaml':
          serviceYaml({ name: 'secure', ports: [{ name: 'tls', port: 443, targetPort: httpsPort }], endpoints: [{ ip: '127.0.0.1' }] }) +
          '---\n' +
          serviceYaml({ name: 'echo', ports: [{ name: 'tcp', port: 9000, targetPort: echoPort }], endpoints: [{ ip: '127.0.0.1' }] }),
        'edge.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${tlsPort}, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: ${tcpPort}, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.example.com]
  gateways: [edge]
  tls: [{match: [{sniHosts: [secure.example.com]}], route: [{destination: {host: secure}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [edge]
  tcp: [{route: [{destination: {host: echo}}]}]
`,
      },
    });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--type', 'router', '--pod', 'istio-ingressgateway-3', '--namespace', 'istio-system',
      '--labels', 'istio=ingressgateway', '--xds-address', meshd.xdsAddress, '--admin-port', '0', '--readiness-port', '0', '--delta',
    ], { encoding: 'utf8' });
    gateway = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'gateway-l4' });
    await gateway.waitFor(async () => (await gateway.hasActiveListener(`0.0.0.0_${tlsPort}`)) && gateway.hasActiveListener(`0.0.0.0_${tcpPort}`), { what: 'the TLS and TCP listeners', timeoutMs: 10_000 });
  });

  after(async () => {
    await gateway?.stop();
    await meshd?.stop();
    for (const c of closers) await c();
  });

  it('passes TLS through to the backend chosen by SNI, which presents its own certificate', async () => {
    const { request } = await import('node:https');
    const r = await new Promise<{ status: number; cn: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: tlsPort, path: '/', servername: 'secure.example.com', headers: { host: 'secure.example.com' }, ca: certPem, timeout: 5000 }, (res) => {
        res.resume();
        const cn = String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, cn }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r.status, 200);
    assert.equal(r.cn, 'secure.example.com');
  });

  it('refuses an SNI no route names', async () => {
    const { connect } = await import('node:tls');
    const failed = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: tlsPort, servername: 'other.example.com', ca: certPem, timeout: 3000 });
      s.on('secureConnect', () => {
        s.destroy();
        resolve(false);
      });
      s.on('error', () => resolve(true));
      s.on('close', () => resolve(true));
    });
    assert.equal(failed, true);
  });

  it('proxies a TCP server to its tcp route', async () => {
    const net = await import('node:net');
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(tcpPort, '127.0.0.1', () => s.write('hello'));
      s.on('data', (d) => {
        resolve(d.toString());
        s.destroy();
      });
      s.on('error', reject);
      s.setTimeout(3000, () => reject(new Error('timeout')));
    });
    assert.equal(reply, 'echo:hello');
    assert.equal(await gateway.rejectedUpdates(), 0);
  });
});
