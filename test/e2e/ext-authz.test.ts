// AuthorizationPolicy CUSTOM end to end: a real gateway Envoy, a backend, and an HTTP external
// authorizer written here (200 when the request carries `x-ext-authz: allow`, 403 otherwise),
// registered as the mesh Service the mesh config's extension provider names. Only requests the
// CUSTOM policy's rules match reach the authorizer (its calls are counted); without the
// provider in the mesh config the policy fails closed; with the authorizer down and failOpen
// false the answer is 403; removing the policy restores access. `meshd validate` accepts the
// policy when the provider exists and refuses it (IST0101) when it does not. Then a gRPC
// authorizer (Envoy's envoy.service.auth.v3.Authorization, served with grpc-js) checks both
// HTTP requests and TCP connections (the network ext_authz filter) through the gateway. Last,
// a sidecar in a "pod" network namespace with Istio's capture, whose Sidecar resource imports
// only its own namespace: its inbound requests on the policy's path are checked by the
// authorizer of another namespace all the same (meshd adds the provider's cluster).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import { eventually } from '../support/poll.js';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { connect, createServer, type Server as NetServer } from 'node:net';
import { envoyProtoIncludeDirs } from '../../src/xds/protos.js';
import { chmodSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { envoyForProxyUid } from '../support/envoy.js';
import { createPod, type Pod } from '../support/netns.js';

const AUTHZ_HOST = 'ext-authz.foo.svc.cluster.local';
const AUTHZ_PORT = 8000;

const meshConfig = (withProvider: boolean): string =>
  withProvider
    ? `extensionProviders:
- name: sample-ext-authz
  envoyExtAuthzHttp:
    service: foo/${AUTHZ_HOST}
    port: ${AUTHZ_PORT}
    timeout: 1s
    failOpen: false
    includeRequestHeadersInCheck: [x-ext-authz]
    headersToDownstreamOnDeny: [x-ext-authz-check-result]
`
    : 'accessLogFile: ""\n';

const POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: sample-ext-authz}
  rules:
  - to: [{operation: {paths: ["/secure/*"]}}]
