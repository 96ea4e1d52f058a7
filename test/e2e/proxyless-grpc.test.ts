/**
 * Proxyless gRPC through meshd: a real @grpc/grpc-js-xds client (its own process,
 * bootstrapped by `meshd bootstrap --proxyless`) resolves `xds:///echo...:7070`
 * from a real `meshd serve`, round-robins over two real gRPC backends, and follows
 * an endpoint removal. meshd must see the client SYNCED on LDS/RDS/CDS/EDS with no NACK.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MESHD_CLI, REPO_ROOT, serviceYaml, startMeshd, type MeshdProcess } from '../support/meshd.js';
import { CALL_DEADLINE_MS, startEchoBackendsOnePort, type CallSummary, type EchoBackend } from '../support/grpc-backend.js';

const execFileP = promisify(execFile);
const CLIENT_SCRIPT = join(REPO_ROOT, 'dist', 'test', 'support', 'xds-echo-client.js');
const HOST = 'echo.default.svc.cluster.local';
const TARGET = `xds:///${HOST}:7070`;
const CONVERGENCE_BOUND_MS = 5000;

/** One long-lived xDS client process: send a batch size, read back a summary line. */
interface EchoClient {
  calls(n: number): Promise<CallSummary>;
  stderr(): string;
  stop(): Promise<void>;
}

