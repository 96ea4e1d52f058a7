// The Telemetry API through real Envoys. Two sidecars of one namespace (no capture), each
// with a Sidecar importing its own service (so their 127.0.0.1 listeners do not collide, and
// neither imports the Zipkin collector): a mesh-wide Telemetry logs to a file provider of the
// mesh config, with a CEL filter, and traces every request to Zipkin with a custom tag; a
// workload Telemetry (selector app=quiet) disables the quiet one's access log and samples 0%.
// The Zipkin receiver is written here: it accepts POST /api/v2/spans (JSON v2). A second
// suite sends spans over OTLP/gRPC to a receiver that keeps each Export request's bytes
// (no OpenTelemetry protos ship with the dependencies: the test looks for strings in them),
// at 100%, then, after a live change of the Telemetry, at 0%.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import * as grpc from '@grpc/grpc-js';
import { rawMethod } from '../../src/util/raw-grpc.js';

interface ZipkinSpan {
  traceId: string;
  id: string;
  kind?: string;
  name?: string;
  tags?: Record<string, string>;
  localEndpoint?: { serviceName?: string };
}

/** A Zipkin collector's HTTP API, as much as Envoy uses: POST /api/v2/spans with a JSON list of spans. */
async function startZipkinReceiver(host: string): Promise<{ server: Server; port: number; spans: ZipkinSpan[]; posts: number[] }> {
  const spans: ZipkinSpan[] = [];
  const posts: number[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/api/v2/spans') {
        res.writeHead(404).end();
        return;
      }
      posts.push(Date.now());
      spans.push(...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ZipkinSpan[]));
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, spans, posts };
}

