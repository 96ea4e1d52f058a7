// The soak: one meshd (file source) under churn for BENCH_SOAK_MINUTES (default 30), watched
// for memory growth. `BENCH_MODES=soak npm run bench` or `node dist/bench/soak.js`; never part
// of the default modes, and skipped when CI is set.
//
// 500 delta ADS clients (bench/soak-client.ts, built on bench/ads-clients.ts) in one separate
// process; every 5 s a random 5% of them disconnect and as many fresh ones (new node ids and
// IPs) connect; an EndpointSlice file is edited every 2 s (addresses replaced by never-seen
// ones, slices growing and shrinking between 8 and 12 endpoints); 3 VirtualService files are
// edited every 30 s. The configuration's size stays bounded, so its memory should too.
//
// meshd's /metrics (RSS, V8 heap used, Buffer memory, connected clients, pushes) is sampled
// every 5 s and printed every minute. After the warm-up (10% of the run, at least 30 s and at
// most 3 min, from the start of churn) the baseline is the median of the first few samples;
// the final figure is the median of the last few. PASS if neither RSS nor heap grew by more
// than 10%. Results: bench/results/soak-latest.json. Loopback only; children are killed on exit;
// the process ends within the duration plus about a minute whatever happens.
import { spawn, fork, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpText } from '../test/support/meshd.js';
import { istioFile, renderIstio, renderService, serviceFile, serviceName, serviceSpec, writeAtomic, writeIstio, writeMesh } from './mesh-config.js';
import { fmtBytes, fmtMs, metricValue, percentile, procCpuSeconds, procStatusBytes } from './stats.js';
import type { SoakClientEvent, SoakClientStats, SoakCommand } from './soak-client.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench -> repo root */
const REPO = resolve(here, '..', '..');
const MESHD_CLI = join(REPO, 'dist', 'src', 'cli', 'main.js');
const CLIENT_JS = join(here, 'soak-client.js');
const RESULTS = join(REPO, 'bench', 'results');

const num = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return process.env[name] && Number.isFinite(v) ? v : dflt;
};

function soakConfig() {
  const minutes = num('BENCH_SOAK_MINUTES', 30);
  return {
    minutes,
    clients: num('BENCH_SOAK_CLIENTS', 500),
    services: num('BENCH_SERVICES', 1000),
    endpoints: num('BENCH_ENDPOINTS', 10),
    virtualServices: num('BENCH_SOAK_VIRTUAL_SERVICES', 50),
    perChannel: 50,
    flowWindow: 64 * 1024 * 1024,
    churnSec: num('BENCH_SOAK_CHURN_SEC', 5),
    churnPercent: num('BENCH_SOAK_CHURN_PERCENT', 5),
    edsSec: num('BENCH_SOAK_EDS_SEC', 2),
    vsSec: num('BENCH_SOAK_VS_SEC', 30),
    vsEdits: num('BENCH_SOAK_VS_EDITS', 3),
    sampleSec: num('BENCH_SOAK_SAMPLE_SEC', 5),
    /** From the start of churn. */
    // A third of the run (10 min of 30): V8's heap grows and is collected in cycles of
    // minutes, and RSS keeps what the peaks took; it levelled off near minute 10 in the
    // 30-minute run, so a baseline taken earlier measures the warm-up, not a leak.
    warmupSec: num('BENCH_SOAK_WARMUP_MINUTES', Math.max(minutes / 3, 0.5)) * 60,
    /** Samples in the baseline and final medians (fewer on short runs). */
    medianSamples: num('BENCH_SOAK_MEDIAN_SAMPLES', 12),
    tolerance: num('BENCH_SOAK_TOLERANCE', 0.1),
    seed: num('BENCH_SOAK_SEED', 1),
    /** Setup, the initial sync and teardown come out of the duration; churn ends this long before it. */
    teardownSec: 20,
  };
}
type SoakConfig = ReturnType<typeof soakConfig>;

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mib = (b: number): string => fmtBytes(b);
const signedMiB = (b: number): string => (Number.isFinite(b) ? `${b >= 0 ? '+' : ''}${(b / 1024 / 1024).toFixed(2)} MiB` : 'n/a');
const clock = (sec: number): string => `${Math.floor(sec / 60)}:${String(Math.floor(sec % 60)).padStart(2, '0')}`;

