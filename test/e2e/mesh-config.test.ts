// The mesh config (--mesh-config FILE, watched) through real Envoys: access logs appear only
// when it says so, in Istio's TEXT and JSON formats, and are switched without restarting
// anything; an invalid edit is refused and the last good config keeps serving; REGISTRY_ONLY
// sends unknown destinations to the black hole (502 for HTTP) while known services work.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, envoyForProxyUid, httpGet, parseStats, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import { createPod, type Pod } from '../support/netns.js';
import { appGet as podAppGet, type AppGetResult } from '../support/pod-http.js';
import { ISTIO_JSON_LOG_FIELDS } from '../../src/translate/access-log.js';

const HOST = 'httpbin.default.svc.cluster.local';

/** Replaces the mesh config file as tools do (write aside, rename), so meshd never reads half of it. */
function writeMeshConfig(file: string, yaml: string): void {
  writeFileSync(`${file}.tmp`, yaml);
  renameSync(`${file}.tmp`, file);
}

describe('mesh config: access logs through a real Envoy, switched live', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let backend: Backend;
  let servicePort: number;
  let dir: string;
  let meshFile: string;
  let logFile: string;
  let seq = 0;
  const cluster = (): string => `outbound|${servicePort}||${HOST}`;

  /** One request with a request id of its own, so its log line can be found. */
  async function request(path: string): Promise<{ status: number; id: string }> {
    const id = `req-${++seq}-${process.pid}`;
    const r = await httpGet(`http://127.0.0.1:${servicePort}${path}`, { headers: { host: 'httpbin', 'x-request-id': id, 'user-agent': 'mesh-config-test' }, timeoutMs: 5000 });
    return { status: r.status, id };
  }

  const logLines = (): string[] => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '') : []);

  /** Envoy's access loggers on the outbound listener's HTTP connection manager, from its config_dump. */
  async function outboundAccessLogs(): Promise<unknown[] | undefined> {
    const dump = await envoy.configDump();
    for (const c of dump.configs as { dynamic_listeners?: { name: string; active_state?: { listener: Record<string, unknown> } }[] }[]) {
      for (const l of c.dynamic_listeners ?? []) {
        if (l.name !== `127.0.0.1_${servicePort}`) continue;
        const hcm = (l.active_state!.listener.filter_chains as { filters: { typed_config: { access_log?: unknown[] } }[] }[])[0]!.filters[0]!.typed_config;
        return hcm.access_log;
      }
    }
    return undefined;
  }

  /** Waits until the line for request `id` is written (Envoy flushes file logs about every second). */
  async function lineFor(id: string): Promise<string> {
    let found: string | undefined;
    await envoy.waitFor(() => (found = logLines().find((l) => l.includes(id))) !== undefined, { what: `the access log line of ${id}`, timeoutMs: 10_000, intervalMs: 50 });
    return found!;
  }

  before(async () => {
    backend = await startHttpBackend('httpbin-0', { host: '127.0.0.5' });
    servicePort = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'meshd-meshcfg-'));
    meshFile = join(dir, 'mesh.yaml');
    logFile = join(dir, 'access.log');
    writeFileSync(meshFile, '# Istio defaults: no access log\n');
    meshd = await startMeshd({
      files: { 'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port: servicePort, targetPort: backend.port }], endpoints: [{ ip: '127.0.0.5' }] }) },
      extraArgs: ['--mesh-config', meshFile],
    });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'sleep-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'meshcfg' });
    await envoy.waitFor(async () => (await request('/').catch(() => undefined))?.status === 200, { what: 'the route to work', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    await backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs nothing by default (accessLogFile empty)', async () => {
    assert.equal(await outboundAccessLogs(), undefined, 'no access logger on the HTTP connection manager');
    assert.equal((await request('/status/200')).status, 200);
    assert.equal(existsSync(logFile), false);
  });

  it("turns TEXT access logs on without a restart, in Istio's default format", async () => {
    writeMeshConfig(meshFile, `accessLogFile: ${logFile}\n`);
    await envoy.waitFor(async () => (await outboundAccessLogs()) !== undefined, { what: 'the access logger to arrive', timeoutMs: 10_000 });
    const { status, id } = await request('/get?show_env=1');
    assert.equal(status, 200);
    const line = await lineFor(id);
    // [start] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS TERMINATION "FAILURE" RECEIVED SENT DURATION UPSTREAM_TIME "XFF" "UA" "ID" "AUTHORITY" "UPSTREAM_HOST" CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE SNI ROUTE
    const m = /^\[(\S+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) (\S+) (\S+) "([^"]*)" (\d+) (\d+) (\d+) (\S+) "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)" (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)$/.exec(line);
    assert.ok(m, `not Istio's TEXT format: ${line}`);
    assert.ok(!Number.isNaN(Date.parse(m[1]!)), `start time ${m[1]}`);
    assert.deepEqual([m[2], m[3], m[4], m[5], m[6], m[7]], ['GET', '/get?show_env=1', 'HTTP/1.1', '200', '-', 'via_upstream']);
    assert.deepEqual([m[15], m[16], m[17], m[18], m[19]], ['mesh-config-test', id, 'httpbin', `127.0.0.5:${backend.port}`, cluster()]);
    assert.equal(m[21], `127.0.0.1:${servicePort}`, 'downstream local address: the listener');
    assert.equal(m[24], 'default', 'route name');
  });

  it('switches to JSON with Istio\'s default fields', async () => {
    writeMeshConfig(meshFile, `accessLogFile: ${logFile}\naccessLogEncoding: JSON\n`);
    await envoy.waitFor(async () => JSON.stringify(await outboundAccessLogs()).includes('json_format'), { what: 'the JSON access logger', timeoutMs: 10_000 });
    const { id } = await request('/headers');
    const entry = JSON.parse(await lineFor(id)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(entry).sort(), Object.keys(ISTIO_JSON_LOG_FIELDS).sort());
    assert.equal(entry.method, 'GET');
    assert.equal(entry.path, '/headers');
    assert.equal(entry.response_code, 200);
    assert.equal(entry.upstream_cluster, cluster());
    assert.equal(entry.authority, 'httpbin');
    assert.equal(entry.request_id, id);
    assert.equal(entry.route_name, 'default');
  });

  it('refuses an invalid edit, naming the field; the last good mesh config keeps serving', async () => {
    writeMeshConfig(meshFile, `accessLogFile: ${logFile}\naccessLogEncoding: XML\n`);
    await envoy.waitFor(() => meshd.records().some((r) => String(r.msg).includes('accessLogEncoding: "XML" is not one of TEXT, JSON')), { what: 'meshd to refuse the edit', timeoutMs: 10_000 });
    const rec = meshd.records().find((r) => String(r.msg).includes('"XML"'))!;
    assert.match(String(rec.msg), new RegExp(`^mesh config \\(file ${meshFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\): accessLogEncoding: "XML" is not one of TEXT, JSON; the last good mesh config keeps serving$`));
    assert.match((await meshd.monitoring('/metrics')).body, /meshd_config_errors_total\{kind="MeshConfig"\} 1\b/);
    // Still JSON, still serving.
    const { status, id } = await request('/after-refusal');
    assert.equal(status, 200);
    assert.equal((JSON.parse(await lineFor(id)) as { path: string }).path, '/after-refusal');
  });

  it('takes a custom TEXT format', async () => {
    writeMeshConfig(meshFile, `accessLogFile: ${logFile}\naccessLogFormat: "CUSTOM %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %REQ(X-REQUEST-ID)% %UPSTREAM_CLUSTER_RAW%"\n`);
    await envoy.waitFor(async () => JSON.stringify(await outboundAccessLogs()).includes('CUSTOM'), { what: 'the custom format', timeoutMs: 10_000 });
    const { id } = await request('/custom');
    assert.equal(await lineFor(id), `CUSTOM GET /custom 200 ${id} ${cluster()}`);
  });

  it('turns access logs off again', async () => {
    writeMeshConfig(meshFile, 'accessLogFile: ""\n');
    await envoy.waitFor(async () => (await outboundAccessLogs()) === undefined, { what: 'the access logger to go', timeoutMs: 10_000 });
    const { status, id } = await request('/not-logged');
    assert.equal(status, 200);
    // Envoy flushes file access logs every second: a line for this request would be there by now.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(logLines().some((l) => l.includes(id)), false, 'no line for a request made with access logs off');
  });
});