describe('Telemetry: access logs and Zipkin tracing through real Envoys', () => {
  let meshd: MeshdProcess;
  let sleep: EnvoyProcess;
  let quiet: EnvoyProcess;
  let backend: Backend;
  let zipkin: Awaited<ReturnType<typeof startZipkinReceiver>>;
  let sleepPort: number;
  let quietPort: number;
  let dir: string;
  let logFile: string;

  const ZIPKIN_HOST = 'zipkin.tracing.svc.cluster.local';

  async function request(port: number, host: string, path = '/get'): Promise<{ status: number; id: string }> {
    // A UUID, as Envoy makes them: it records its sampling decision in the id (a non-UUID id is not traceable).
    const id = randomUUID();
    const r = await httpGet(`http://127.0.0.1:${port}${path}`, { headers: { host, 'x-request-id': id }, timeoutMs: 5000 });
    return { status: r.status, id };
  }

  const logLines = (): string[] => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '') : []);
  /** Envoy records its trace decision in the id's version digit (index 14): compare the rest. */
  const sameId = (a: string | undefined, b: string): boolean => a !== undefined && a.length === b.length && a.slice(0, 14) === b.slice(0, 14) && a.slice(15) === b.slice(15);
  const lineOf = (id: string): string | undefined => logLines().find((l) => sameId(l.split(' ')[0], id));
  const spansFor = (id: string): ZipkinSpan[] => zipkin.spans.filter((s) => sameId(s.tags?.['guid:x-request-id'], id));

  const bootstrap = (pod: string, app: string): object =>
    parse(
      execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', pod, '--labels', `app=${app}`, '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' }),
    ) as object;

  const sidecarFor = (app: string, host: string): string =>
    ['apiVersion: networking.istio.io/v1', 'kind: Sidecar', `metadata: {name: ${app}, namespace: default}`, 'spec:', `  workloadSelector: {labels: {app: ${app}}}`, '  egress:', `  - hosts: ["./${host}"]`, ''].join('\n');

  before(async () => {
    backend = await startHttpBackend('httpbin-0', { host: '127.0.0.5' });
    zipkin = await startZipkinReceiver('127.0.0.6');
    sleepPort = await freePort();
    quietPort = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'meshd-telemetry-'));
    logFile = join(dir, 'access.log');
    const meshFile = join(dir, 'mesh.yaml');
    writeFileSync(
      meshFile,
      [
        'extensionProviders:',
        '- name: file-log',
        '  envoyFileAccessLog:',
        `    path: ${logFile}`,
        '    logFormat: {text: "%REQ(X-REQUEST-ID)% %RESPONSE_CODE% %UPSTREAM_CLUSTER_RAW%"}',
        '- name: zipkin',
        `  zipkin: {service: ${ZIPKIN_HOST}, port: ${zipkin.port}}`,
        '',
      ].join('\n'),
    );
    meshd = await startMeshd({
      files: {
        'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port: sleepPort, targetPort: backend.port }], endpoints: [{ ip: '127.0.0.5' }] }),
        'httpbin2.yaml': serviceYaml({ name: 'httpbin2', ports: [{ name: 'http', port: quietPort, targetPort: backend.port }], endpoints: [{ ip: '127.0.0.5' }] }),
        'zipkin.yaml': serviceYaml({ name: 'zipkin', namespace: 'tracing', ports: [{ name: 'http-zipkin', port: zipkin.port }], endpoints: [{ ip: '127.0.0.6' }] }),
        'sidecars.yaml': `${sidecarFor('sleep', 'httpbin.default.svc.cluster.local')}---\n${sidecarFor('quiet', 'httpbin2.default.svc.cluster.local')}`,
        'telemetry.yaml': [
          'apiVersion: telemetry.istio.io/v1',
          'kind: Telemetry',
          'metadata: {name: mesh-default, namespace: istio-system}',
          'spec:',
          '  accessLogging:',
          '  - providers: [{name: file-log}]',
          '    filter: {expression: "request.url_path != \'/not-logged\'"}',
          '  tracing:',
          '  - providers: [{name: zipkin}]',
          '    randomSamplingPercentage: 100',
          '    customTags: {team: {literal: {value: platform}}}',
          '---',
          'apiVersion: telemetry.istio.io/v1alpha1',
          'kind: Telemetry',
          'metadata: {name: quiet, namespace: default}',
          'spec:',
          '  selector: {matchLabels: {app: quiet}}',
          '  accessLogging:',
          '  - disabled: true',
          '  tracing:',
          '  - randomSamplingPercentage: 0',
          '',
        ].join('\n'),
      },
      extraArgs: ['--mesh-config', meshFile],
    });
    sleep = await startEnvoy({ bootstrap: bootstrap('sleep-1', 'sleep'), name: 'tel-sleep' });
    quiet = await startEnvoy({ bootstrap: bootstrap('quiet-1', 'quiet'), name: 'tel-quiet' });
    await sleep.waitFor(async () => (await request(sleepPort, 'httpbin').catch(() => undefined))?.status === 200, { what: 'the sleep route to work', timeoutMs: 15_000 });
    await quiet.waitFor(async () => (await request(quietPort, 'httpbin2').catch(() => undefined))?.status === 200, { what: 'the quiet route to work', timeoutMs: 15_000 });
  });

  after(async () => {
    await sleep?.stop();
    await quiet?.stop();
    await meshd?.stop();
    await backend?.close();
    await new Promise((r) => zipkin?.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('meshd reports no finding about the Telemetries and both proxies accepted everything', async () => {
    const findings = meshd.records().filter((r) => String(r.msg).includes('Telemetry'));
    assert.deepEqual(findings, []);
    assert.equal(await sleep.rejectedUpdates(), 0);
    assert.equal(await quiet.rejectedUpdates(), 0);
  });

  it('the collector cluster is there although the Sidecars do not import the Zipkin service', async () => {
    for (const envoy of [sleep, quiet]) {
      const names = await envoy.clusterNames();
      assert.ok(names.includes(`outbound|${zipkin.port}||${ZIPKIN_HOST}`), `${envoy.name}: ${names.join(', ')}`);
    }
  });

  it('the mesh-wide Telemetry logs a request through the file provider, in its format', async () => {
    const { status, id } = await request(sleepPort, 'httpbin');
    assert.equal(status, 200);
    let line: string | undefined;
    await sleep.waitFor(() => (line = lineOf(id)) !== undefined, { what: `the access log line of ${id}`, timeoutMs: 10_000, intervalMs: 50 });
    assert.equal(line!.slice(line!.indexOf(' ')), ` 200 outbound|${sleepPort}||httpbin.default.svc.cluster.local`);
  });

  it('its CEL filter leaves out what it excludes; disabled: true silences the selected workload only', async () => {
    const filtered = await request(sleepPort, 'httpbin', '/not-logged');
    const silenced = await request(quietPort, 'httpbin2');
    const control = await request(sleepPort, 'httpbin', '/logged');
    assert.deepEqual([filtered.status, silenced.status, control.status], [200, 200, 200]);
    // Lines are flushed about every second; once the control's is there, the others would be too.
    await sleep.waitFor(() => lineOf(control.id) !== undefined, { what: 'the control line', timeoutMs: 10_000, intervalMs: 50 });
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(lineOf(filtered.id), undefined, 'the filtered request was not logged');
    assert.equal(lineOf(silenced.id), undefined, 'the quiet workload logged nothing');
    assert.ok(backend.requests.some((r) => sameId(String(r.headers['x-request-id']), silenced.id)), 'the quiet request did reach the backend');
  });

  it('spans reach the Zipkin receiver at 100%, with the custom tag; none at 0%', async () => {
    const quietIds: string[] = [];
    for (let i = 0; i < 5; i++) quietIds.push((await request(quietPort, 'httpbin2')).id);
    const sampled: string[] = [];
    for (let i = 0; i < 5; i++) sampled.push((await request(sleepPort, 'httpbin')).id);
    // Envoy's Zipkin reporter flushes every 5 s (or every 5 spans).
    await sleep
      .waitFor(() => sampled.every((id) => spansFor(id).length > 0), { what: 'spans of every sampled request', timeoutMs: 20_000, intervalMs: 100 })
      .catch(async (err: Error) => {
        const stats = [...(await sleep.stats())].filter(([k]) => !k.startsWith('cluster.') && (k.includes('tracing') || k.includes('zipkin')));
        throw new Error(`${err.message.split('\n')[0]}; received ${zipkin.spans.length} spans (${JSON.stringify(zipkin.spans.slice(0, 2))}); sleep's tracing stats: ${JSON.stringify(stats)}`);
      });
    for (const id of sampled) {
      const [span] = spansFor(id);
      assert.equal(span!.kind, 'CLIENT', 'an outbound (client) span');
      assert.equal(span!.tags?.team, 'platform', 'the custom literal tag');
      assert.match(span!.traceId, /^[0-9a-f]{32}$/, '128-bit trace ids');
    }
    // The quiet proxy would have flushed by now too (same interval), had it sampled anything.
    await new Promise((r) => setTimeout(r, 6000));
    for (const id of quietIds) assert.deepEqual(spansFor(id), [], `no span for ${id} at 0%`);
    const quietStats = await quiet.stats();
    const sleepStats = await sleep.stats();
    const sum = (m: Map<string, number>, suffix: string): number => [...m].filter(([k]) => k.endsWith(suffix)).reduce((a, [, v]) => a + v, 0);
    assert.equal(sum(quietStats, '.tracing.random_sampling'), 0, 'the quiet proxy sampled nothing');
    assert.ok(sum(sleepStats, '.tracing.random_sampling') >= 5, 'the sleep proxy sampled its requests');
    assert.equal(sum(quietStats, 'tracing.zipkin.spans_sent'), 0);
    assert.ok(sum(sleepStats, 'tracing.zipkin.spans_sent') >= 5);
  });
});

/** OTLP/gRPC's TraceService, as much as Envoy calls: Export requests kept as bytes, answered with an empty response. */
async function startOtlpReceiver(host: string): Promise<{ server: grpc.Server; port: number; exports: Buffer[] }> {
  const exports: Buffer[] = [];
  const server = new grpc.Server();
  const service = { Export: rawMethod('/opentelemetry.proto.collector.trace.v1.TraceService/Export', { request: false, response: false }) };
  server.addService(service, {
    Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      exports.push(call.request);
      callback(null, Buffer.alloc(0));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port, exports };
}

describe('Telemetry: OpenTelemetry tracing over gRPC through a real Envoy', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let backend: Backend;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let port: number;
  let dir: string;

  const telemetryYaml = (percent: number): string =>
    [
      'apiVersion: telemetry.istio.io/v1',
      'kind: Telemetry',
      'metadata: {name: mesh-default, namespace: istio-system}',
      'spec:',
      '  tracing:',
      '  - providers: [{name: otel}]',
      `    randomSamplingPercentage: ${percent}`,
      '    customTags: {marker: {literal: {value: otlp-marker-tag}}}',
      '',
    ].join('\n');
  const get = async (): Promise<number> => (await httpGet(`http://127.0.0.1:${port}/get`, { headers: { host: 'httpbin', 'x-request-id': randomUUID() }, timeoutMs: 5000 })).status;
  const exported = (): string => Buffer.concat(otlp.exports).toString('latin1');

  before(async () => {
    backend = await startHttpBackend('httpbin-0', { host: '127.0.0.5' });
    otlp = await startOtlpReceiver('127.0.0.7');
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'meshd-otlp-'));
    const meshFile = join(dir, 'mesh.yaml');
    writeFileSync(meshFile, ['extensionProviders:', '- name: otel', `  opentelemetry: {service: otel.tracing.svc.cluster.local, port: ${otlp.port}, grpc: {timeout: 2s}}`, ''].join('\n'));
    meshd = await startMeshd({
      files: {
        'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port, targetPort: backend.port }], endpoints: [{ ip: '127.0.0.5' }] }),
        'otel.yaml': serviceYaml({ name: 'otel', namespace: 'tracing', ports: [{ name: 'grpc-otlp', port: otlp.port }], endpoints: [{ ip: '127.0.0.7' }] }),
        'telemetry.yaml': telemetryYaml(100),
      },
      extraArgs: ['--mesh-config', meshFile],
    });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'client-1', '--labels', 'app=client', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'tel-otlp' });
    await envoy.waitFor(async () => (await get().catch(() => 0)) === 200, { what: 'the route to work', timeoutMs: 15_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    await backend?.close();
    otlp?.server.forceShutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('exports spans at 100%, with the custom tag and the service name', async () => {
    for (let i = 0; i < 5; i++) assert.equal(await get(), 200);
    await envoy.waitFor(() => exported().includes('otlp-marker-tag'), { what: 'an OTLP export with the custom tag', timeoutMs: 20_000, intervalMs: 100 });
    assert.ok(exported().includes('client.default'), 'the service name <app>.<namespace>');
    assert.equal(await envoy.rejectedUpdates(), 0);
  });

  it('exports nothing at 0% (changed live)', async () => {
    meshd.writeConfig('telemetry.yaml', telemetryYaml(0));
    await envoy.waitFor(async () => JSON.stringify(await envoy.configDump()).includes('"random_sampling":{"value":0}') || JSON.stringify(await envoy.configDump()).includes('"random_sampling":{}'), { what: 'sampling 0 to arrive', timeoutMs: 10_000 });
    // Spans from before the change are flushed within 5 s; then nothing more may come.
    await new Promise((r) => setTimeout(r, 6000));
    const before = otlp.exports.length;
    for (let i = 0; i < 5; i++) assert.equal(await get(), 200);
    await new Promise((r) => setTimeout(r, 6500));
    assert.equal(otlp.exports.length, before, 'no Export after requests at 0%');
  });
});