/** mulberry32: a small seeded PRNG, so that a run's edits can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- child processes: always killed on the way out ------------------------------------------

const children = new Set<ChildProcess>();
function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}
function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) c.kill('SIGKILL');
}
let handlersInstalled = false;
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killChildren);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killChildren();
      process.exit(130);
    });
  }
}

async function stopChild(c: ChildProcess, graceMs = 8000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  await new Promise<void>((res) => {
    const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    c.kill('SIGTERM');
  });
}

// ---- meshd --------------------------------------------------------------------------------

interface Meshd {
  proc: ChildProcess;
  pid: number;
  grpcPort: number;
  monitoringPort: number;
  /** warn/error/fatal records: how many, and the first few. */
  warnCount: number;
  warnings: string[];
  exited: () => string | undefined;
}

async function startMeshd(configDir: string, services: number): Promise<Meshd> {
  const args = [
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
    '--log-level',
    'info',
    '--drain-duration',
    '0s',
  ];
  const proc = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let exitedWith: string | undefined;
  proc.once('exit', (code, sig) => (exitedWith = `meshd exited (${code ?? sig})`));
  const m: Meshd = { proc, pid: proc.pid!, grpcPort: 0, monitoringPort: 0, warnCount: 0, warnings: [], exited: () => exitedWith };
  let partial = '';
  let serving: ((r: Record<string, unknown>) => void) | undefined;
  const onData = (chunk: Buffer): void => {
    partial += chunk.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        if (line.trim()) {
          m.warnCount++;
          if (m.warnings.length < 20) m.warnings.push(line.slice(0, 300));
        }
        continue;
      }
      if (rec.msg === 'meshd serving') serving?.(rec);
      else if (rec.level === 'warn' || rec.level === 'error' || rec.level === 'fatal') {
        m.warnCount++;
        if (m.warnings.length < 20) m.warnings.push(`${String(rec.level)}: ${String(rec.msg)} ${JSON.stringify({ ...rec, msg: undefined, level: undefined, time: undefined, pid: undefined })}`.slice(0, 400));
      }
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const rec = await new Promise<Record<string, unknown>>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`meshd did not start within 60 s: ${m.warnings.join('\n')}`)), 60_000);
    serving = (r) => {
      clearTimeout(timer);
      res(r);
    };
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`meshd exited with ${code} before serving: ${m.warnings.join('\n')}`));
    });
  });
  const port = (v: unknown): number => Number(String(v).split(':').pop());
  m.grpcPort = port(rec.grpc);
  m.monitoringPort = port(rec.monitoring);
  const until = Date.now() + 60_000;
  for (;;) {
    const r = await httpText(m.monitoringPort, '/ready').catch(() => ({ status: 0, body: '' }));
    if (r.status === 200) break;
    if (Date.now() > until || exitedWith) throw new Error(`meshd not ready within 60 s: ${m.warnings.join('\n')}`);
    await sleep(100);
  }
  const got = metricValue(await scrape(m), 'pilot_services');
  if (got !== services) throw new Error(`meshd serves ${got} services, expected ${services}`);
  return m;
}

async function scrape(m: Meshd): Promise<string> {
  const r = await httpText(m.monitoringPort, '/metrics').catch(() => ({ status: 0, body: '' }));
  return r.status === 200 ? r.body : '';
}

// ---- the client process -------------------------------------------------------------------

class Clients {
  readonly proc: ChildProcess;
  private waiters: { ev: string; resolve: (e: SoakClientEvent) => void }[] = [];
  fatal: string | undefined;

