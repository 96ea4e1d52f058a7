// `npm run bench`: meshd at 1000 services x 10 endpoints, with 1000 simulated Envoy
// sidecars (bench/ads-clients.ts) in one separate process, once over SotW and once
// over delta xDS. Prints figures (and PASS/MISS against the targets) and writes
// bench/results/latest.json. Everything runs on loopback and is bounded in time.
//
// Then the informer case (bench/kube-informer.ts): meshd on a real etcd + kube-apiserver
// holding the same mesh as Services and EndpointSlices, EndpointSlice updates made through the API.
//
// Knobs (environment): BENCH_SERVICES, BENCH_CLIENTS, BENCH_ENDPOINTS, BENCH_EDS_CHANGES,
// BENCH_NEW_SERVICES, BENCH_MODES (e.g. "delta", or "kube" for the informer case only),
// BENCH_KUBE=0 (skip the informer case), BENCH_KUBE_UPDATES, BENCH_MICRO=0 (skip
// micro-benchmarks), BENCH_PROFILE=1 (meshd runs with --cpu-prof into bench/results/profiles/),
// BENCH_MESHD_NODE_FLAGS (Node flags for meshd, e.g. "--max-semi-space-size=32"), BENCH_MESHD_ARGS
// (more meshd arguments, e.g. "--push-concurrency 100").
//
// Then the traffic-management case (BENCH_MODES=istio alone): the mesh plus 500 VirtualServices and
// 500 DestinationRules, 1000 clients, VirtualService edits timed to each client's new RDS (or, over
// VHDS, its new virtual host). Once per variant: `vhds` (delta clients, meshd's default: virtual
// hosts over VHDS), `sotw` (whole route configurations), `rds` (delta clients, meshd --vhds off).
// Knobs: BENCH_ISTIO_OBJECTS, BENCH_ISTIO_EDITS, BENCH_ISTIO_VARIANTS (default "vhds,sotw").
//
// BENCH_MODES=scoped: the same traffic-management mesh, every client under a Sidecar that imports
// BENCH_SIDECAR_IMPORTS (20) of the services (the edited ones among them); initial sync, RSS and
// VirtualService edits as in the istio case.
//
// BENCH_MODES=soak (alone, never by default): bench/soak.ts, meshd's memory under 30 minutes of churn.
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { httpText } from '../test/support/meshd.js';
import { wallNow, type ClientEvent, type Command, type InitialReport, type StatsReport, type WatchReport, type WatchSpec, type XdsProtocol } from './ipc.js';
import { changedEndpointIP, clusterName, hostname, istioFile, serviceName, newServiceSpec, renderIstio, renderService, serviceFile, serviceSpec, writeAtomic, writeIstio, writeMesh, HTTP_PORT } from './mesh-config.js';
import { clockTicks, fmtBytes, fmtMs, mean, metricValue, percentile, procCpuSeconds, procStatusBytes, systemCpuTicks, table } from './stats.js';
import { runIstioMicro, runMicro, type MicroResult } from './micro.js';
import { KUBE_TARGETS, kubeReport, runKubeInformer, type KubeInformerConfig, type KubeInformerResult } from './kube-informer.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench -> repo root */
const REPO = resolve(here, '..', '..');
const MESHD_CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');
const CLIENTS_JS = join(here, 'ads-clients.js');
const LOOP_PROBE_JS = join(here, 'loop-probe.js');
const RESULTS = join(REPO, 'bench', 'results');

const num = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return process.env[name] && Number.isFinite(v) ? v : dflt;
};

const MODES = (process.env.BENCH_MODES ?? 'sotw,delta,kube,istio,signing').split(',').map((s) => s.trim()).filter(Boolean);

const CFG = {
  services: num('BENCH_SERVICES', 1000),
  endpoints: num('BENCH_ENDPOINTS', 10),
  clients: num('BENCH_CLIENTS', 1000),
  perChannel: 50,
  // Envoy opens its xDS connection with 256 MiB stream and connection windows; here 50 streams
  // share a connection (and its window), so a small one would throttle them, not meshd.
  flowWindow: 64 * 1024 * 1024,
  edsChanges: num('BENCH_EDS_CHANGES', 20),
  newServices: num('BENCH_NEW_SERVICES', 5),
  modes: MODES.filter((m): m is XdsProtocol => m === 'sotw' || m === 'delta'),
  /** The informer case; BENCH_MODES=kube runs it alone (and no micro-benchmarks unless BENCH_MICRO=1). */
  kube: MODES.includes('kube') && process.env.BENCH_KUBE !== '0',
  micro: process.env.BENCH_MICRO === '1' || (process.env.BENCH_MICRO !== '0' && MODES.some((m) => m === 'sotw' || m === 'delta')),
  /** The traffic-management case (VirtualServices, DestinationRules); BENCH_MODES=istio runs it alone. */
  istio: MODES.includes('istio'),
  istioObjects: num('BENCH_ISTIO_OBJECTS', 500),
  istioEdits: num('BENCH_ISTIO_EDITS', 5),
  istioVariants: (process.env.BENCH_ISTIO_VARIANTS ?? 'vhds,sotw')
    .split(',')
    .map((s) => s.trim())
    .filter((s): s is IstioVariant => s === 'vhds' || s === 'sotw' || s === 'rds'),
  istioMicro: process.env.BENCH_MICRO !== '0' && MODES.includes('istio'),
  /** The istio case again with every client scoped by a Sidecar; BENCH_MODES=scoped. */
  scoped: MODES.includes('scoped'),
  sidecarImports: num('BENCH_SIDECAR_IMPORTS', 20),
  /** The istio case's own bound per variant, after the file scenarios' deadline (BENCH_ISTIO_MS on a loaded machine). */
  istioMs: num('BENCH_ISTIO_MS', 150_000),
  profile: process.env.BENCH_PROFILE === '1',
  initialTimeoutMs: num('BENCH_INITIAL_TIMEOUT_MS', 60_000),
  edsTimeoutMs: 10_000,
  serviceTimeoutMs: 30_000,
  /** Whole run; phases are skipped (and reported as such) to stay within it. */
  deadlineMs: 5 * 60_000,
  /** Longest one scenario (SotW or delta) may take, so that one slow mode cannot starve the other. */
  scenarioMs: 135_000,
};

const KUBE_CFG: KubeInformerConfig = {
  services: CFG.services,
  endpoints: CFG.endpoints,
  updates: num('BENCH_KUBE_UPDATES', 100),
  createConcurrency: 20,
  gapMs: 50,
  /** Its own bound, after the file scenarios' deadline. */
  boundMs: 5 * 60_000,
  updateTimeoutMs: 10_000,
};

const TARGETS = {
  deltaEdsP99Ms: 200,
  initialSyncMs: 10_000,
  serverRssBytes: 500 * 1024 * 1024,
  istioVsEditP99Ms: 1000,
  /** Over VHDS (delta clients): an edit sends only the virtual hosts it changed. */
  vhdsVsEditP99Ms: 300,
  vhdsVsEditBytesPerClient: 5 * 1024,
  istioRssBytes: 800 * 1024 * 1024,
  scopedInitialSyncMs: 3000,
  scopedRssBytes: 300 * 1024 * 1024,
};

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- child processes: always killed on the way out ------------------------------------------

const children = new Set<ChildProcess>();
function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}
function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    killChildren();
    process.exit(130);
  });
}

async function stopChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 8000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  await new Promise<void>((res) => {
    const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    c.kill(signal);
  });
}

// ---- meshd --------------------------------------------------------------------------------

interface Meshd {
  proc: ChildProcess;
  pid: number;
  grpcPort: number;
  monitoringPort: number;
  warnings: () => string[];
  /** Stage records from meshd's debug log: end of a config reload, start of a push (Date.now() ms). */
  stages: { msg: 'config directory loaded' | 'pushing'; at: number; rec: Record<string, unknown> }[];
  /** Event-loop stalls of meshd (bench/loop-probe.ts), JSON lines. */
  probeFile: string;
}

