// The sidecar path as Istio runs it: a "pod" network namespace whose TCP traffic is
// captured by iptables (outbound to 15001, inbound to 15006, the proxy's uid 1337
// excluded), an Envoy inside it from `meshd bootstrap`, and an app that calls a
// service by its cluster IP. Nothing in the app knows about the proxy.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { envoyForProxyUid, httpGet, parseStats } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import { createPod, type Pod } from '../support/netns.js';

const PROXY_UID = 1337;
const ADMIN_PORT = 15000;

/** A tiny HTTP client the app runs inside the pod: prints status, x-backend and body. */
const APP_GET = `
const http = require('node:http');
const [url, host] = process.argv.slice(1);
const req = http.get(url, { headers: host ? { host } : {}, timeout: 5000 }, (res) => {
  let body = ''; res.on('data', (c) => (body += c));
  res.on('end', () => { console.log(JSON.stringify({ status: res.statusCode, backend: res.headers['x-backend'] || null, server: res.headers['server'] || null })); });
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); });
`;

describe('sidecar with iptables capture', () => {
  let pod: Pod;
  let meshd: MeshdProcess;
  let envoy: ChildProcess;
  let envoyLog = '';
  const backends: Backend[] = [];
  let appServer: ChildProcess;

  async function appGet(url: string, host?: string): Promise<{ status?: number; backend?: string | null; server?: string | null; error?: string }> {
    const r = await pod.exec([process.execPath, '-e', APP_GET, url, ...(host ? [host] : [])], { timeoutMs: 15_000 });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim()) as { status?: number; backend?: string | null };
  }

  async function envoyStats(): Promise<Map<string, number>> {
    return parseStats((await httpGet(`http://${pod.podIp}:${ADMIN_PORT}/stats`)).body);
  }

  before(async () => {
    pod = await createPod({ name: 'sleep', proxyUid: PROXY_UID, excludeInboundPorts: [ADMIN_PORT] });
    const httpPort = await freePort(pod.hostIp);
    backends.push(await startHttpBackend('httpbin-0', { host: pod.hostIp, port: httpPort }));
    backends.push(await startHttpBackend('db-0', { host: pod.hostIp }));
    backends.push(await startHttpBackend('outside', { host: pod.hostIp }));
    const files = {
      'httpbin.yaml': serviceYaml({ name: 'httpbin', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: httpPort }], endpoints: [{ ip: pod.hostIp }] }),
      'db.yaml': serviceYaml({ name: 'db', clusterIP: '10.96.0.11', ports: [{ name: 'tcp', port: 5432, targetPort: backends[1]!.port }], endpoints: [{ ip: pod.hostIp }] }),
      'sleep.yaml': serviceYaml({ name: 'sleep', clusterIP: '10.96.0.12', ports: [{ name: 'http', port: 80, targetPort: 8080 }], endpoints: [{ ip: pod.podIp }] }),
    };
    meshd = await startMeshd({ files, extraArgs: ['--grpc-addr', `${pod.hostIp}:0`] });
    const bootstrap = execFileSync(process.execPath, [
      MESHD_CLI, 'bootstrap', '--ip', pod.podIp, '--pod', 'sleep-1', '--namespace', 'default', '--labels', 'app=sleep',
      '--xds-address', `${pod.hostIp}:${meshd.grpcPort}`, '--admin-port', String(ADMIN_PORT), '--admin-address', '0.0.0.0', '--format', 'json',
    ], { encoding: 'utf8' });
    const dir = mkdtempSync(join(tmpdir(), 'meshd-sidecar-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'envoy.json'), bootstrap, { mode: 0o644 });
    envoy = pod.spawn([envoyForProxyUid(), '-c', join(dir, 'envoy.json'), '--disable-hot-restart', '--concurrency', '1', '-l', 'info'], { uid: PROXY_UID });
    envoy.stdout!.on('data', (c: Buffer) => (envoyLog = (envoyLog + c.toString()).slice(-200_000)));
    envoy.stderr!.on('data', (c: Buffer) => (envoyLog = (envoyLog + c.toString()).slice(-200_000)));
    // The app's own server, on the port its Service targets.
    appServer = pod.spawn([process.execPath, '-e', "require('node:http').createServer((q,s)=>{s.setHeader('x-backend','sleep-app');s.end('app')}).listen(8080)"]);
    appServer.stdout!.resume();
    appServer.stderr!.resume();
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ready = await httpGet(`http://${pod.podIp}:${ADMIN_PORT}/ready`, { timeoutMs: 1000 }).catch(() => undefined);
      if (ready?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`Envoy in the pod did not become ready:\n${envoyLog.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    await pod?.destroy();
    await meshd?.stop();
    for (const b of backends) await b.close();
  });

  it('installs Istio-style capture rules in the pod', async () => {
    const rules = await pod.iptablesRules();
    assert.match(rules, /ISTIO_REDIRECT.*--to-ports 15001/);
    assert.match(rules, /ISTIO_IN_REDIRECT.*--to-ports 15006/);
  });

  it('the app reaches an HTTP service by cluster IP through Envoy', async () => {
    const r = await appGet('http://10.96.0.10/headers');
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(r.backend, 'httpbin-0');
    assert.equal(r.server, 'envoy', 'the response came through Envoy');
    const req = backends[0]!.requests.at(-1)!;
    assert.equal(req.headers['x-envoy-attempt-count'], '1', 'Envoy forwarded the request');
    const byName = await appGet('http://10.96.0.10/', 'httpbin.default.svc.cluster.local');
    assert.equal(byName.backend, 'httpbin-0');
  });

  it('the app reaches a TCP service by cluster IP through a TCP proxy', async () => {
    const before = (await envoyStats()).get('cluster.outbound|5432||db.default.svc.cluster.local.upstream_cx_total') ?? 0;
    const r = await appGet('http://10.96.0.11:5432/');
    assert.equal(r.backend, 'db-0', JSON.stringify(r));
    const after = (await envoyStats()).get('cluster.outbound|5432||db.default.svc.cluster.local.upstream_cx_total') ?? 0;
    assert.equal(after, before + 1);
  });

  it('traffic to an address outside the mesh passes through (ALLOW_ANY)', async () => {
    const before = (await envoyStats()).get('cluster.PassthroughCluster.upstream_cx_total') ?? 0;
    const r = await appGet(`http://${pod.hostIp}:${backends[2]!.port}/`);
    assert.equal(r.backend, 'outside', JSON.stringify(r));
    assert.equal((await envoyStats()).get('cluster.PassthroughCluster.upstream_cx_total'), before + 1);
  });

  it('inbound traffic to the pod goes through virtualInbound to the app', async () => {
    const r = await httpGet(`http://${pod.podIp}:8080/`, { timeoutMs: 5000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-backend'], 'sleep-app');
    assert.equal(r.headers.server, 'envoy', 'inbound was captured by the sidecar');
    assert.ok(((await envoyStats()).get('cluster.inbound|8080||.upstream_rq_total') ?? 0) >= 1);
  });

  it('Envoy accepted every update', async () => {
    const stats = await envoyStats();
    const rejected = [...stats].filter(([k, v]) => k.endsWith('.update_rejected') && v > 0);
    assert.deepEqual(rejected, []);
  });
});