function startClient(bootstrapPath: string): EchoClient {
  const child: ChildProcess = spawn(process.execPath, [CLIENT_SCRIPT, TARGET], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, GRPC_XDS_BOOTSTRAP: bootstrapPath },
  });
  let err = '';
  let buf = '';
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) => child.once('exit', (code) => ((exitCode = code), resolve())));
  return {
    calls(n) {
      return new Promise<CallSummary>((resolve, reject) => {
        if (exitCode !== undefined) return reject(new Error(`xds client exited (${exitCode}): ${err}`));
        const limit = n * CALL_DEADLINE_MS + 10_000;
        const timer = setTimeout(() => reject(new Error(`xds client gave no answer to ${n} calls in ${limit} ms; stderr:\n${err}`)), limit);
        const onExit = (): void => {
          clearTimeout(timer);
          reject(new Error(`xds client exited (${exitCode}): ${err}`));
        };
        child.once('exit', onExit);
        const take = (line: string): void => {
          clearTimeout(timer);
          child.off('exit', onExit);
          resolve(JSON.parse(line) as CallSummary);
        };
        const ready = lines.shift();
        if (ready !== undefined) take(ready);
        else waiters.push(take);
        child.stdin!.write(JSON.stringify({ calls: n }) + '\n');
      });
    },
    stderr: () => err,
    async stop() {
      if (exitCode === undefined) {
        child.stdin!.end();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

interface SyncEntry {
  proxy: string;
  types: Record<string, { status: string; lastNack?: { error: string; version: string; nonce: string } }>;
}

async function syncz(meshd: MeshdProcess): Promise<SyncEntry[]> {
  const r = await meshd.monitoring('/debug/syncz');
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as SyncEntry[];
}

/** Every NACK meshd recorded for the proxy, as "<type>: <error>". */
function nacks(entry: SyncEntry | undefined): string[] {
  return Object.entries(entry?.types ?? {}).flatMap(([t, s]) => (s.lastNack ? [`${t}: ${s.lastNack.error} (version ${s.lastNack.version})`] : []));
}

function echoYaml(port: number, ips: string[]): string {
  return serviceYaml({
    name: 'echo',
    namespace: 'default',
    clusterIP: '10.96.0.70',
    ports: [{ name: 'grpc', port: 7070 }],
    endpointPorts: { grpc: port },
    endpoints: ips.map((ip, i) => ({ ip, pod: `echo-${i}` })),
  });
}

describe('proxyless gRPC (grpc-js-xds) through meshd', { timeout: 120_000 }, () => {
  let backends: EchoBackend[] = [];
  let meshd: MeshdProcess | undefined;
  let client: EchoClient | undefined;
  let tmp = '';
  let nodeId = '';

  before(async () => {
    backends = await startEchoBackendsOnePort([
      { name: 'echo-a', host: '127.0.0.2' },
      { name: 'echo-b', host: '127.0.0.3' },
    ]);
    const port = backends[0]!.port;
    meshd = await startMeshd({ files: { 'echo.yaml': echoYaml(port, ['127.0.0.2', '127.0.0.3']) } });
    tmp = mkdtempSync(join(tmpdir(), 'meshd-proxyless-'));
    const { stdout } = await execFileP(process.execPath, [
      MESHD_CLI,
      'bootstrap',
      '--proxyless',
      '--xds-address',
      meshd.xdsAddress,
      '--ip',
      '127.0.0.1',
      '--pod',
      'echo-client-1',
      '--namespace',
      'default',
      '--labels',
      'app=echo-client',
    ]);
    const bootstrap = JSON.parse(stdout) as { node: { id: string; metadata: Record<string, unknown> } };
    assert.equal(bootstrap.node.metadata.GENERATOR, 'grpc');
    nodeId = bootstrap.node.id;
    const bootstrapPath = join(tmp, 'grpc-bootstrap.json');
    writeFileSync(bootstrapPath, stdout);
    client = startClient(bootstrapPath);
  });

  after(async () => {
    await client?.stop();
    await meshd?.stop();
    await Promise.all(backends.map((b) => b.stop()));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** Adds what meshd says about this client (NACKs first) to an assertion message. */
  async function diagnose(): Promise<string> {
    if (!meshd) return '';
    const s = await syncz(meshd).catch((e: unknown) => String(e));
    const rejected = typeof s === 'string' ? [] : nacks(s.find((e) => e.proxy === nodeId));
    return `${rejected.length ? `\nNACKed by grpc-js-xds:\n  ${rejected.join('\n  ')}` : ''}\nsyncz: ${JSON.stringify(s)}\nclient stderr: ${client?.stderr() ?? ''}`;
  }

  it('round-robins calls over both backends', async () => {
    // One call first: it waits for xDS resolution, and fails fast (one deadline) if config never arrives.
    const probe = await client!.calls(1);
    console.log(`first call (including xDS resolution): ${JSON.stringify(probe)}`);
    assert.equal(probe.failed, 0, `first call failed: ${probe.errors.join('; ')}${await diagnose()}`);
    const first = await client!.calls(20);
    console.log(`next 20 calls: ${JSON.stringify(first)}`);
    assert.equal(first.failed, 0, `calls failed: ${first.errors.join('; ')}${await diagnose()}`);
    assert.deepEqual(Object.keys(first.byBackend).sort(), ['echo-a', 'echo-b'], `both backends should answer${await diagnose()}`);
    // Warm now: round robin over two endpoints alternates.
    const warm = await client!.calls(20);
    assert.equal(warm.failed, 0, warm.errors.join('; '));
    assert.deepEqual(warm.byBackend, { 'echo-a': 10, 'echo-b': 10 });
  });

  it('stops using a removed endpoint within the bound', async () => {
    const aBefore = backends[0]!.calls();
    meshd!.writeConfig('echo.yaml', echoYaml(backends[0]!.port, ['127.0.0.3']));
    const t0 = Date.now();
    let convergedMs: number | undefined;
    let last: CallSummary | undefined;
    while (Date.now() - t0 < CONVERGENCE_BOUND_MS * 2) {
      // Round robin alternates, so two consecutive calls both on echo-b means echo-a is gone.
      last = await client!.calls(2);
      assert.equal(last.failed, 0, `calls failed during the update: ${last.errors.join('; ')}${await diagnose()}`);
      if (last.byBackend['echo-b'] === 2) {
        convergedMs = Date.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    console.log(`endpoint removal converged in ${convergedMs ?? 'never'} ms (bound ${CONVERGENCE_BOUND_MS} ms)`);
    assert.ok(convergedMs !== undefined, `echo-a still served calls ${CONVERGENCE_BOUND_MS * 2} ms after removal: ${JSON.stringify(last)}${await diagnose()}`);
    assert.ok(convergedMs <= CONVERGENCE_BOUND_MS, `convergence took ${convergedMs} ms > ${CONVERGENCE_BOUND_MS} ms`);
    const aAtConvergence = backends[0]!.calls();
    const settled = await client!.calls(20);
    assert.equal(settled.failed, 0, settled.errors.join('; '));
    assert.deepEqual(settled.byBackend, { 'echo-b': 20 });
    assert.equal(backends[0]!.calls(), aAtConvergence, 'echo-a (still running) got no calls after convergence');
    assert.ok(aAtConvergence >= aBefore);
  });

  it('meshd shows the client SYNCED on lds, rds, cds and eds, with no NACK', async () => {
    let entry: SyncEntry | undefined;
    const deadline = Date.now() + 5000;
    for (;;) {
      entry = (await syncz(meshd!)).find((e) => e.proxy === nodeId);
      assert.deepEqual(nacks(entry), [], `grpc-js-xds rejected meshd's config`);
      const synced = ['lds', 'rds', 'cds', 'eds'].every((t) => entry?.types[t]?.status === 'SYNCED');
      if (synced || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(entry, `proxy ${nodeId} not in /debug/syncz${await diagnose()}`);
    for (const t of ['lds', 'rds', 'cds', 'eds']) {
      assert.equal(entry.types[t]?.status, 'SYNCED', `${t} not SYNCED: ${JSON.stringify(entry.types[t])}`);
      assert.equal(entry.types[t]?.lastNack, undefined);
    }
  });

  it('/metrics has no pilot_total_xds_rejects above zero', async () => {
    const r = await meshd!.monitoring('/metrics');
    assert.equal(r.status, 200);
    const rejects = r.body.split('\n').filter((l) => l.startsWith('pilot_total_xds_rejects') && Number(l.trim().split(/\s+/).pop()) > 0);
    assert.deepEqual(rejects, []);
  });
});