  constructor() {
    this.proc = track(fork(CLIENT_JS, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] }));
    this.proc.on('message', (e: SoakClientEvent) => {
      if (e.ev === 'fatal') {
        this.fatal = e.message;
        log(`soak client process: ${e.message}`);
      }
      const i = this.waiters.findIndex((w) => w.ev === e.ev);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(e);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  async request<K extends SoakClientEvent['ev']>(c: SoakCommand, ev: K, timeoutMs = 15_000): Promise<Extract<SoakClientEvent, { ev: K }>> {
    if (this.proc.exitCode !== null || !this.proc.connected) throw new Error(`client process gone${this.fatal ? `: ${this.fatal}` : ''}`);
    const p = new Promise<SoakClientEvent | undefined>((res) => {
      const w = {
        ev,
        resolve: (e: SoakClientEvent) => {
          clearTimeout(timer);
          res(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        res(undefined);
      }, timeoutMs);
      this.waiters.push(w);
    });
    this.proc.send(c);
    const r = await p;
    if (!r) throw new Error(`client process did not answer ${c.cmd} within ${timeoutMs} ms${this.fatal ? `: ${this.fatal}` : ''}`);
    return r as Extract<SoakClientEvent, { ev: K }>;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<boolean>((res) => {
      const timer = setTimeout(() => res(false), 5000);
      this.proc.once('exit', () => {
        clearTimeout(timer);
        res(true);
      });
    });
    if (this.proc.connected) this.proc.send({ cmd: 'stop' } satisfies SoakCommand);
    if (!(await exited)) this.proc.kill('SIGKILL');
  }
}

// ---- churn of the configuration -----------------------------------------------------------

/** EndpointSlice edits: addresses replaced by never-seen ones; slices between 8 and 12 endpoints. */
class EndpointChurn {
  private readonly current = new Map<number, string[]>();
  private fresh = 0;
  edits = 0;

  constructor(
    private readonly dir: string,
    private readonly cfg: SoakConfig,
    private readonly rand: () => number,
  ) {}

  /** 172.16.0.0/12, away from every address the mesh and the clients use. */
  private freshIP(): string {
    const c = this.fresh++;
    return `172.${16 + (Math.floor(c / 65024) % 16)}.${Math.floor(c / 254) % 256}.${(c % 254) + 1}`;
  }

  edit(): void {
    const i = Math.floor(this.rand() * this.cfg.services);
    const spec = serviceSpec(i, this.cfg.endpoints);
    const eps = this.current.get(i) ?? spec.endpoints;
    const lo = Math.max(1, this.cfg.endpoints - 2);
    const hi = this.cfg.endpoints + 2;
    const r = this.rand();
    if (r < 0.25 && eps.length > lo) eps.splice(Math.floor(this.rand() * eps.length), 1);
    else if (r < 0.5 && eps.length < hi) eps.push(this.freshIP());
    eps[Math.floor(this.rand() * eps.length)] = this.freshIP();
    this.current.set(i, eps);
    spec.endpoints = eps;
    writeAtomic(this.dir, serviceFile(serviceName(i)), renderService(spec));
    this.edits++;
  }
}

/** VirtualService edits: the default route's v1 weight cycles 90, 80, 70, 60, 50 per file. */
class RouteChurn {
  private readonly weight = new Map<number, number>();
  edits = 0;

  constructor(
    private readonly dir: string,
    private readonly cfg: SoakConfig,
    private readonly rand: () => number,
  ) {}

  edit(): void {
    for (let k = 0; k < this.cfg.vsEdits; k++) {
      const i = Math.floor(this.rand() * this.cfg.virtualServices);
      const w = this.weight.get(i) ?? 90;
      const next = w <= 50 ? 90 : w - 10;
      this.weight.set(i, next);
      writeAtomic(this.dir, istioFile(i), renderIstio(i, next));
      this.edits++;
    }
  }
}

// ---- samples ------------------------------------------------------------------------------

interface Sample {
  /** Seconds since churn began. */
  t: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  /** pilot_xds: connected xDS clients, as meshd counts them. */
  connected: number;
  /** pilot_xds_pushes, cumulative: all types, and per type. */
  pushes: number;
  pushesByType: Record<string, number>;
  cpuSec: number;
  /** Lines of /metrics (series with per-proxy labels would grow it). */
  metricLines: number;
}

function sampleOf(text: string, t: number, pid: number): Sample | undefined {
  if (!text) return undefined;
  const byType: Record<string, number> = {};
  for (const ty of ['cds', 'eds', 'lds', 'rds']) byType[ty] = metricValue(text, 'pilot_xds_pushes', `type="${ty}"`);
  return {
    t,
    rssBytes: metricValue(text, 'process_resident_memory_bytes'),
    heapUsedBytes: metricValue(text, 'nodejs_heap_size_used_bytes'),
    heapTotalBytes: metricValue(text, 'nodejs_heap_size_total_bytes'),
    externalBytes: metricValue(text, 'nodejs_external_memory_bytes'),
    connected: metricValue(text, 'pilot_xds'),
    pushes: metricValue(text, 'pilot_xds_pushes'),
    pushesByType: byType,
    cpuSec: procCpuSeconds(pid),
    metricLines: text.split('\n').length,
  };
}

interface MinuteRow {
  minute: number;
  t: number;
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  connected: number;
  liveClients: number;
  syncedClients: number;
  pushes: number;
  pushesByType: Record<string, number>;
  meshdCpuPercent: number;
  joined: number;
  left: number;
  endpointEdits: number;
  vsEdits: number;
  newClientSyncP50Ms: number;
  newClientSyncP99Ms: number;
  stuck: number;
  unexpectedCloses: number;
}

const median = (xs: number[]): number => percentile(xs, 50);

/** Least-squares slope of y over t (per minute). */
function slopePerMin(pts: { t: number; y: number }[]): number {
  if (pts.length < 2) return NaN;
  const n = pts.length;
  const mt = pts.reduce((a, p) => a + p.t, 0) / n;
  const my = pts.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of pts) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den > 0 ? (num / den) * 60 : NaN;
}

interface Window {
  fromSec: number;
  toSec: number;
  samples: number;
  /** Medians over the window's samples. */
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  heapUsedFloorBytes: number;
}

export interface SoakResult {
  date: string;
  commit: string;
  node: string;
  config: SoakConfig;
  verdict: 'PASS' | 'FAIL';
  /** Why it failed: growth beyond the tolerance. */
  failures: string[];
  error?: string;
  durationSec: number;
  setup?: { meshdStartMs: number; initialSyncMs: number };
  baseline?: Window;
  final?: Window;
  growth?: { rss: number; heapUsed: number; external: number; heapUsedFloor: number };
  /** After the warm-up, least-squares slopes (bytes per minute). */
  slopes?: { rssBytesPerMin: number; heapUsedBytesPerMin: number };
  end?: { connected: number; liveClients: number; connectedAfterAllLeft: number; secondsUntilZero: number; heapUsedAfterAllLeftBytes: number; rssAfterAllLeftBytes: number };
  /** warnCount: warn/error records over the whole run; warnings: the first 20 (startup ones included). */
  meshd?: { peakRssBytes: number; cpuSec: number; warnCount: number; warnings: string[] };
  clients?: SoakClientStats;
  /** Churn: clients that joined after the initial ones, clients that left, edits, pushes (pilot_xds_pushes) during churn. */
  totals?: { joined: number; left: number; endpointEdits: number; vsEdits: number; pushes: number };
  notes: string[];
  minutes: MinuteRow[];
  samples: Sample[];
}

// ---- the run ------------------------------------------------------------------------------

/** Runs the soak; returns the exit code (0 PASS, 1 FAIL or error). */
export async function runSoak(): Promise<number> {
  if (process.env.CI) {
    log('soak: skipped (CI is set; the soak is for manual runs)');
    return 0;
  }
  installHandlers();
  const cfg = soakConfig();
  const began = Date.now();
  const endAt = began + cfg.minutes * 60_000;
  // Whatever happens, the process is gone a minute after the duration.
  const hard = setTimeout(() => {
    log(`soak: hard deadline (${cfg.minutes} min + 60 s) exceeded; killing children`);
    killChildren();
    process.exit(3);
  }, cfg.minutes * 60_000 + 60_000);
  hard.unref();
  mkdirSync(RESULTS, { recursive: true });
  const rand = prng(cfg.seed);
  const result: SoakResult = { date: new Date().toISOString(), commit: '', node: process.version, config: cfg, verdict: 'FAIL', failures: [], durationSec: 0, notes: [], minutes: [], samples: [] };
  try {
    result.commit = execFileSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    /* not a checkout */
  }
  const dir = mkdtempSync(join(tmpdir(), 'meshd-soak-'));
  let meshd: Meshd | undefined;
  let cp: Clients | undefined;
  const timers: NodeJS.Timeout[] = [];
  let lastStats: SoakClientStats | undefined;
  let eds: EndpointChurn | undefined;
  let vs: RouteChurn | undefined;
  try {
    log(`soak: ${cfg.minutes} min, ${cfg.clients} delta clients (${cfg.churnPercent}% replaced every ${cfg.churnSec} s), ${cfg.services} services x ${cfg.endpoints} endpoints (one EndpointSlice edit every ${cfg.edsSec} s), ${cfg.virtualServices} VirtualServices (${cfg.vsEdits} edited every ${cfg.vsSec} s); warm-up ${clock(cfg.warmupSec)}; config in ${dir}`);
    writeMesh(dir, cfg.services, cfg.endpoints);
    writeIstio(dir, cfg.virtualServices);
    const t0 = Date.now();
    meshd = await startMeshd(dir, cfg.services);
    const meshdStartMs = Date.now() - t0;
    log(`soak: meshd pid ${meshd.pid} on 127.0.0.1:${meshd.grpcPort} (monitoring ${meshd.monitoringPort}), ready after ${fmtMs(meshdStartMs)}`);

    cp = new Clients();
    const t1 = Date.now();
    await cp.request({ cmd: 'start', address: `127.0.0.1:${meshd.grpcPort}`, clients: cfg.clients, perChannel: cfg.perChannel, flowWindow: cfg.flowWindow, seed: cfg.seed + 1 }, 'started', 30_000);
    for (;;) {
      const s = await cp.request({ cmd: 'stats' }, 'stats');
      if (s.synced >= cfg.clients) break;
      if (meshd.exited()) throw new Error(meshd.exited());
      if (Date.now() - t1 > 90_000) throw new Error(`initial sync: only ${s.synced}/${cfg.clients} clients have their full configuration after 90 s (${s.unexpectedCloses} streams closed: ${s.closeSamples.join('; ')})`);
      await sleep(250);
    }
    const initialSyncMs = Date.now() - t1;
    result.setup = { meshdStartMs, initialSyncMs };
    log(`soak: ${cfg.clients} clients synced in ${fmtMs(initialSyncMs)}; churn begins`);

    // ---- churn ----
    const churnStart = Date.now();
    const warnsBefore = meshd.warnCount;
    const churnEnd = endAt - cfg.teardownSec * 1000;
    if (churnEnd - churnStart < 60_000) throw new Error(`less than a minute of churn left (BENCH_SOAK_MINUTES=${cfg.minutes} is too short)`);
    const tNow = (): number => (Date.now() - churnStart) / 1000;
    eds = new EndpointChurn(dir, cfg, rand);
    vs = new RouteChurn(dir, cfg, rand);
    const client = cp;
    const server = meshd;
    let busy = false;
    let churnError: string | undefined;
    timers.push(
      setInterval(() => {
        if (busy) return;
        busy = true;
        const leave = Math.max(1, Math.round((cfg.clients * cfg.churnPercent) / 100));
        client
          .request({ cmd: 'churn', leave, target: cfg.clients }, 'churned')
          .catch((err: unknown) => (churnError ??= String(err instanceof Error ? err.message : err)))
          .finally(() => (busy = false));
      }, cfg.churnSec * 1000),
      setInterval(() => {
        try {
          eds!.edit();
        } catch (err) {
          churnError ??= `EndpointSlice edit: ${String(err)}`;
        }
      }, cfg.edsSec * 1000),
      setInterval(() => {
        try {
          vs!.edit();
        } catch (err) {
          churnError ??= `VirtualService edit: ${String(err)}`;
        }
      }, cfg.vsSec * 1000),
    );

    let prevMinute = sampleOf(await scrape(server), 0, server.pid);
    let prevStats = await client.request({ cmd: 'stats' }, 'stats');
    let prevEds = 0;
    let prevVs = 0;
    let minuteSync: number[] = [];
    let nextSample = churnStart + cfg.sampleSec * 1000;
    let nextMinute = churnStart + 60_000;
    log('');
    log('  time   meshd RSS   heap used   buffers  connected (clients synced)   pushes/min (cds eds lds rds)   meshd CPU  joined/left  EDS/VS edits  new client sync p50/p99  stuck  closes');
    while (Date.now() < churnEnd) {
      await sleep(Math.max(0, Math.min(nextSample, churnEnd) - Date.now()));
      if (server.exited()) throw new Error(server.exited());
      if (churnError) throw new Error(`churn: ${churnError}`);
      if (Date.now() < nextSample) continue;
      nextSample += cfg.sampleSec * 1000;
      const s = sampleOf(await scrape(server), tNow(), server.pid);
      if (s) result.samples.push(s);
      else log(`  ${clock(tNow())}  (no /metrics answer)`);
      if (Date.now() >= nextMinute && s && prevMinute) {
        nextMinute += 60_000;
        const st = await client.request({ cmd: 'stats' }, 'stats');
        lastStats = st;
        minuteSync = st.syncMs;
        const dt = s.t - prevMinute.t;
        const row: MinuteRow = {
          minute: Math.round(s.t / 60),
          t: s.t,
          rssBytes: s.rssBytes,
          heapUsedBytes: s.heapUsedBytes,
          externalBytes: s.externalBytes,
          connected: s.connected,
          liveClients: st.live,
          syncedClients: st.synced,
          pushes: ((s.pushes - prevMinute.pushes) * 60) / dt,
          pushesByType: Object.fromEntries(Object.entries(s.pushesByType).map(([k, v]) => [k, Math.round(((v - (prevMinute!.pushesByType[k] ?? 0)) * 60) / dt)])),
          meshdCpuPercent: ((s.cpuSec - prevMinute.cpuSec) / dt) * 100,
          joined: st.joinedTotal - prevStats.joinedTotal,
          left: st.leftTotal - prevStats.leftTotal,
          endpointEdits: eds.edits - prevEds,
          vsEdits: vs.edits - prevVs,
          newClientSyncP50Ms: percentile(minuteSync, 50),
          newClientSyncP99Ms: percentile(minuteSync, 99),
          stuck: st.stuck,
          unexpectedCloses: st.unexpectedCloses - prevStats.unexpectedCloses,
        };
        result.minutes.push(row);
        const bt = row.pushesByType;
        log(
          `  ${clock(s.t).padStart(5)}  ${mib(row.rssBytes).padStart(10)}  ${mib(row.heapUsedBytes).padStart(10)}  ${mib(row.externalBytes).padStart(8)}  ${String(row.connected).padStart(9)} (${row.liveClients} live, ${row.syncedClients} synced)  ${String(Math.round(row.pushes)).padStart(8)} (${bt.cds} ${bt.eds} ${bt.lds} ${bt.rds})  ${row.meshdCpuPercent.toFixed(0).padStart(6)}%  ${row.joined}/${row.left}  ${row.endpointEdits}/${row.vsEdits}  ${fmtMs(row.newClientSyncP50Ms)} / ${fmtMs(row.newClientSyncP99Ms)}  ${row.stuck}  ${row.unexpectedCloses}${s.t >= cfg.warmupSec && prevMinute.t < cfg.warmupSec ? '   <- warm-up over' : ''}`,
        );
        prevMinute = s;
        prevStats = st;
        prevEds = eds.edits;
        prevVs = vs.edits;
      }
    }
    for (const t of timers) clearInterval(t);
    timers.length = 0;
    while (busy) await sleep(50);

    // ---- verdict ----
    const after = result.samples.filter((s) => s.t >= cfg.warmupSec);
    const k = Math.max(1, Math.min(cfg.medianSamples, Math.floor(after.length / 2)));
    if (after.length < 2) throw new Error(`only ${after.length} samples after the warm-up: run longer`);
    const win = (xs: Sample[]) => ({
      fromSec: Math.round(xs[0]!.t),
      toSec: Math.round(xs[xs.length - 1]!.t),
      samples: xs.length,
      rssBytes: median(xs.map((x) => x.rssBytes)),
      heapUsedBytes: median(xs.map((x) => x.heapUsedBytes)),
      externalBytes: median(xs.map((x) => x.externalBytes)),
      /** The lowest heap used in the window: close to what survives a collection. */
      heapUsedFloorBytes: Math.min(...xs.map((x) => x.heapUsedBytes)),
    });
    const base = win(after.slice(0, k));
    const fin = win(after.slice(-k));
    result.baseline = base;
    result.final = fin;
    result.growth = {
      rss: fin.rssBytes / base.rssBytes - 1,
      heapUsed: fin.heapUsedBytes / base.heapUsedBytes - 1,
      external: fin.externalBytes / base.externalBytes - 1,
      heapUsedFloor: fin.heapUsedFloorBytes / base.heapUsedFloorBytes - 1,
    };
    result.slopes = { rssBytesPerMin: slopePerMin(after.map((s) => ({ t: s.t, y: s.rssBytes }))), heapUsedBytesPerMin: slopePerMin(after.map((s) => ({ t: s.t, y: s.heapUsedBytes }))) };
    if (result.growth.rss > cfg.tolerance) result.failures.push(`RSS grew ${(result.growth.rss * 100).toFixed(1)}% (${mib(base.rssBytes)} -> ${mib(fin.rssBytes)})`);
    if (result.growth.heapUsed > cfg.tolerance) result.failures.push(`heap used grew ${(result.growth.heapUsed * 100).toFixed(1)}% (${mib(base.heapUsedBytes)} -> ${mib(fin.heapUsedBytes)})`);
    result.verdict = result.failures.length ? 'FAIL' : 'PASS';

    // ---- the end: connections as meshd counts them, then after every client has left ----
    await sleep(2000);
    const st = await client.request({ cmd: 'stats' }, 'stats');
    lastStats = st;
    const endText = await scrape(server);
    const connected = metricValue(endText, 'pilot_xds');
    if (connected !== st.live) result.notes.push(`at the end meshd counted ${connected} connected clients, the client process had ${st.live} live streams`);
    await client.request({ cmd: 'leaveAll' }, 'leftAll');
    const tl = Date.now();
    let left = connected;
    let text = '';
    while (Date.now() - tl < 10_000) {
      await sleep(250);
      text = await scrape(server);
      left = metricValue(text, 'pilot_xds');
      if (left === 0) break;
    }
    result.end = {
      connected,
      liveClients: st.live,
      connectedAfterAllLeft: left,
      secondsUntilZero: (Date.now() - tl) / 1000,
      heapUsedAfterAllLeftBytes: metricValue(text, 'nodejs_heap_size_used_bytes'),
      rssAfterAllLeftBytes: metricValue(text, 'process_resident_memory_bytes'),
    };
    if (left !== 0) result.notes.push(`10 s after every client left, meshd still counted ${left} connected clients`);
    if (st.stuck) result.notes.push(`${st.stuck} live clients had been connected > 30 s without their full configuration`);
    if (st.unexpectedCloses) result.notes.push(`${st.unexpectedCloses} streams ended without the client asking: ${st.closeSamples.slice(0, 3).join('; ')}`);
    if (meshd.warnCount > warnsBefore) result.notes.push(`meshd logged ${meshd.warnCount - warnsBefore} warnings/errors during churn (${meshd.warnings.slice(warnsBefore, warnsBefore + 3).join('; ')})`);
  } catch (err) {
    result.error = String(err instanceof Error ? err.message : err);
    result.verdict = 'FAIL';
    log(`soak: FAILED: ${result.error}`);
  } finally {
    for (const t of timers) clearInterval(t);
    if (meshd) result.meshd = { peakRssBytes: procStatusBytes(meshd.pid, 'VmHWM'), cpuSec: procCpuSeconds(meshd.pid), warnCount: meshd.warnCount, warnings: meshd.warnings };
    // syncMs covers only the last interval; the per-minute rows hold the percentiles.
    if (lastStats) result.clients = { ...lastStats, syncMs: [] };
    const lastSample = result.samples[result.samples.length - 1];
    result.totals = { joined: Math.max(0, (lastStats?.joinedTotal ?? 0) - cfg.clients), left: lastStats?.leftTotal ?? 0, endpointEdits: eds?.edits ?? 0, vsEdits: vs?.edits ?? 0, pushes: lastSample && result.samples[0] ? lastSample.pushes - result.samples[0].pushes : 0 };
    if (cp) await cp.stop();
    if (meshd) await stopChild(meshd.proc);
    rmSync(dir, { recursive: true, force: true });
  }
  result.durationSec = Math.round((Date.now() - began) / 1000);
  process.stdout.write(`\n${summary(result)}\n`);
  const file = join(RESULTS, 'soak-latest.json');
  writeFileSync(file, JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  log(`\nwrote ${file} (${result.durationSec} s)`);
  clearTimeout(hard);
  return result.verdict === 'PASS' ? 0 : 1;
}

function summary(r: SoakResult): string {
  const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
  const lines = [`soak ${r.verdict}: ${r.config.minutes} min, ${r.config.clients} delta clients, ${r.totals?.joined ?? 0} clients joined and ${r.totals?.left ?? 0} left during churn, ${r.totals?.endpointEdits ?? 0} EndpointSlice and ${r.totals?.vsEdits ?? 0} VirtualService edits`];
  if (r.error) lines.push(`  error: ${r.error}`);
  for (const f of r.failures) lines.push(`  FAIL: ${f} (limit +${(r.config.tolerance * 100).toFixed(0)}%)`);
  if (r.baseline && r.final && r.growth) {
    lines.push(`  baseline (median of ${r.baseline.samples} samples, ${clock(r.baseline.fromSec)}-${clock(r.baseline.toSec)}): RSS ${mib(r.baseline.rssBytes)}, heap used ${mib(r.baseline.heapUsedBytes)}, buffers ${mib(r.baseline.externalBytes)}`);
    lines.push(`  final    (median of ${r.final.samples} samples, ${clock(r.final.fromSec)}-${clock(r.final.toSec)}): RSS ${mib(r.final.rssBytes)}, heap used ${mib(r.final.heapUsedBytes)}, buffers ${mib(r.final.externalBytes)}`);
    lines.push(`  growth: RSS ${pct(r.growth.rss)}, heap used ${pct(r.growth.heapUsed)} (limit +${(r.config.tolerance * 100).toFixed(0)}% each); buffers ${pct(r.growth.external)}, heap floor (lowest sample) ${mib(r.baseline.heapUsedFloorBytes)} -> ${mib(r.final.heapUsedFloorBytes)} (${pct(r.growth.heapUsedFloor)})`);
  }
  if (r.slopes) lines.push(`  trend after warm-up (least squares): RSS ${signedMiB(r.slopes.rssBytesPerMin)}/min, heap used ${signedMiB(r.slopes.heapUsedBytesPerMin)}/min`);
  if (r.end) lines.push(`  end: meshd counted ${r.end.connected} connected (${r.end.liveClients} live); ${r.end.connectedAfterAllLeft} after all left (${r.end.secondsUntilZero.toFixed(1)} s), then heap used ${mib(r.end.heapUsedAfterAllLeftBytes)}, RSS ${mib(r.end.rssAfterAllLeftBytes)}`);
  if (r.meshd) lines.push(`  meshd: peak RSS ${mib(r.meshd.peakRssBytes)}, CPU ${r.meshd.cpuSec.toFixed(0)} s, ${r.meshd.warnCount} warnings/errors logged`);
  if (r.setup) lines.push(`  setup: meshd ready in ${fmtMs(r.setup.meshdStartMs)}, ${r.config.clients} clients synced in ${fmtMs(r.setup.initialSyncMs)}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines.join('\n');
}

/** `node dist/bench/soak.js` runs it directly. */
function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  runSoak().then(
    (code) => process.exit(code),
    (err: unknown) => {
      log(`soak failed: ${String(err instanceof Error ? err.stack : err)}`);
      killChildren();
      process.exit(1);
    },
  );
}