`;

describe('AuthorizationPolicy CUSTOM through an HTTP ext_authz provider, with a real gateway Envoy', { timeout: 120_000 }, () => {
  let meshd: MeshdProcess;
  let gateway: EnvoyProcess;
  let backend: Backend;
  let authz: Backend | undefined;
  let authzPort: number;
  let gatewayPort: number;
  let meshFile: string;

  const get = (path: string, headers: Record<string, string> = {}) => httpGet(`http://127.0.0.1:${gatewayPort}${path}`, { headers: { host: 'app.example.com', ...headers }, timeoutMs: 5000 });
  /** Check requests the authorizer has received so far. */
  const checks = (): number => authz?.requests.length ?? 0;

  const startAuthorizer = async (): Promise<Backend> =>
    startHttpBackend('ext-authz', {
      port: authzPort,
      handler: (req, res) => {
        req.resume();
        const allow = req.headers['x-ext-authz'] === 'allow';
        res.writeHead(allow ? 200 : 403, { 'x-ext-authz-check-result': allow ? 'allowed' : 'denied', 'content-length': '0' });
        res.end();
      },
    });

  before(async () => {
    gatewayPort = await freePort();
    authzPort = await freePort();
    backend = await startHttpBackend('app');
    authz = await startAuthorizer();
    meshFile = join(mkdtempSync(join(tmpdir(), 'meshd-ext-authz-')), 'mesh.yaml');
    writeFileSync(meshFile, meshConfig(true));
    const routing = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: ${gatewayPort}, name: http, protocol: HTTP}, hosts: ["app.example.com"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: ["app.example.com"]
  gateways: [istio-system/edge]
  http: [{route: [{destination: {host: app.default.svc.cluster.local}}]}]
`;
    meshd = await startMeshd({
      files: {
        'app.yaml': serviceYaml({ name: 'app', ports: [{ name: 'http', port: 80, targetPort: backend.port }], endpoints: [{ ip: '127.0.0.1' }] }),
        'ext-authz.yaml': serviceYaml({ name: 'ext-authz', namespace: 'foo', ports: [{ name: 'http', port: AUTHZ_PORT, targetPort: authzPort }], endpoints: [{ ip: '127.0.0.1' }] }),
        'routing.yaml': routing,
      },
      extraArgs: ['--mesh-config', meshFile],
    });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--type', 'router', '--pod', 'istio-ingressgateway-1', '--namespace', 'istio-system',
      '--labels', 'istio=ingressgateway', '--xds-address', meshd.xdsAddress, '--admin-port', '0', '--readiness-port', '0', '--delta',
    ], { encoding: 'utf8' });
    gateway = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'ext-authz-gateway' });
    await gateway.waitFor(() => gateway.hasActiveListener(`0.0.0.0_${gatewayPort}`), { what: 'the gateway listener', timeoutMs: 10_000 });
  });

  after(async () => {
    await gateway?.stop();
    await meshd?.stop();
    await backend?.close();
    await authz?.close();
  });

  it('without a CUSTOM policy, every path reaches the app and the authorizer is never asked', async () => {
    for (const path of ['/secure/data', '/public']) assert.equal((await get(path)).status, 200, path);
    assert.equal(checks(), 0);
  });

  it('with the policy, requests on its paths are checked: allowed or denied by the authorizer; others are not checked', async () => {
    meshd.writeConfig('policy.yaml', POLICY);
    await eventually('the CUSTOM policy to deny an unauthorized request', async () => ((await get('/secure/data')).status === 403 ? true : undefined), 10_000);
    const before = checks();
    const allowed = await get('/secure/data', { 'x-ext-authz': 'allow' });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['x-backend'], 'app');
    const denied = await get('/secure/data', { 'x-ext-authz': 'deny' });
    assert.equal(denied.status, 403);
    // headersToDownstreamOnDeny: the authorizer's header reaches the client on a denial.
    assert.equal(denied.headers['x-ext-authz-check-result'], 'denied');
    assert.equal(checks(), before + 2, 'each request on /secure/* is one check');
    const seen = authz!.requests.slice(-2);
    assert.deepEqual(seen.map((r) => r.path), ['/secure/data', '/secure/data']);
    assert.deepEqual(seen.map((r) => r.headers['x-ext-authz']), ['allow', 'deny'], 'includeRequestHeadersInCheck forwards x-ext-authz');
    for (const path of ['/public', '/secure', '/other/secure/data']) {
      assert.equal((await get(path)).status, 200, `${path} is outside the rule's paths`);
    }
    assert.equal(checks(), before + 2, "requests outside the rule's paths never reach the authorizer");
    assert.equal(await gateway.rejectedUpdates(), 0);
  });

  it('without the provider in the mesh config, the policy fails closed and nobody is asked', async () => {
    writeFileSync(meshFile, meshConfig(false));
    await eventually('the policy to fail closed', async () => ((await get('/secure/data', { 'x-ext-authz': 'allow' })).status === 403 ? true : undefined), 10_000);
    const before = checks();
    assert.equal((await get('/secure/data', { 'x-ext-authz': 'allow' })).status, 403);
    assert.equal((await get('/public')).status, 200);
    assert.equal(checks(), before, 'a policy failing closed asks nobody');
    writeFileSync(meshFile, meshConfig(true));
    await eventually('the provider to be asked again', async () => ((await get('/secure/data', { 'x-ext-authz': 'allow' })).status === 200 ? true : undefined), 10_000);
  });

  it('with the authorizer down and failOpen false, requests on its paths get 403; others still pass', async () => {
    await authz!.close();
    authz = undefined;
    const r = await get('/secure/data', { 'x-ext-authz': 'allow' });
    assert.equal(r.status, 403);
    assert.equal((await get('/public')).status, 200);
    authz = await startAuthorizer();
    await eventually('the authorizer to be back', async () => ((await get('/secure/data', { 'x-ext-authz': 'allow' })).status === 200 ? true : undefined), 10_000);
  });

  it('removing the policy restores access without the authorizer', async () => {
    meshd.removeConfig('policy.yaml');
    await eventually('access without a check', async () => ((await get('/secure/data')).status === 200 ? true : undefined), 10_000);
    const before = checks();
    assert.equal((await get('/secure/other')).status, 200);
    assert.equal(checks(), before);
    assert.equal(await gateway.rejectedUpdates(), 0);
  });

  it('meshd validate: no error for the policy when the mesh config has its provider, IST0101 without it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-ext-authz-validate-'));
    const mesh = join(mkdtempSync(join(tmpdir(), 'meshd-ext-authz-mesh-')), 'mesh.yaml');
    writeFileSync(mesh, meshConfig(true));
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    writeFileSync(join(dir, 'svc.yaml'), serviceYaml({ name: 'ext-authz', namespace: 'foo', ports: [{ name: 'http', port: AUTHZ_PORT }], endpoints: [] }));
    const withProvider = spawnSync(process.execPath, [MESHD_CLI, 'validate', dir, '--mesh-config', mesh], { encoding: 'utf8' });
    assert.equal(withProvider.status, 0, withProvider.stdout + withProvider.stderr);
    assert.match(withProvider.stdout, /0 errors/);
    const without = spawnSync(process.execPath, [MESHD_CLI, 'validate', dir], { encoding: 'utf8' });
    assert.equal(without.status, 1);
    assert.match(without.stdout, /Error \[IST0101\] \(AuthorizationPolicy istio-system\/ext-authz[^)]*\) Referenced extension provider not found: "sample-ext-authz"/);
  });
});