describe('mesh config: outboundTrafficPolicy through a captured sidecar', () => {
  const PROXY_UID = 1337;
  const ADMIN_PORT = 15000;
  let pod: Pod;
  let meshd: MeshdProcess;
  let envoy: ChildProcess;
  let envoyLog = '';
  const backends: Backend[] = [];
  let dir: string;
  let meshFile: string;

  const appGet = (url: string, host?: string): Promise<AppGetResult> => podAppGet(pod, url, host);

  async function stat(name: string): Promise<number> {
    return parseStats((await httpGet(`http://${pod.podIp}:${ADMIN_PORT}/stats`)).body).get(name) ?? 0;
  }

  async function until(what: string, predicate: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${envoyLog.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  before(async () => {
    pod = await createPod({ name: 'regonly', proxyUid: PROXY_UID, excludeInboundPorts: [ADMIN_PORT] });
    backends.push(await startHttpBackend('httpbin-0', { host: pod.hostIp }));
    // Outside the mesh: one on port 80 (an HTTP port of the mesh), one on a port of its own.
    backends.push(await startHttpBackend('outside-80', { host: pod.hostIp, port: 80 }));
    backends.push(await startHttpBackend('outside', { host: pod.hostIp }));
    dir = mkdtempSync(join(tmpdir(), 'meshd-regonly-'));
    meshFile = join(dir, 'mesh.yaml');
    writeFileSync(meshFile, 'outboundTrafficPolicy: {mode: ALLOW_ANY}\n');
    meshd = await startMeshd({
      files: { 'httpbin.yaml': serviceYaml({ name: 'httpbin', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: backends[0]!.port }], endpoints: [{ ip: pod.hostIp }] }) },
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
  });

  after(async () => {
    await pod?.destroy();
    await meshd?.stop();
    for (const b of backends) await b.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ALLOW_ANY: unknown destinations pass through', async () => {
    assert.equal((await appGet(`http://${pod.hostIp}/`)).backend, 'outside-80');
    assert.equal((await appGet(`http://${pod.hostIp}:${backends[2]!.port}/`)).backend, 'outside');
  });

  it('REGISTRY_ONLY, applied live: unknown HTTP hosts get 502, other unknown destinations the black hole; known services still work', async () => {
    writeMeshConfig(meshFile, 'outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n');
    await until('the HTTP catch-all to answer 502', async () => (await appGet(`http://${pod.hostIp}/`)).status === 502);
    const before = await stat('cluster.BlackHoleCluster.upstream_cx_total');
    const tcp = await appGet(`http://${pod.hostIp}:${backends[2]!.port}/`);
    assert.ok(tcp.error, `an unknown TCP destination is refused: ${JSON.stringify(tcp)}`);
    assert.equal(backends[2]!.requests.length, 1, 'only the ALLOW_ANY request reached the outside backend');
    assert.equal(await stat('cluster.BlackHoleCluster.upstream_cx_total'), before, 'the black hole makes no upstream connection');
    const known = await appGet('http://10.96.0.10/get');
    assert.equal(known.status, 200);
    assert.equal(known.backend, 'httpbin-0');
    const byName = await appGet('http://10.96.0.10/', HOST);
    assert.equal(byName.backend, 'httpbin-0');
  });

  it('an invalid edit is refused and REGISTRY_ONLY keeps serving', async () => {
    writeMeshConfig(meshFile, 'outboundTrafficPolicy: {mode: ALLOWANY}\n');
    await until('meshd to refuse the edit', async () => meshd.records().some((r) => String(r.msg).includes('outboundTrafficPolicy.mode: "ALLOWANY" is not one of ALLOW_ANY, REGISTRY_ONLY')));
    assert.equal((await appGet(`http://${pod.hostIp}/`)).status, 502);
    assert.equal((await appGet('http://10.96.0.10/get')).backend, 'httpbin-0');
  });
});