/** meshd's event-loop stalls overlapping [from, to] (Date.now() ms): the longest and the sum. */
function loopStalls(m: Meshd, from: number, to: number): { maxMs: number; totalMs: number } {
  let maxMs = 0;
  let totalMs = 0;
  if (!existsSync(m.probeFile)) return { maxMs, totalMs };
  for (const line of readFileSync(m.probeFile, 'utf8').split('\n')) {
    if (!line) continue;
    const r = JSON.parse(line) as { at: number; ms: number };
    if (r.at < from || r.at - r.ms > to) continue;
    maxMs = Math.max(maxMs, r.ms);
    totalMs += r.ms;
  }
  return { maxMs, totalMs };
}

async function startMeshd(configDir: string, profileDir?: string, extraArgs: string[] = []): Promise<Meshd> {
  // Not in the config dir: meshd watches that, and every write would trigger a reload.
  const probeFile = join(tmpdir(), `meshd-bench-loop-${process.pid}-${Date.now()}.jsonl`);
  const args = [
    ...(process.env.BENCH_MESHD_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
    '--import',
    pathToFileURL(LOOP_PROBE_JS).href,
    MESHD_CLI,
    'serve',
    '--config-dir',
    configDir,
    '--grpc-addr',
    '127.0.0.1:0',
    '--secure-grpc-addr',
    '127.0.0.1:0',
    '--monitoring-addr',
    '127.0.0.1:0',
    '--webhook-addr',
    '127.0.0.1:0',
    // debug: "meshd serving" (info) has the ports; the only debug records are one per config
    // reload and one per push, which time the server's stages. Info adds one line per proxy connect.
    '--log-level',
    'debug',
    // The bench stops meshd when done: no gradual drain of its clients.
    '--drain-duration',
    '0s',
    ...extraArgs,
    ...(process.env.BENCH_MESHD_ARGS ?? '').split(' ').filter(Boolean),
  ];
  const proc = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BENCH_LOOP_PROBE_FILE: probeFile, BENCH_LOOP_PROBE_MIN_MS: '20' } }));
  const warnings: string[] = [];
  const stages: Meshd['stages'] = [];
  let partial = '';
  let serving: ((r: Record<string, unknown>) => void) | undefined;
  let loaded: Record<string, unknown> | undefined;
  const onData = (chunk: Buffer): void => {
    partial += chunk.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        if (line.trim()) warnings.push(line.slice(0, 300));
        continue;
      }
      if (rec.msg === 'meshd serving') serving?.(rec);
      else if (rec.msg === 'configuration loaded') loaded = rec;
      else if (rec.msg === 'config directory loaded' || rec.msg === 'pushing') stages.push({ msg: rec.msg, at: Date.parse(String(rec.time)), rec });
      else if (rec.level === 'warn' || rec.level === 'error' || rec.level === 'fatal') {
        if (warnings.length < 50) warnings.push(`${String(rec.level)}: ${String(rec.msg)} ${JSON.stringify({ ...rec, msg: undefined, level: undefined, time: undefined, pid: undefined })}`.slice(0, 400));
      }
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const rec = await new Promise<Record<string, unknown>>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`meshd did not start within 60s: ${warnings.join('\n')}`)), 60_000);
    serving = (r) => {
      clearTimeout(timer);
      res(r);
    };
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`meshd exited with ${code} before serving: ${warnings.join('\n')}`));
    });
  });
  const port = (v: unknown): number => Number(String(v).split(':').pop());
  const m: Meshd = { proc, pid: proc.pid!, grpcPort: port(rec.grpc), monitoringPort: port(rec.monitoring), warnings: () => warnings, stages, probeFile };
  // "meshd serving" may come before the configuration is loaded: wait for /ready, then check what it loaded.
  const until = Date.now() + 60_000;
  for (;;) {
    const r = await httpText(m.monitoringPort, '/ready').catch(() => ({ status: 0, body: '' }));
    if (r.status === 200) break;
    if (Date.now() > until || proc.exitCode !== null) throw new Error(`meshd not ready within 60 s: ${warnings.join('\n')}`);
    await sleep(50);
  }
  const services = metricValue(await scrape(m), 'pilot_services');
  if (services !== CFG.services) throw new Error(`meshd serves ${services} services, expected ${CFG.services}${loaded ? ` (${JSON.stringify(loaded)})` : ''}`);
  return m;
}

/** GET /metrics. The timeout is long: an answer delayed by a blocked event loop still counts (and resets the lag maximum). */
function scrape(m: Meshd, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: m.monitoringPort, path: '/metrics', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? body : ''));
      res.on('error', () => resolve(''));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
    req.end();
  });
}

/** Waits until the process has used < 5% of a core over 200 ms (or `maxMs` passed). */
async function waitIdle(pid: number, maxMs = 5000): Promise<void> {
  const end = Date.now() + maxMs;
  let prev = procCpuSeconds(pid);
  while (Date.now() < end) {
    await sleep(200);
    const cur = procCpuSeconds(pid);
    if (!(cur - prev > 0.01)) return;
    prev = cur;
  }
}

// ---- per-phase resource accounting ---------------------------------------------------------

export interface PhaseStats {
  phase: string;
  seconds: number;
  serverCpuSec: number;
  clientCpuSec: number;
  /** CPU used by processes other than meshd, the clients and this orchestrator (cores, average). */
  otherCpuCores: number;
  /** Highest meshd VmRSS seen (sampled every 100 ms). */
  serverPeakRssBytes: number;
  /** From meshd's /metrics, polled every 250 ms: highest V8 heap used and Buffer (external) memory. */
  serverPeakHeapBytes: number;
  serverPeakExternalBytes: number;
  /** From bench/loop-probe.ts: the longest event-loop stall, and the sum of stalls >= 20 ms. */
  serverMaxStallMs: number;
  serverStalledMs: number;
}

/** Splits a scenario into phases and records, per phase, CPU of each party and meshd's peak RSS. */
class PhaseSampler {
  readonly phases: PhaseStats[] = [];
  private cur: { name: string; t0: number; srv: number; cli: number; own: number; sys: number; peak: number; heap: number; ext: number } | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly metricsTimer: NodeJS.Timeout;
  private scraping = false;
  clientPid: number | undefined;

  constructor(private readonly meshd: Meshd) {
    this.timer = setInterval(() => {
      const rss = procStatusBytes(this.meshd.pid, 'VmRSS');
      if (this.cur && rss > this.cur.peak) this.cur.peak = rss;
    }, 100);
    this.timer.unref();
    this.metricsTimer = setInterval(() => {
      if (this.scraping) return;
      this.scraping = true;
      void scrape(this.meshd)
        .then((text) => this.observe(text))
        .finally(() => (this.scraping = false));
    }, 250);
    this.metricsTimer.unref();
  }

  private observe(text: string): void {
    const c = this.cur;
    if (!c || !text) return;
    c.heap = Math.max(c.heap, metricValue(text, 'nodejs_heap_size_used_bytes'));
    c.ext = Math.max(c.ext, metricValue(text, 'nodejs_external_memory_bytes'));
  }

  private snap(): { t0: number; srv: number; cli: number; own: number; sys: number } {
    const u = process.cpuUsage();
    return {
      t0: Date.now(),
      srv: procCpuSeconds(this.meshd.pid),
      cli: this.clientPid ? procCpuSeconds(this.clientPid) : 0,
      own: (u.user + u.system) / 1e6,
      sys: systemCpuTicks().busy / clockTicks(),
    };
  }

  phase(name: string | undefined): void {
    const now = this.snap();
    if (this.cur) {
      const c = this.cur;
      const seconds = (now.t0 - c.t0) / 1000;
      const srv = now.srv - c.srv;
      const cli = now.cli - c.cli;
      const other = now.sys - c.sys - srv - cli - (now.own - c.own);
      this.phases.push({
        phase: c.name,
        seconds,
        serverCpuSec: srv,
        clientCpuSec: cli,
        otherCpuCores: seconds > 0 ? Math.max(0, other / seconds) : 0,
        serverPeakRssBytes: Math.max(c.peak, procStatusBytes(this.meshd.pid, 'VmRSS')),
        serverPeakHeapBytes: c.heap,
        serverPeakExternalBytes: c.ext,
        ...((st) => ({ serverMaxStallMs: st.maxMs, serverStalledMs: st.totalMs }))(loopStalls(this.meshd, c.t0, now.t0)),
      });
    }
    this.cur = name === undefined ? undefined : { name, ...now, peak: 0, heap: 0, ext: 0 };
  }