interface CheckRequest {
  attributes?: { request?: { http?: { path?: string; headers?: Record<string, string> } }; destination?: { address?: { socket_address?: { port_value?: number } } } };
}

/** Envoy's external authorization gRPC service, answering with `decide`; every check recorded. */
async function startGrpcAuthorizer(decide: (req: CheckRequest) => boolean): Promise<{ port: number; checks: CheckRequest[]; close: () => Promise<void> }> {
  const def = protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', { keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true, includeDirs: envoyProtoIncludeDirs() });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const pkg = grpc.loadPackageDefinition(def) as any;
  const checks: CheckRequest[] = [];
  const server = new grpc.Server();
  server.addService(pkg.envoy.service.auth.v3.Authorization.service, {
    Check: (call: { request: CheckRequest }, callback: (err: null, res: object) => void) => {
      checks.push(call.request);
      // google.rpc.Code: 0 OK, 7 PERMISSION_DENIED.
      callback(null, { status: { code: decide(call.request) ? 0 : 7 } });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { port, checks, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** One TCP exchange: what came back, or `closed:` and what came back before the close. */
function tcpExchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const s = connect({ host: '127.0.0.1', port }, () => s.write('ping\n'));
    s.setTimeout(3000, () => s.destroy());
    s.on('data', (c: Buffer) => {
      data += c.toString();
      if (data.includes('pong')) s.end();
    });
    s.on('error', () => resolve(`closed:${data}`));
    s.on('close', () => resolve(data.includes('pong') ? 'pong' : `closed:${data}`));
  });
}

describe('AuthorizationPolicy CUSTOM through a gRPC ext_authz provider: HTTP requests and TCP connections', { timeout: 120_000 }, () => {
  let meshd: MeshdProcess;
  let gateway: EnvoyProcess;
  let backend: Backend;
  let echo: NetServer;
  let authz: Awaited<ReturnType<typeof startGrpcAuthorizer>>;
  let httpPort: number;
  let tcpPort: number;
  let allowTcp = true;

  const get = (path: string, headers: Record<string, string> = {}) => httpGet(`http://127.0.0.1:${httpPort}${path}`, { headers: { host: 'app.example.com', ...headers }, timeoutMs: 5000 });
  const tcpChecks = (): number => authz.checks.filter((c) => !c.attributes?.request?.http).length;
  const httpChecks = (): number => authz.checks.filter((c) => c.attributes?.request?.http).length;

  before(async () => {
    httpPort = await freePort();
    tcpPort = await freePort();
    backend = await startHttpBackend('app');
    echo = createServer((sock) => sock.once('data', () => sock.end('pong\n')));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const echoPort = (echo.address() as { port: number }).port;
    authz = await startGrpcAuthorizer((req) => (req.attributes?.request?.http ? req.attributes.request.http.headers?.['x-ext-authz'] === 'allow' : allowTcp));
    const meshFile = join(mkdtempSync(join(tmpdir(), 'meshd-ext-authz-grpc-')), 'mesh.yaml');
    writeFileSync(meshFile, `extensionProviders:\n- name: grpc-authz\n  envoyExtAuthzGrpc: {service: ${AUTHZ_HOST}, port: 9000, timeout: 1s}\n`);
    const config = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${httpPort}, name: http, protocol: HTTP}
    hosts: ["app.example.com"]
  - port: {number: ${tcpPort}, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: ["app.example.com"]
  gateways: [istio-system/edge]
  http: [{route: [{destination: {host: app.default.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [istio-system/edge]
  tcp: [{route: [{destination: {host: echo.default.svc.cluster.local}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: grpc-authz}
  rules:
  - to: [{operation: {paths: ["/secure/*"], ports: ["${httpPort}"]}}]
  - to: [{operation: {ports: ["${tcpPort}"]}}]
`;
    meshd = await startMeshd({
      files: {
        'app.yaml': serviceYaml({ name: 'app', ports: [{ name: 'http', port: 80, targetPort: backend.port }], endpoints: [{ ip: '127.0.0.1' }] }),
        'echo.yaml': serviceYaml({ name: 'echo', ports: [{ name: 'tcp', port: 9000, targetPort: echoPort }], endpoints: [{ ip: '127.0.0.1' }] }),
        // A port named grpc: the outbound cluster speaks HTTP/2, as Envoy's gRPC client needs.
        'ext-authz.yaml': serviceYaml({ name: 'ext-authz', namespace: 'foo', ports: [{ name: 'grpc', port: 9000, targetPort: authz.port }], endpoints: [{ ip: '127.0.0.1' }] }),
        'config.yaml': config,
      },
      extraArgs: ['--mesh-config', meshFile],
    });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--type', 'router', '--pod', 'istio-ingressgateway-1', '--namespace', 'istio-system',
      '--labels', 'istio=ingressgateway', '--xds-address', meshd.xdsAddress, '--admin-port', '0', '--readiness-port', '0', '--delta',
    ], { encoding: 'utf8' });
    gateway = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'ext-authz-grpc-gateway' });
    await gateway.waitFor(async () => (await gateway.hasActiveListener(`0.0.0.0_${httpPort}`)) && gateway.hasActiveListener(`0.0.0.0_${tcpPort}`), { what: 'the HTTP and TCP listeners', timeoutMs: 10_000 });
  });

  after(async () => {
    await gateway?.stop();
    await meshd?.stop();
    await backend?.close();
    await authz?.close();
    await new Promise<void>((resolve) => (echo ? echo.close(() => resolve()) : resolve()));
  });

  it("HTTP: the rule's paths are checked over gRPC (allowed, denied), other paths are not", async () => {
    const allowed = await get('/secure/data', { 'x-ext-authz': 'allow' });
    assert.equal(allowed.status, 200, allowed.body);
    assert.equal((await get('/secure/data')).status, 403);
    assert.equal(httpChecks(), 2);
    assert.deepEqual(authz.checks.filter((c) => c.attributes?.request?.http).map((c) => c.attributes!.request!.http!.path), ['/secure/data', '/secure/data']);
    assert.equal((await get('/public')).status, 200);
    assert.equal(httpChecks(), 2, 'no check for a path outside the rule');
  });

  it('TCP: each connection to the port is checked by the network ext_authz filter; a denial closes it', async () => {
    assert.equal(await tcpExchange(tcpPort), 'pong');
    assert.equal(tcpChecks(), 1);
    allowTcp = false;
    assert.match(await tcpExchange(tcpPort), /^closed:/);
    assert.equal(tcpChecks(), 2);
    allowTcp = true;
    assert.equal(await tcpExchange(tcpPort), 'pong');
    assert.equal(await gateway.rejectedUpdates(), 0);
  });
});

describe('AuthorizationPolicy CUSTOM on a sidecar with Istio capture, its authorizer outside what its Sidecar imports', { timeout: 120_000 }, () => {
  const PROXY_UID = 1337;
  const ADMIN_PORT = 15000;
  const APP_PORT = 8080;
  let pod: Pod;
  let meshd: MeshdProcess;
  let envoy: ChildProcess;
  let envoyLog = '';
  let authz: Backend;
  let dir: string;

  const get = (path: string, headers: Record<string, string> = {}) => httpGet(`http://${pod.podIp}:${APP_PORT}${path}`, { headers: { host: 'httpbin.default.svc.cluster.local', ...headers }, timeoutMs: 5000 });

  before(async () => {
    pod = await createPod({ name: 'ext-authz', proxyUid: PROXY_UID, excludeInboundPorts: [ADMIN_PORT] });
    authz = await startHttpBackend('ext-authz', {
      host: pod.hostIp,
      handler: (req, res) => {
        req.resume();
        res.writeHead(req.headers['x-ext-authz'] === 'allow' ? 200 : 403, { 'content-length': '0' });
        res.end();
      },
    });
    dir = mkdtempSync(join(tmpdir(), 'meshd-ext-authz-sidecar-'));
    const meshFile = join(dir, 'mesh.yaml');
    writeFileSync(meshFile, `extensionProviders:\n- name: sample-ext-authz\n  envoyExtAuthzHttp: {service: ext-authz.authz.svc.cluster.local, port: 8000, includeRequestHeadersInCheck: [x-ext-authz]}\n`);
    meshd = await startMeshd({
      files: {
        'httpbin.yaml': serviceYaml({ name: 'httpbin', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: APP_PORT }], endpoints: [{ ip: pod.podIp }] }),
        'ext-authz.yaml': serviceYaml({ name: 'ext-authz', namespace: 'authz', clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 8000, targetPort: authz.port }], endpoints: [{ ip: pod.hostIp }] }),
        // Beside the authorizer, a service the Sidecar does not import either: it gets no cluster.
        'other.yaml': serviceYaml({ name: 'other', namespace: 'authz', clusterIP: '10.96.0.21', ports: [{ name: 'http', port: 80, targetPort: 9999 }], endpoints: [{ ip: pod.hostIp }] }),
        'sidecar.yaml': 'apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\nspec:\n  egress: [{hosts: ["./*"]}]\n',
        'policy.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: CUSTOM
  provider: {name: sample-ext-authz}
  rules: [{to: [{operation: {paths: ["/secure/*"]}}]}]
`,
      },
      extraArgs: ['--grpc-addr', `${pod.hostIp}:0`, '--mesh-config', meshFile],
    });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--ip', pod.podIp, '--pod', 'httpbin-1', '--namespace', 'default', '--labels', 'app=httpbin',
      '--xds-address', `${pod.hostIp}:${meshd.grpcPort}`, '--admin-port', String(ADMIN_PORT), '--admin-address', '0.0.0.0', '--format', 'json',
    ], { encoding: 'utf8' });
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'envoy.json'), bootstrap, { mode: 0o644 });
    envoy = pod.spawn([envoyForProxyUid(), '-c', join(dir, 'envoy.json'), '--disable-hot-restart', '--concurrency', '1', '-l', 'info'], { uid: PROXY_UID });
    envoy.stdout!.on('data', (c: Buffer) => (envoyLog = (envoyLog + c.toString()).slice(-100_000)));
    envoy.stderr!.on('data', (c: Buffer) => (envoyLog = (envoyLog + c.toString()).slice(-100_000)));
    const app = pod.spawn([process.execPath, '-e', `require('node:http').createServer((q, s) => s.end('app ' + q.url)).listen(${APP_PORT});`]);
    app.stdout!.resume();
    app.stderr!.resume();
    await eventually('the sidecar to be ready', async () => ((await httpGet(`http://${pod.podIp}:${ADMIN_PORT}/ready`, { timeoutMs: 1000 }).catch(() => undefined))?.status === 200 ? true : undefined), 30_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${envoyLog.slice(-3000)}`);
    });
  });

  after(async () => {
    await pod?.destroy();
    await meshd?.stop();
    await authz?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("inbound requests on the rule's path are checked (allowed, denied); others reach the app unchecked", async () => {
    const allowed = await eventually('an allowed request through the sidecar', async () => {
      const r = await get('/secure/data', { 'x-ext-authz': 'allow' }).catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    }, 20_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${envoyLog.slice(-3000)}`);
    });
    assert.equal(allowed.body, 'app /secure/data');
    const before = authz.requests.length;
    assert.equal((await get('/secure/data', { 'x-ext-authz': 'deny' })).status, 403);
    assert.equal(authz.requests.length, before + 1);
    assert.equal((await get('/public')).body, 'app /public');
    assert.equal(authz.requests.length, before + 1, 'no check outside the rule');
    const clusters = (await httpGet(`http://${pod.podIp}:${ADMIN_PORT}/clusters`)).body;
    assert.match(clusters, /outbound\|8000\|\|ext-authz\.authz\.svc\.cluster\.local/, 'the provider cluster, though the Sidecar imports only ./*');
    assert.match(clusters, /outbound\|80\|\|httpbin\.default\.svc\.cluster\.local/);
    assert.doesNotMatch(clusters, /other\.authz\.svc\.cluster\.local/, 'the Sidecar scopes the rest of namespace authz out');
  });
});
