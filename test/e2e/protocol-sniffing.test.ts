// Protocol sniffing through a real Envoy: Services whose ports declare no protocol (unnamed, as
// in the tutorials' `backend`) carry HTTP/1.1 and HTTP/2 (prior knowledge) through the HTTP
// connection manager — VirtualService routes apply and the access log has HTTP lines — while a
// TCP client on the same kind of port still reaches its server byte for byte.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { connect as h2Connect, createServer as createH2Server, type Http2Server } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, tcpRoundTrip, type Backend } from '../support/backends.js';

const unnamed = (name: string, port: number, ip: string, targetPort: number): string =>
  // serviceYaml names every port; an unnamed single port is what the tutorials use.
  serviceYaml({ name, ports: [{ name: 'x', port, targetPort }], endpoints: [{ ip }] }).replace(/- name: x\n\s+port:/, '- port:').replace(/- name: x\n/, '- ');

describe('protocol sniffing on ports that declare no protocol', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let backend: Backend;
  let echo: TcpServer;
  let h2: Http2Server;
  let dir: string;
  let logFile: string;
  const ports = { http: 0, tcp: 0, h2: 0 };

  const logLines = (): Record<string, unknown>[] =>
    existsSync(logFile)
      ? readFileSync(logFile, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
      : [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-sniff-'));
    logFile = join(dir, 'access.log');
    const meshFile = join(dir, 'mesh.yaml');
    writeFileSync(meshFile, `accessLogFile: ${logFile}\naccessLogEncoding: JSON\n`);
    backend = await startHttpBackend('backend-0', { host: '127.0.0.5' });
    echo = createTcpServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.7', r));
    h2 = createH2Server((req, res) => {
      res.setHeader('x-served-by', 'h2-backend');
      res.end(`h2 ${req.httpVersion} ${req.url}`);
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.8', r));
    ports.http = await freePort();
    ports.tcp = await freePort();
    ports.h2 = await freePort();
    const target = (s: TcpServer | Http2Server): number => (s.address() as { port: number }).port;
    meshd = await startMeshd({
      files: {
        'backend.yaml': unnamed('backend', ports.http, '127.0.0.5', backend.port),
        'echo.yaml': unnamed('echo', ports.tcp, '127.0.0.7', target(echo)),
        'h2.yaml': unnamed('h2', ports.h2, '127.0.0.8', target(h2)),
        'backend-vs.yaml': [
          'apiVersion: networking.istio.io/v1',
          'kind: VirtualService',
          'metadata: {name: backend, namespace: default}',
          'spec:',
          '  hosts: [backend]',
          '  http:',
          '  - match: [{uri: {prefix: /teapot}}]',
          '    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}',
          '    route: [{destination: {host: backend}}]',
          '  - route: [{destination: {host: backend}}]',
          '',
        ].join('\n'),
      },
      extraArgs: ['--mesh-config', meshFile],
    });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'sleep-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'sniffing' });
    await envoy.waitFor(async () => (await httpGet(`http://127.0.0.1:${ports.http}/get`, { headers: { host: 'backend' } }).catch(() => undefined))?.status === 200, { what: 'the route to backend', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    await backend?.close();
    echo?.close();
    h2?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('routes HTTP/1.1 on an unnamed port by the VirtualService, and logs it as HTTP', async () => {
    const id = `sniff-${Date.now()}`;
    const ok = await httpGet(`http://127.0.0.1:${ports.http}/get`, { headers: { host: 'backend', 'x-request-id': id } });
    assert.equal(ok.status, 200);
    assert.equal((await httpGet(`http://127.0.0.1:${ports.http}/teapot`, { headers: { host: 'backend' } })).status, 418, "the VirtualService's fault applies");
    await envoy.waitFor(() => logLines().some((l) => l.request_id === id), { what: 'the access log line (Envoy flushes its log file on a timer)', timeoutMs: 15_000 });
    const line = logLines().find((l) => l.request_id === id)!;
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/get');
    assert.equal(line.protocol, 'HTTP/1.1');
    assert.equal(line.response_code, 200);
    assert.equal(line.upstream_cluster, `outbound|${ports.http}||backend.default.svc.cluster.local`);
  });

  it('routes HTTP/2 with prior knowledge (h2c), upstream in HTTP/2 too', async () => {
    const session = h2Connect(`http://127.0.0.1:${ports.h2}`);
    try {
      const { status, served, body } = await new Promise<{ status: number; served: string; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/h2-path', ':authority': 'h2' });
        let data = '';
        let headers: Record<string, unknown> = {};
        req.setEncoding('utf8');
        req.on('response', (h) => (headers = h));
        req.on('data', (c: string) => (data += c));
        req.on('end', () => resolve({ status: Number(headers[':status']), served: String(headers['x-served-by']), body: data }));
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
      assert.equal(served, 'h2-backend');
      assert.equal(body, 'h2 2.0 /h2-path', 'the backend saw HTTP/2');
    } finally {
      session.close();
    }
  });

  it('carries a TCP client on an unnamed port byte for byte, and logs it as TCP', async () => {
    const payload = 'not http at all\x00\x01\x02 bytes\n';
    const got = await tcpRoundTrip(ports.tcp, '127.0.0.1', payload);
    assert.equal(got, payload);
    const cluster = `outbound|${ports.tcp}||echo.default.svc.cluster.local`;
    await envoy.waitFor(() => logLines().some((l) => l.upstream_cluster === cluster), { what: 'the TCP access log line', timeoutMs: 15_000 });
    assert.equal(logLines().find((l) => l.upstream_cluster === cluster)!.method, null, 'no HTTP method on a TCP line');
  });
});