  stop(): void {
    this.phase(undefined);
    clearInterval(this.timer);
    clearInterval(this.metricsTimer);
  }
}

// ---- the client process -------------------------------------------------------------------

class ClientProcess {
  readonly proc: ChildProcess;
  private waiters: { pred: (e: ClientEvent) => boolean; resolve: (e: ClientEvent) => void }[] = [];
  fatal: string | undefined;

  constructor(profileDir?: string) {
    this.proc = track(
      fork(CLIENTS_JS, [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        execArgv: ['--max-old-space-size=4096', ...(process.env.BENCH_CLIENT_NODE_FLAGS ?? '').split(' ').filter(Boolean), ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])],
      }),
    );
    this.proc.on('message', (e: ClientEvent) => {
      if (e.ev === 'fatal') {
        this.fatal = e.message;
        log(`client process: ${e.message}`);
      }
      const hit = this.waiters.filter((w) => w.pred(e));
      this.waiters = this.waiters.filter((w) => !hit.includes(w));
      for (const w of hit) w.resolve(e);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  send(c: Command): void {
    this.proc.send(c);
  }

  /** The next event matching `pred`; undefined after `timeoutMs`. */
  wait<T extends ClientEvent>(pred: (e: ClientEvent) => e is T, timeoutMs: number): Promise<T | undefined> {
    return new Promise((res) => {
      const w = {
        pred,
        resolve: (e: ClientEvent) => {
          clearTimeout(timer);
          res(e as T);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        res(undefined);
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  async request<T extends ClientEvent>(c: Command, pred: (e: ClientEvent) => e is T, timeoutMs = 15_000): Promise<T> {
    const p = this.wait(pred, timeoutMs);
    this.send(c);
    const r = await p;
    if (!r) throw new Error(`client process did not answer ${c.cmd} within ${timeoutMs} ms${this.fatal ? `: ${this.fatal}` : ''}`);
    return r;
  }

  /** Asks the process to close its streams and exit (writing its CPU profile, if any); kills it after 5 s. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<boolean>((res) => {
      const timer = setTimeout(() => res(false), 5000);
      this.proc.once('exit', () => {
        clearTimeout(timer);
        res(true);
      });
    });
    if (this.proc.connected) this.send({ cmd: 'stop' });
    if (!(await exited)) await stopChild(this.proc, 'SIGKILL', 1000);
  }
}

const is =
  <K extends ClientEvent['ev']>(ev: K, id?: number) =>
  (e: ClientEvent): e is Extract<ClientEvent, { ev: K }> =>
    e.ev === ev && (id === undefined || (e as { id?: number }).id === id);

// ---- one scenario -------------------------------------------------------------------------

interface ChangeSample {
  id: number;
  what: string;
  /** Per client: ms from the file write to the client having the change (null: never). */
  latencies: (number | null)[];
  firstMs: number;
  lastMs: number;
  bytesPerClient: number[];
  messagesPerClient: number[];
  byType: Record<string, number>;
  parts?: { cds: (number | null)[]; eds: (number | null)[]; rds: (number | null)[] };
  serverCpuSec: number;
  /** From meshd's debug log, ms after the write: the reload that saw the change ended; the push began. */
  reloadedMs: number;
  /** meshd's own figures: the reload's work (ms), the debounce it waited, and building the snapshot and push request. */
  meshdStages?: { reloadMs: number; waitedMs: number; buildMs: number };
  pushStartMs: number;
  /** meshd's event-loop stalls between the write and the collection of results. */
  maxStallMs: number;
}

interface ChangeSummary {
  changes: number;
  samples: number;
  missed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Per change: the first client's latency (file write -> first client), median over changes. */
  firstClientP50Ms: number;
  /** Per change: last - first client, median over changes: the fan-out. */
  spreadP50Ms: number;
  bytesPerClientP50: number;
  bytesPerClientMax: number;
  responsesPerClientP50: number;
  responsesByType: Record<string, number>;
  serverCpuPerChangeSec: number;
  /** Medians over changes, from the file write: meshd finished re-reading the config; meshd began the push. */
  reloadedP50Ms: number;
  pushStartP50Ms: number;
  /** Medians over changes: from the push start to the first client, and to the p99 client. */
  pushToFirstP50Ms: number;
  pushToP99P50Ms: number;
  /** Median over changes of meshd's longest event-loop stall. */
  maxStallP50Ms: number;
  perType?: Record<string, { p50Ms: number; p99Ms: number }>;
  perChange: { what: string; firstMs: number; p50Ms: number; p99Ms: number; maxMs: number; bytesPerClient: number }[];
}

function summarize(samples: ChangeSample[]): ChangeSummary {
  const all = samples.flatMap((s) => s.latencies);
  const bytes = samples.flatMap((s) => s.bytesPerClient);
  const byType: Record<string, number> = {};
  for (const s of samples) for (const [k, v] of Object.entries(s.byType)) byType[k] = (byType[k] ?? 0) + v / Math.max(1, s.latencies.length) / samples.length;
  const out: ChangeSummary = {
    changes: samples.length,
    samples: all.length,
    missed: all.filter((x) => x === null).length,
    p50Ms: percentile(all, 50),
    p99Ms: percentile(all, 99),
    maxMs: percentile(all, 100),
    firstClientP50Ms: percentile(samples.map((s) => s.firstMs), 50),
    spreadP50Ms: percentile(samples.map((s) => s.lastMs - s.firstMs), 50),
    bytesPerClientP50: percentile(bytes, 50),
    bytesPerClientMax: percentile(bytes, 100),
    responsesPerClientP50: percentile(samples.flatMap((s) => s.messagesPerClient), 50),
    responsesByType: byType,
    serverCpuPerChangeSec: mean(samples.map((s) => s.serverCpuSec)),
    reloadedP50Ms: percentile(samples.map((s) => s.reloadedMs), 50),
    pushStartP50Ms: percentile(samples.map((s) => s.pushStartMs), 50),
    pushToFirstP50Ms: percentile(samples.map((s) => s.firstMs - s.pushStartMs), 50),
    pushToP99P50Ms: percentile(samples.map((s) => percentile(s.latencies, 99) - s.pushStartMs), 50),
    maxStallP50Ms: percentile(samples.map((s) => s.maxStallMs), 50),
    perChange: samples.map((s) => ({ what: s.what, firstMs: s.firstMs, p50Ms: percentile(s.latencies, 50), p99Ms: percentile(s.latencies, 99), maxMs: percentile(s.latencies, 100), bytesPerClient: percentile(s.bytesPerClient, 50) })),
  };
  if (samples[0]?.parts) {
    out.perType = {};
    for (const t of ['cds', 'eds', 'rds'] as const) {
      const xs = samples.flatMap((s) => s.parts![t]);
      out.perType[t] = { p50Ms: percentile(xs, 50), p99Ms: percentile(xs, 99) };
    }
  }
  return out;
}

interface ScenarioResult {
  mode: XdsProtocol;
  error?: string;
  initial?: {
    allSyncedMs: number;
    p50Ms: number;
    p99Ms: number;
    synced: number;
    edsClustersPerClient: number;
    routesPerClient: number;
    bytesPerClient: number;
    responsesPerClient: number;
    serverCpuSec: number;
    clientCpuSec: number;
  };
  endpointChange?: ChangeSummary;
  newService?: ChangeSummary;
  server?: { peakRssBytes: number; cpuSec: number; startupCpuSec: number; warnings: string[] };
  clientProcess?: StatsReport;
  metrics?: Record<string, number>;
  phases?: PhaseStats[];
  /** On a failed initial sync: what meshd's /debug/syncz says, per type and status. */
  syncz?: Record<string, number>;
}

function serverMetrics(before: string, after: string): Record<string, number> {
  const d = (name: string, labels = ''): number => metricValue(after, name, labels) - metricValue(before, name, labels);
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : NaN);
  return {
    edsPushes: d('pilot_push_triggers', 'type="endpoint"'),
    configPushes: d('pilot_push_triggers', 'type="config"'),
    edsFanoutMeanMs: ratio(d('pilot_xds_push_time_sum', 'type="eds"'), d('pilot_xds_push_time_count', 'type="eds"')) * 1000,
    fullFanoutMeanMs: ratio(d('pilot_xds_push_time_sum', 'type="full"'), d('pilot_xds_push_time_count', 'type="full"')) * 1000,
    debounceMeanMs: ratio(d('pilot_debounce_time_sum'), d('pilot_debounce_time_count')) * 1000,
    convergenceToAckMeanMs: ratio(d('pilot_proxy_convergence_time_sum'), d('pilot_proxy_convergence_time_count')) * 1000,
    edsResponses: d('pilot_xds_pushes', 'type="eds"'),
    edsResponseMeanBytes: ratio(d('pilot_xds_config_size_bytes_sum', 'type="eds"'), d('pilot_xds_config_size_bytes_count', 'type="eds"')),
    cdsResponses: d('pilot_xds_pushes', 'type="cds"'),
    ldsResponses: d('pilot_xds_pushes', 'type="lds"'),
    rdsResponses: d('pilot_xds_pushes', 'type="rds"'),
    expiredNonces: d('pilot_xds_expired_nonce'),
    rejects: d('pilot_total_xds_rejects'),
  };
}

async function measureChange(
  m: Meshd,
  cp: ClientProcess,
  watch: WatchSpec,
  what: string,
  write: () => void,
  timeoutMs: number,
): Promise<ChangeSample> {
  await cp.request({ cmd: 'arm', watch }, is('armed', watch.id));
  const cpu0 = procCpuSeconds(m.pid);
  const done = cp.wait(is('watchDone', watch.id), timeoutMs);
  const stage0 = m.stages.length;
  const t0 = wallNow();
  const d0 = Date.now();
  write();
  const ok = await done;
  // Anything else the change causes (a second response, ACK handling) settles first.
  await sleep(150);
  await waitIdle(m.pid, 3000);
  const rep: WatchReport = await cp.request({ cmd: 'collect', id: watch.id }, is('collected', watch.id));
  const lat = rep.doneAt.map((t) => (t === null ? null : t - t0));
  const got = lat.filter((x): x is number => x !== null);
  if (!ok) log(`    ${what}: only ${got.length}/${lat.length} clients within ${timeoutMs} ms`);
  const rel = (xs: (number | null)[]): (number | null)[] => xs.map((t) => (t === null ? null : t - t0));
  const later = m.stages.slice(stage0);
  const loaded = later.find((x) => x.msg === 'config directory loaded' && Number(x.rec.changes) > 0);
  const pushing = later.find((x) => x.msg === 'pushing' && (!loaded || x.at >= loaded.at));
  return {
    id: watch.id,
    what,
    latencies: lat,
    firstMs: got.length ? Math.min(...got) : Infinity,
    lastMs: got.length === lat.length && got.length ? Math.max(...got) : Infinity,
    bytesPerClient: rep.bytes,
    messagesPerClient: rep.messages,
    byType: rep.byType,
    ...(watch.kind === 'service' ? { parts: { cds: rel(rep.cdsAt), eds: rel(rep.edsAt), rds: rel(rep.rdsAt) } } : {}),
    serverCpuSec: procCpuSeconds(m.pid) - cpu0,
    maxStallMs: loopStalls(m, d0, Date.now()).maxMs,
    reloadedMs: loaded ? loaded.at - d0 : NaN,
    ...(loaded && pushing ? { meshdStages: { reloadMs: Number(loaded.rec.ms), waitedMs: Number(pushing.rec.waitedMs), buildMs: Number(pushing.rec.buildMs) } } : {}),
    pushStartMs: pushing ? pushing.at - d0 : NaN,
  };
}

/** Counts of (type, status) over every connection in /debug/syncz, e.g. "eds SYNCED". */
async function syncz(m: Meshd): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const body = JSON.parse((await httpText(m.monitoringPort, '/debug/syncz')).body) as { types: Record<string, { status: string }> }[];
    out.connections = body.length;
    for (const c of body) for (const [t, v] of Object.entries(c.types)) out[`${t} ${v.status}`] = (out[`${t} ${v.status}`] ?? 0) + 1;
  } catch (err) {
    out[`error: ${String(err)}`] = 1;
  }
  return out;
}

async function scenario(mode: XdsProtocol, deadline: number): Promise<ScenarioResult> {
  const result: ScenarioResult = { mode };
  const dir = mkdtempSync(join(tmpdir(), `meshd-bench-${mode}-`));
  let meshd: Meshd | undefined;
  let cp: ClientProcess | undefined;
  let sampler: PhaseSampler | undefined;
  let startupCpu = NaN;
  const profileDir = CFG.profile ? join(RESULTS, 'profiles', mode) : undefined;
  try {
    log(`[${mode}] writing ${CFG.services} services x ${CFG.endpoints} endpoints to ${dir}`);
    writeMesh(dir, CFG.services, CFG.endpoints);
    const t0 = Date.now();
    meshd = await startMeshd(dir, profileDir);
    startupCpu = procCpuSeconds(meshd.pid);
    log(`[${mode}] meshd pid ${meshd.pid} serving on 127.0.0.1:${meshd.grpcPort} after ${Date.now() - t0} ms (${startupCpu.toFixed(1)} s CPU)`);
    sampler = new PhaseSampler(meshd);
    sampler.phase('idle after start');
    await sleep(1000);
    const m0 = await scrape(meshd);

    // ---- initial sync ----
    cp = new ClientProcess(profileDir ? join(profileDir, 'clients') : undefined);
    sampler.clientPid = cp.pid;
    sampler.phase('initial sync');
    const cpu0 = procCpuSeconds(meshd.pid);
    const started = await cp.request(
      { cmd: 'start', address: `127.0.0.1:${meshd.grpcPort}`, clients: CFG.clients, protocol: mode, perChannel: CFG.perChannel, flowWindow: CFG.flowWindow },
      is('started'),
      30_000,
    );
    log(`[${mode}] ${CFG.clients} clients connecting over ${Math.ceil(CFG.clients / CFG.perChannel)} channels`);
    const done = await cp.wait(is('initialDone'), Math.min(CFG.initialTimeoutMs, deadline - Date.now()));
    const initial: InitialReport = await cp.request({ cmd: 'initial' }, is('initial'));
    const fullRel = initial.fullAt.map((t) => (t === null ? null : t - started.at));
    const synced = fullRel.filter((x) => x !== null).length;
    const cpuInitial = procCpuSeconds(meshd.pid) - cpu0;
    const clientCpu = procCpuSeconds(cp.pid);
    result.initial = {
      allSyncedMs: done ? done.at - started.at : Infinity,
      p50Ms: percentile(fullRel, 50),
      p99Ms: percentile(fullRel, 99),
      synced,
      edsClustersPerClient: initial.edsClusters,
      routesPerClient: initial.routes,
      bytesPerClient: mean(initial.bytes),
      responsesPerClient: mean(initial.messages),
      serverCpuSec: cpuInitial,
      clientCpuSec: clientCpu,
    };
    log(`[${mode}] initial sync: ${synced}/${CFG.clients} clients, all by ${fmtMs(result.initial.allSyncedMs)}; server ${cpuInitial.toFixed(1)} s CPU, clients ${clientCpu.toFixed(1)} s CPU`);
    if (!done) {
      result.syncz = await syncz(meshd);
      log(`[${mode}] meshd /debug/syncz: ${JSON.stringify(result.syncz)}`);
      throw new Error(`only ${synced}/${CFG.clients} clients had their full config after ${CFG.initialTimeoutMs} ms`);
    }
    sampler.phase('settle after initial sync');
    await waitIdle(meshd.pid, 10_000);

    // ---- endpoint changes ----
    const m1 = await scrape(meshd);
    sampler.phase('endpoint changes');
    const eds: ChangeSample[] = [];
    for (let k = 0; k < CFG.edsChanges && Date.now() < deadline - 25_000; k++) {
      const svc = (k * 37 + 5) % CFG.services;
      const spec = serviceSpec(svc, CFG.endpoints);
      const ip = changedEndpointIP(k);
      spec.endpoints[0] = ip;
      const s = await measureChange(meshd, cp, { id: k, kind: 'eds', cluster: clusterName(spec.name), needle: ip }, `endpoint ${spec.name}`, () => writeAtomic(dir, serviceFile(spec.name), renderService(spec)), CFG.edsTimeoutMs);
      eds.push(s);
      log(`[${mode}]   endpoint change ${k + 1}/${CFG.edsChanges} (${spec.name}): first ${fmtMs(s.firstMs)}, p50 ${fmtMs(percentile(s.latencies, 50))}, p99 ${fmtMs(percentile(s.latencies, 99))}, ${fmtBytes(percentile(s.bytesPerClient, 50))}/client`);
    }
    result.endpointChange = summarize(eds);
    const m2 = await scrape(meshd);

    // ---- new services ----
    sampler.phase('new services');
    const svcs: ChangeSample[] = [];
    for (let k = 0; k < CFG.newServices && Date.now() < deadline - 20_000; k++) {
      const spec = newServiceSpec(k, CFG.endpoints);
      const s = await measureChange(
        meshd,
        cp,
        { id: 1000 + k, kind: 'service', cluster: clusterName(spec.name), host: hostname(spec.name), route: String(HTTP_PORT) },
        `new service ${spec.name}`,
        () => writeAtomic(dir, serviceFile(spec.name), renderService(spec)),
        CFG.serviceTimeoutMs,
      );
      svcs.push(s);
      log(`[${mode}]   new service ${k + 1}/${CFG.newServices}: first ${fmtMs(s.firstMs)}, p50 ${fmtMs(percentile(s.latencies, 50))}, p99 ${fmtMs(percentile(s.latencies, 99))}, ${fmtBytes(percentile(s.bytesPerClient, 50))}/client, server ${s.serverCpuSec.toFixed(1)} s CPU`);
    }
    if (svcs.length) result.newService = summarize(svcs);
    const m3 = await scrape(meshd);
    sampler.phase(undefined);
    result.metrics = {
      ...Object.fromEntries(Object.entries(serverMetrics(m0, m1)).map(([k, v]) => [`initial.${k}`, v])),
      ...Object.fromEntries(Object.entries(serverMetrics(m1, m2)).map(([k, v]) => [`endpointChanges.${k}`, v])),
      ...Object.fromEntries(Object.entries(serverMetrics(m2, m3)).map(([k, v]) => [`newServices.${k}`, v])),
    };
  } catch (err) {
    result.error = String(err instanceof Error ? err.message : err);
    log(`[${mode}] FAILED: ${result.error}`);
  } finally {
    sampler?.stop();
    if (sampler) result.phases = sampler.phases;
    if (cp) {
      try {
        result.clientProcess = await cp.request({ cmd: 'stats' }, is('stats'), 5000);
        if (result.clientProcess.errors) log(`[${mode}] client stream errors: ${result.clientProcess.errors} (${result.clientProcess.errorSamples.join('; ')})`);
      } catch (err) {
        log(`[${mode}] no stats from the client process: ${String(err)}`);
      }
    }
    if (meshd) result.server = { peakRssBytes: procStatusBytes(meshd.pid, 'VmHWM'), cpuSec: procCpuSeconds(meshd.pid), startupCpuSec: startupCpu, warnings: meshd.warnings().slice(0, 20) };
    if (cp) await cp.stop();
    if (meshd) await stopChild(meshd.proc, 'SIGTERM', profileDir ? 20_000 : 8000);
    if (meshd) rmSync(meshd.probeFile, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

// ---- the traffic-management case ----------------------------------------------------------

/** How the traffic-management case's clients connect: see the header comment. */
type IstioVariant = 'vhds' | 'sotw' | 'rds';

interface IstioResult {
  variant: IstioVariant;
  error?: string;
  virtualServices: number;
  destinationRules: number;
  /** Services each client's Sidecar imports (the scoped case). */
  sidecarImports?: number;
  initial?: { allSyncedMs: number; p50Ms: number; p99Ms: number; synced: number; routesPerClient: number; bytesPerClient: number; serverCpuSec: number };
  vsEdit?: ChangeSummary;
  server?: { peakRssBytes: number; cpuSec: number; warnings: string[] };
  clientProcess?: StatsReport;
  metrics?: Record<string, number>;
  phases?: PhaseStats[];
}

/**
 * 1000 services, 500 DestinationRules and 500 VirtualServices, 1000 delta clients; then
 * VirtualService edits (one file each, weight 90/10 -> 80/20), each timed from the write until
 * every client has a new RDS response for route "80" (delta sends a route only when it changed).
 */
/** The service whose VirtualService edit k changes. */
function editedService(k: number): number {
  return (k * 101 + 7) % CFG.istioObjects;
}

/** A Sidecar for every proxy of `default`: the edited services, then the first others, up to `imports`. */
function scopingSidecar(imports: number): string {
  const chosen = new Set<number>();
  for (let k = 0; k < CFG.istioEdits && chosen.size < imports; k++) chosen.add(editedService(k));
  for (let i = 0; chosen.size < Math.min(imports, CFG.services); i++) chosen.add(i);
  const hosts = [...chosen].sort((a, b) => a - b).map((i) => `"./${hostname(serviceName(i))}"`);
  return ['apiVersion: networking.istio.io/v1', 'kind: Sidecar', 'metadata: {name: default, namespace: default}', 'spec:', '  egress:', `  - hosts: ["istio-system/*", ${hosts.join(', ')}]`, ''].join('\n');
}

async function istioScenario(deadline: number, variant: IstioVariant, scoped = false): Promise<IstioResult> {
  const result: IstioResult = { variant, virtualServices: CFG.istioObjects, destinationRules: CFG.istioObjects, ...(scoped ? { sidecarImports: CFG.sidecarImports } : {}) };
  const protocol: XdsProtocol = variant === 'sotw' ? 'sotw' : 'delta';
  const dir = mkdtempSync(join(tmpdir(), `meshd-bench-istio-${variant}-`));
  const tag = scoped ? `[scoped ${variant}]` : `[istio ${variant}]`;
  let meshd: Meshd | undefined;
  let cp: ClientProcess | undefined;
  let sampler: PhaseSampler | undefined;
  const profileDir = CFG.profile ? join(RESULTS, 'profiles', scoped ? 'scoped' : 'istio') : undefined;
  try {
    log(`${tag} writing ${CFG.services} services, ${CFG.istioObjects} VirtualServices and ${CFG.istioObjects} DestinationRules to ${dir}`);
    writeMesh(dir, CFG.services, CFG.endpoints);
    writeIstio(dir, CFG.istioObjects);
    if (scoped) writeFileSync(join(dir, 'sidecar.yaml'), scopingSidecar(CFG.sidecarImports));
    meshd = await startMeshd(dir, profileDir, variant === 'rds' ? ['--vhds', 'off'] : []);
    log(`${tag} meshd pid ${meshd.pid} serving on 127.0.0.1:${meshd.grpcPort}`);
    sampler = new PhaseSampler(meshd);
    sampler.phase('idle after start');
    await sleep(1000);
    const m0 = await scrape(meshd);
    cp = new ClientProcess(profileDir ? join(profileDir, 'clients') : undefined);
    sampler.clientPid = cp.pid;
    sampler.phase('initial sync');
    const cpu0 = procCpuSeconds(meshd.pid);
    const started = await cp.request({ cmd: 'start', address: `127.0.0.1:${meshd.grpcPort}`, clients: CFG.clients, protocol, perChannel: CFG.perChannel, flowWindow: CFG.flowWindow }, is('started'), 30_000);
    const done = await cp.wait(is('initialDone'), Math.min(CFG.initialTimeoutMs, deadline - Date.now()));
    const initial: InitialReport = await cp.request({ cmd: 'initial' }, is('initial'));
    const fullRel = initial.fullAt.map((t) => (t === null ? null : t - started.at));
    result.initial = {
      allSyncedMs: done ? done.at - started.at : Infinity,
      p50Ms: percentile(fullRel, 50),
      p99Ms: percentile(fullRel, 99),
      synced: fullRel.filter((x) => x !== null).length,
      routesPerClient: initial.routes,
      bytesPerClient: mean(initial.bytes),
      serverCpuSec: procCpuSeconds(meshd.pid) - cpu0,
    };
    log(`${tag} initial sync: ${result.initial.synced}/${CFG.clients} clients, all by ${fmtMs(result.initial.allSyncedMs)}`);
    if (!done) throw new Error(`only ${result.initial.synced}/${CFG.clients} clients had their full config after ${CFG.initialTimeoutMs} ms`);
    sampler.phase('settle after initial sync');
    await waitIdle(meshd.pid, 10_000);
    const m1 = await scrape(meshd);
    sampler.phase('VirtualService edits');
    const edits: ChangeSample[] = [];
    for (let k = 0; k < CFG.istioEdits && Date.now() < deadline - 20_000; k++) {
      const i = editedService(k);
      const s = await measureChange(meshd, cp, { id: 2000 + k, kind: 'route', route: String(HTTP_PORT) }, `VirtualService ${i}`, () => writeAtomic(dir, istioFile(i), renderIstio(i, 80)), CFG.serviceTimeoutMs);
      edits.push(s);
      const st = s.meshdStages ? ` (meshd: reload ${s.meshdStages.reloadMs} ms, debounce ${s.meshdStages.waitedMs} ms, build ${s.meshdStages.buildMs} ms, push starts at ${fmtMs(s.pushStartMs)})` : '';
      log(`${tag}   VirtualService edit ${k + 1}/${CFG.istioEdits}: first ${fmtMs(s.firstMs)}, p50 ${fmtMs(percentile(s.latencies, 50))}, p99 ${fmtMs(percentile(s.latencies, 99))}, ${fmtBytes(percentile(s.bytesPerClient, 50))}/client, server ${s.serverCpuSec.toFixed(1)} s CPU${st}`);
    }
    if (edits.length) result.vsEdit = summarize(edits);
    const m2 = await scrape(meshd);
    sampler.phase(undefined);
    result.metrics = {
      ...Object.fromEntries(Object.entries(serverMetrics(m0, m1)).map(([k, v]) => [`initial.${k}`, v])),
      ...Object.fromEntries(Object.entries(serverMetrics(m1, m2)).map(([k, v]) => [`vsEdits.${k}`, v])),
    };
  } catch (err) {
    result.error = String(err instanceof Error ? err.message : err);
    log(`${tag} FAILED: ${result.error}`);
  } finally {
    sampler?.stop();
    if (sampler) result.phases = sampler.phases;
    if (cp) {
      try {
        result.clientProcess = await cp.request({ cmd: 'stats' }, is('stats'), 5000);
      } catch (err) {
        log(`${tag} no stats from the client process: ${String(err)}`);
      }
    }
    if (meshd) result.server = { peakRssBytes: procStatusBytes(meshd.pid, 'VmHWM'), cpuSec: procCpuSeconds(meshd.pid), warnings: meshd.warnings().slice(0, 20) };
    if (cp) await cp.stop();
    if (meshd) await stopChild(meshd.proc, 'SIGTERM', profileDir ? 20_000 : 8000);
    if (meshd) rmSync(meshd.probeFile, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

function istioReport(r: IstioResult, micro: MicroResult[]): string {
  const scoped = r.sidecarImports !== undefined;
  const get = (f: () => string): string => {
    try {
      return f();
    } catch {
      return 'n/a';
    }
  };
  const m = (key: string): string => {
    const x = micro.find((e) => e.key === key);
    return x ? fmtMs(x.value) : 'not run';
  };
  const p99 = r.vsEdit?.p99Ms;
  const rss = r.server?.peakRssBytes;
  const vhds = r.variant === 'vhds';
  const p99Target = vhds ? TARGETS.vhdsVsEditP99Ms : TARGETS.istioVsEditP99Ms;
  const bytes = r.vsEdit?.bytesPerClientP50;
  const what = vhds ? 'new virtual host (VHDS)' : 'new RDS';
  const rows: string[][] = [
    ['translate the whole mesh for one proxy (translateContext, in process)', m('istioTranslateProxyMs'), '', ''],
    ['"for all": one proxy class, cold (context + resourcesFor)', m('istioResourcesForColdMs'), '', ''],
    [`"for all": resources for ${CFG.clients} connections (shared view)`, m('istioResourcesForAllMs'), '', ''],
    ...(scoped
      ? [['initial sync: all clients have full config', get(() => fmtMs(r.initial!.allSyncedMs)), '< 3 s', verdict(r.initial ? r.initial.allSyncedMs < TARGETS.scopedInitialSyncMs : undefined)], ['   routes, bytes per client', get(() => `${r.initial!.routesPerClient}, ${fmtBytes(r.initial!.bytesPerClient)}`), '', '']]
      : [['initial sync: all clients have full config', get(() => fmtMs(r.initial!.allSyncedMs)), '', '']]),
    [`VirtualService edit -> ${what} on client: p50`, get(() => fmtMs(r.vsEdit!.p50Ms)), '', ''],
    [`VirtualService edit -> ${what} on client: p99`, get(() => fmtMs(r.vsEdit!.p99Ms)), `< ${fmtMs(p99Target)}`, verdict(p99 === undefined ? undefined : p99 < p99Target)],
    ['   max; samples (edits x clients), missed', get(() => `${fmtMs(r.vsEdit!.maxMs)}; ${r.vsEdit!.changes}x${CFG.clients}, ${r.vsEdit!.missed}`), '', ''],
    ['   stage: write -> re-read / push starts', get(() => `${fmtMs(r.vsEdit!.reloadedP50Ms)} / ${fmtMs(r.vsEdit!.pushStartP50Ms)}`), '', ''],
    ['   stage: push start -> first / p99 client', get(() => `${fmtMs(r.vsEdit!.pushToFirstP50Ms)} / ${fmtMs(r.vsEdit!.pushToP99P50Ms)}`), '', ''],
    ['   bytes per client per edit (median)', bytes === undefined ? 'n/a' : fmtBytes(bytes), vhds ? '< 5 KiB' : '', vhds ? verdict(bytes === undefined ? undefined : bytes < TARGETS.vhdsVsEditBytesPerClient) : ''],
    ['   server CPU per edit', get(() => `${r.vsEdit!.serverCpuPerChangeSec.toFixed(2)} s`), '', ''],
    ['   meshd longest event-loop stall per edit (median)', get(() => fmtMs(r.vsEdit!.maxStallP50Ms)), '', ''],
    scoped
      ? ['server peak RSS (VmHWM)', rss === undefined ? 'n/a' : fmtBytes(rss), '< 300 MiB', verdict(rss === undefined ? undefined : rss < TARGETS.scopedRssBytes)]
      : ['server peak RSS (VmHWM)', rss === undefined ? 'n/a' : fmtBytes(rss), '< 800 MiB', verdict(rss === undefined ? undefined : rss < TARGETS.istioRssBytes)],
  ];
  const parts = [
    `traffic management (${r.variant})${scoped ? `, scoped by a Sidecar importing ${r.sidecarImports} services` : ''}: ${CFG.services} services x ${CFG.endpoints} endpoints, ${r.virtualServices} VirtualServices, ${r.destinationRules} DestinationRules, ${CFG.clients} ${r.variant === 'sotw' ? 'SotW' : 'delta'} ADS clients${r.variant === 'vhds' ? ' taking virtual hosts over VHDS' : r.variant === 'rds' ? ' with meshd --vhds off (whole route configurations)' : ''}. "For all": sidecars in one namespace with the same labels share one translation, so one class is translated and ${CFG.clients} connections read it.`,
    table(['figure', 'value', 'target', 'status'], rows),
  ];
  const label = `${scoped ? 'scoped' : 'istio'} ${r.variant}`;
  if (r.error) parts.push(`${label}: ERROR: ${r.error}`);
  const phases = (r.phases ?? []).map((p) => [`${label}: ${p.phase}`, `${p.seconds.toFixed(1)} s`, `${p.serverCpuSec.toFixed(1)} s`, `${p.clientCpuSec.toFixed(1)} s`, fmtBytes(p.serverPeakRssBytes), fmtBytes(p.serverPeakHeapBytes), fmtMs(p.serverMaxStallMs)]);
  if (phases.length) parts.push(table(['phase', 'wall', 'meshd CPU', 'clients CPU', 'RSS', 'heap used', 'longest stall'], phases));
  return parts.join('\n');
}

// ---- report -------------------------------------------------------------------------------

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? 'n/a' : ok ? 'PASS' : 'MISS';
}

function report(results: ScenarioResult[], micro: MicroResult[], kube: KubeInformerResult | undefined, istio: IstioResult[], scoped?: IstioResult): string {
  const by = (mode: XdsProtocol): ScenarioResult | undefined => results.find((r) => r.mode === mode);
  const modes: XdsProtocol[] = ['sotw', 'delta'];
  const col = (f: (r: ScenarioResult) => string): string[] => modes.map((md) => {
    const r = by(md);
    try {
      return r ? f(r) : 'not run';
    } catch {
      return 'n/a';
    }
  });
  const rows: string[][] = [];
  const row = (label: string, f: (r: ScenarioResult) => string, target = '', status = ''): void => {
    rows.push([label, ...col(f), target, status]);
  };
  const delta = by('delta');
  const initialOk = (r?: ScenarioResult): boolean | undefined => (r?.initial ? r.initial.allSyncedMs < TARGETS.initialSyncMs : undefined);
  const rssOk = (r?: ScenarioResult): boolean | undefined => (r?.server ? r.server.peakRssBytes < TARGETS.serverRssBytes : undefined);
  const both = (f: (r?: ScenarioResult) => boolean | undefined): string =>
    modes.map((md) => `${md} ${verdict(f(by(md)))}`).join(', ');

  row('1. initial sync: all clients have full config', (r) => fmtMs(r.initial!.allSyncedMs), '< 10 s', both(initialOk));
  row('   per client: p50 / p99', (r) => `${fmtMs(r.initial!.p50Ms)} / ${fmtMs(r.initial!.p99Ms)}`);
  row('   clients synced', (r) => `${r.initial!.synced}/${CFG.clients}`);
  row('   bytes per client (initial)', (r) => fmtBytes(r.initial!.bytesPerClient));
  row('   server CPU during initial sync', (r) => `${r.initial!.serverCpuSec.toFixed(1)} s`);
  row('   client-process CPU during initial sync', (r) => `${r.initial!.clientCpuSec.toFixed(1)} s`);
  row('2. endpoint change p50', (r) => fmtMs(r.endpointChange!.p50Ms));
  row('   endpoint change p99', (r) => fmtMs(r.endpointChange!.p99Ms), '< 200 ms (delta)', delta?.endpointChange ? `delta ${verdict(delta.endpointChange.p99Ms < TARGETS.deltaEdsP99Ms)}` : 'n/a');
  row('   endpoint change max', (r) => fmtMs(r.endpointChange!.maxMs));
  row('   stage: write -> meshd re-read the config dir', (r) => fmtMs(r.endpointChange!.reloadedP50Ms));
  row('   stage: write -> push starts (+debounce, snapshot)', (r) => fmtMs(r.endpointChange!.pushStartP50Ms));
  row('   stage: push start -> first client / p99 client', (r) => `${fmtMs(r.endpointChange!.pushToFirstP50Ms)} / ${fmtMs(r.endpointChange!.pushToP99P50Ms)}`);
  row('   first -> last client (median of changes)', (r) => fmtMs(r.endpointChange!.spreadP50Ms));
  row('   server fan-out, pilot_xds_push_time (mean)', (r) => fmtMs(r.metrics!['endpointChanges.edsFanoutMeanMs']!));
  row('   meshd longest event-loop stall per change (median)', (r) => fmtMs(r.endpointChange!.maxStallP50Ms));
  row('   samples (changes x clients), missed', (r) => `${r.endpointChange!.changes}x${CFG.clients}, ${r.endpointChange!.missed}`);
  row('3. new service p50 (CDS+EDS+RDS)', (r) => fmtMs(r.newService!.p50Ms));
  row('   new service p99', (r) => fmtMs(r.newService!.p99Ms));
  row('   new service p99: CDS / EDS / RDS', (r) => ['cds', 'eds', 'rds'].map((t) => fmtMs(r.newService!.perType![t]!.p99Ms)).join(' / '));
  row('   stage: write -> push starts', (r) => fmtMs(r.newService!.pushStartP50Ms));
  row('   stage: push start -> first client / p99 client', (r) => `${fmtMs(r.newService!.pushToFirstP50Ms)} / ${fmtMs(r.newService!.pushToP99P50Ms)}`);
  row('   server fan-out, pilot_xds_push_time (mean)', (r) => fmtMs(r.metrics!['newServices.fullFanoutMeanMs']!));
  row('   meshd longest event-loop stall per change (median)', (r) => fmtMs(r.newService!.maxStallP50Ms));
  row('   bytes per client per new service', (r) => fmtBytes(r.newService!.bytesPerClientP50));
  row('   server CPU per new service', (r) => `${r.newService!.serverCpuPerChangeSec.toFixed(2)} s`);
  row('4. bytes per client per endpoint change (p50, gRPC messages)', (r) => fmtBytes(r.endpointChange!.bytesPerClientP50), 'a few hundred B');
  row('   bytes per client per endpoint change (max)', (r) => fmtBytes(r.endpointChange!.bytesPerClientMax));
  row('   responses per client per endpoint change', (r) => String(r.endpointChange!.responsesPerClientP50));
  row('   server CPU per endpoint change', (r) => `${r.endpointChange!.serverCpuPerChangeSec.toFixed(2)} s`);
  row('5. server peak RSS (VmHWM)', (r) => fmtBytes(r.server!.peakRssBytes), '< 500 MiB', both(rssOk));
  row('   server CPU, whole run', (r) => `${r.server!.cpuSec.toFixed(1)} s`);
  row('   client process peak RSS / CPU', (r) => `${fmtBytes(r.clientProcess!.maxRssBytes)} / ${((r.clientProcess!.cpuUserMs + r.clientProcess!.cpuSystemMs) / 1000).toFixed(1)} s`);
  row('   stream errors, NACKs, expired nonces', (r) => `${r.clientProcess!.errors}, ${(r.metrics!['initial.rejects']! + r.metrics!['endpointChanges.rejects']! + r.metrics!['newServices.rejects']!)}, ${(r.metrics!['initial.expiredNonces']! + r.metrics!['endpointChanges.expiredNonces']! + r.metrics!['newServices.expiredNonces']!)}`);

  const parts: string[] = [];
  if (results.length) {
    parts.push(`meshd benchmark: ${CFG.services} services x ${CFG.endpoints} endpoints, ${CFG.clients} ADS clients (${CFG.perChannel} streams/channel), debounce 100 ms (default)`);
    parts.push('');
    parts.push(table(['figure', 'SotW', 'delta', 'target', 'status'], rows));
  }
  for (const r of results) if (r.error) parts.push(`\n${r.mode}: ERROR: ${r.error}`);
  if (kube) {
    if (parts.length) parts.push('');
    parts.push(kubeReport(kube));
  }
  for (const r of istio) {
    if (parts.length) parts.push('');
    parts.push(istioReport(r, micro));
  }
  if (scoped) {
    if (parts.length) parts.push('');
    parts.push(istioReport(scoped, micro));
  }
  const phaseRows = results.flatMap((r) =>
    (r.phases ?? []).map((p) => [
      `${r.mode}: ${p.phase}`,
      `${p.seconds.toFixed(1)} s`,
      `${p.serverCpuSec.toFixed(1)} s`,
      `${p.clientCpuSec.toFixed(1)} s`,
      p.otherCpuCores.toFixed(2),
      fmtBytes(p.serverPeakRssBytes),
      fmtBytes(p.serverPeakHeapBytes),
      fmtBytes(p.serverPeakExternalBytes),
      fmtMs(p.serverMaxStallMs),
      fmtMs(p.serverStalledMs),
    ]),
  );
  if (phaseRows.length) {
    parts.push('');
    parts.push('Per phase: CPU of meshd, of the client process and of unrelated processes (cores) on this 2-core machine; meshd peaks (RSS; V8 heap and Buffer memory from /metrics every 250 ms); meshd event-loop stalls (longest, and total of stalls >= 20 ms):');
    parts.push(table(['phase', 'wall', 'meshd CPU', 'clients CPU', 'other cores', 'RSS', 'heap used', 'buffers', 'longest stall', 'stalled'], phaseRows));
  }
  if (micro.length) {
    parts.push('');
    parts.push('In-process micro-benchmarks (src/ modules, no network):');
    parts.push(table(['stage', 'value'], micro.map((x) => [x.label, x.unit === 'ms' ? fmtMs(x.value) : x.unit === 'bytes' ? fmtBytes(x.value) : `${Math.round(x.value * 100) / 100} ${x.unit}`])));
  }
  return parts.join('\n');
}

async function main(): Promise<void> {
  // The soak (bench/soak.ts, 30 minutes of churn, watching meshd's memory): only when asked for
  // with BENCH_MODES=soak, and alone; never in the default modes.
  if (MODES.includes('soak')) {
    if (MODES.length > 1) {
      log(`bench: BENCH_MODES=soak runs alone (got ${MODES.join(',')})`);
      process.exit(2);
    }
    const { runSoak } = await import('./soak.js');
    process.exit(await runSoak());
  }
  const began = Date.now();
  const deadline = began + CFG.deadlineMs;
  const hard = setTimeout(() => {
    log(`bench: hard deadline (${CFG.deadlineMs / 1000} s) exceeded; killing children`);
    killChildren();
    process.exit(3);
  }, CFG.deadlineMs + (CFG.kube ? KUBE_CFG.boundMs + 30_000 : 0) + (CFG.istio ? (CFG.istioMs + 120_000) * CFG.istioVariants.length : 0) + (CFG.scoped ? CFG.istioMs + 120_000 : 0) + 90_000);
  hard.unref();
  mkdirSync(RESULTS, { recursive: true });

  const results: ScenarioResult[] = [];
  for (const mode of CFG.modes) {
    if (Date.now() > deadline - 60_000) {
      results.push({ mode, error: 'skipped: out of time' });
      continue;
    }
    results.push(await scenario(mode, Math.min(deadline, Date.now() + CFG.scenarioMs)));
  }
  let kube: KubeInformerResult | undefined;
  if (CFG.kube) {
    log(`informer case: ${KUBE_CFG.services} Services x ${KUBE_CFG.endpoints} endpoints in a real kube-apiserver, ${KUBE_CFG.updates} EndpointSlice updates...`);
    kube = await runKubeInformer({ cfg: KUBE_CFG, log, track, profileDir: CFG.profile ? join(RESULTS, 'profiles', 'kube') : undefined });
  }
  const istio: IstioResult[] = [];
  if (CFG.istio) {
    for (const variant of CFG.istioVariants) {
      log(`traffic-management case (${variant}): ${CFG.istioObjects} VirtualServices + DestinationRules, ${CFG.clients} clients, ${CFG.istioEdits} VirtualService edits...`);
      istio.push(await istioScenario(Date.now() + CFG.istioMs, variant));
    }
  }
  let scoped: IstioResult | undefined;
  if (CFG.scoped) {
    log(`scoped case: the traffic-management mesh, every client's Sidecar importing ${CFG.sidecarImports} services...`);
    scoped = await istioScenario(Date.now() + CFG.istioMs, 'vhds', true);
  }
  // In-process micro-benchmarks run last: their large heap would otherwise be collected
  // while the scenarios measure (the SotW initial sync took 11.6 s instead of ~5 s after them).
  let micro: MicroResult[] = [];
  if (CFG.micro) {
    log('micro-benchmarks (in-process)...');
    try {
      micro = await runMicro({ services: CFG.services, endpoints: CFG.endpoints, connections: CFG.clients, log });
    } catch (err) {
      log(`micro-benchmarks failed: ${String(err instanceof Error ? err.stack : err)}`);
    }
  }
  if (CFG.istioMicro) {
    log('micro-benchmarks, traffic management (in-process)...');
    try {
      micro.push(...runIstioMicro({ services: CFG.services, endpoints: CFG.endpoints, istio: CFG.istioObjects, connections: CFG.clients, log }));
    } catch (err) {
      log(`istio micro-benchmarks failed: ${String(err instanceof Error ? err.stack : err)}`);
    }
  }
  // The CA's signing rate (bench/signing.ts prints its own table and writes results/signing.json).
  if (MODES.includes('signing')) execFileSync(process.execPath, [join(here, 'signing.js')], { stdio: 'inherit' });
  const text = report(results, micro, kube, istio, scoped);
  process.stdout.write(`\n${text}\n`);
  let commit = '';
  try {
    commit = execFileSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    /* not a checkout */
  }
  const json = {
    date: new Date().toISOString(),
    commit,
    node: process.version,
    durationSec: Math.round((Date.now() - began) / 1000),
    config: CFG,
    targets: {
      deltaEndpointChangeP99: { targetMs: TARGETS.deltaEdsP99Ms, valueMs: results.find((r) => r.mode === 'delta')?.endpointChange?.p99Ms ?? null },
      initialSync: Object.fromEntries(results.map((r) => [r.mode, { targetMs: TARGETS.initialSyncMs, valueMs: r.initial?.allSyncedMs ?? null }])),
      serverRss: Object.fromEntries(results.map((r) => [r.mode, { targetBytes: TARGETS.serverRssBytes, valueBytes: r.server?.peakRssBytes ?? null }])),
      ...(kube ? { kubeEndpointUpdateP99: { targetMs: KUBE_TARGETS.updateP99Ms, valueMs: kube.update?.total.p99Ms ?? null } } : {}),
      ...(scoped ? { scopedInitialSync: { targetMs: TARGETS.scopedInitialSyncMs, valueMs: scoped.initial?.allSyncedMs ?? null }, scopedServerRss: { targetBytes: TARGETS.scopedRssBytes, valueBytes: scoped.server?.peakRssBytes ?? null } } : {}),
      ...Object.fromEntries(
        istio.flatMap((r) => [
          [`istioVirtualServiceEditP99.${r.variant}`, { targetMs: r.variant === 'vhds' ? TARGETS.vhdsVsEditP99Ms : TARGETS.istioVsEditP99Ms, valueMs: r.vsEdit?.p99Ms ?? null }],
          [`istioVirtualServiceEditBytesPerClient.${r.variant}`, { targetBytes: r.variant === 'vhds' ? TARGETS.vhdsVsEditBytesPerClient : null, valueBytes: r.vsEdit?.bytesPerClientP50 ?? null }],
          [`istioServerRss.${r.variant}`, { targetBytes: TARGETS.istioRssBytes, valueBytes: r.server?.peakRssBytes ?? null }],
        ]),
      ),
    },
    scenarios: results,
    ...(istio.length ? { istio } : {}),
    ...(scoped ? { scoped } : {}),
    ...(kube ? { kube } : {}),
    micro,
    table: text,
  };
  const file = join(RESULTS, 'latest.json');
  writeFileSync(file, JSON.stringify(json, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  log(`\nwrote ${file} (${json.durationSec} s)`);
  const failed = results.some((r) => r.error) || Boolean(kube?.error) || istio.some((r) => r.error) || Boolean(scoped?.error);
  clearTimeout(hard);
  process.exit(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  log(`bench failed: ${String(err instanceof Error ? err.stack : err)}`);
  killChildren();
  process.exit(1);
});
