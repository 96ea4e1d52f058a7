// Test fixture for a real Kubernetes API server: starts etcd and kube-apiserver (built from
// source by scripts/provision-kube.sh) on loopback with static tokens, RBAC, and a generated
// service-account signing key, and offers a small REST client for tests.
//
// No kubelet, scheduler or controller-manager runs: tests do what controllers would (create the
// namespace's `default` ServiceAccount, write Pod status through /status, write EndpointSlices).
// The binaries are never optional: when they are missing, startKube() throws and the test
// fails, telling the reader to run `npm run provision`.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify as stringifyYaml } from 'yaml';
import { freePort } from './backends.js';
import { killOnExit } from './child-processes.js';

export const KUBE_VERSION = 'v1.36.3';
export const ETCD_VERSION = '3.6.16';

/** The issuer and audience of service-account tokens, as in a real cluster. */
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** Audiences the apiserver accepts: its own, and istio-ca (what istio-agent asks for). */
export const API_AUDIENCES = [SERVICE_ACCOUNT_ISSUER, 'istio-ca'];
/** The user meshd runs as (a static token named like istiod's service account). */
export const MESHD_USER = 'system:serviceaccount:istio-system:istiod';
export const MESHD_GROUPS = ['system:serviceaccounts', 'system:serviceaccounts:istio-system'];

const PROVISION_HINT = 'run `npm run provision` (scripts/provision.sh, which runs scripts/provision-kube.sh) to build it';

// ---------------------------------------------------------------------------------------------
// Locating the binaries

export interface KubeBinaries {
  kubeApiserver: string;
  etcd: string;
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Paths of kube-apiserver and etcd: $MESHD_KUBE_APISERVER / $MESHD_ETCD when set, else the paths
 * the provision script wrote to ~/.cache/meshd/kube-paths. Throws when either is not runnable.
 */
export function kubeBinaries(): KubeBinaries {
  const pathsFile = join(homedir(), '.cache', 'meshd', 'kube-paths');
  const recorded = new Map<string, string>();
  if (existsSync(pathsFile)) {
    for (const line of readFileSync(pathsFile, 'utf8').split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) recorded.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
  }
  const pick = (envName: string, key: string, what: string): string => {
    const fromEnv = process.env[envName];
    if (fromEnv !== undefined && fromEnv !== '') {
      if (!isExecutable(fromEnv)) throw new Error(`${envName}=${fromEnv} is not an executable file; unset it or ${PROVISION_HINT}`);
      return fromEnv;
    }
    const path = recorded.get(key);
    if (path !== undefined && isExecutable(path)) return path;
    throw new Error(
      `${what} not found (looked at $${envName} (unset) and ${key}= in ${pathsFile}${path === undefined ? '' : `: ${path} is not executable`}); ${PROVISION_HINT}`,
    );
  };
  return {
    kubeApiserver: pick('MESHD_KUBE_APISERVER', 'KUBE_APISERVER', `kube-apiserver ${KUBE_VERSION}`),
    etcd: pick('MESHD_ETCD', 'ETCD', `etcd ${ETCD_VERSION}`),
  };
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: kill every etcd/apiserver still running when the test process exits.

const track = killOnExit;

/** The last `max` lines a process printed, kept in memory. */
class LogRing {
  private readonly lines: string[] = [];
  private partial = '';
  constructor(
    readonly name: string,
    private readonly max = 2000,
  ) {}
  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.add(line);
  }
  note(line: string): void {
    this.add(`--- ${line}`);
  }
  private add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  tail(n: number): string[] {
    const all = this.partial === '' ? this.lines : [...this.lines, this.partial];
    return all.slice(-n);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** A non-2xx answer from the apiserver; `body` is the parsed Status object when there is one. */
export class KubeApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: unknown,
    text: string,
  ) {
    super(`${method} ${path}: HTTP ${status}: ${text.slice(0, 500)}`);
    this.name = 'KubeApiError';
  }
  /** The Status reason (e.g. "Forbidden", "NotFound", "AlreadyExists"), when there is one. */
  get reason(): string | undefined {
    const b = this.body as { reason?: unknown } | undefined;
    return typeof b?.reason === 'string' ? b.reason : undefined;
  }
}

interface HttpOptions {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: string;
  ca?: string;
  timeoutMs?: number;
}

function httpRequest(o: HttpOptions): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const mod = o.url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { ...o.headers };
    if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
    const req = mod.request(
      o.url,
      {
        method: o.method,
        headers,
        agent: false,
        ...(o.url.protocol === 'https:' ? (o.ca === undefined ? { rejectUnauthorized: false } : { ca: o.ca }) : {}),
        timeout: o.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${o.method} ${o.url.href}: timed out after ${o.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The cluster

export interface KubeStartOptions {
  /** Bound on each start (etcd healthy, then apiserver /readyz OK); default 120 s. */
  startTimeoutMs?: number;
  /** Extra kube-apiserver flags, appended last (so they win over the fixture's own). */
  apiserverArgs?: string[];
  /** Keep the temp dir (data, certs, keys, kubeconfigs) after stop(), for debugging. Also $MESHD_KUBE_KEEP=1. */
  keepDir?: boolean;
}

export interface RequestOptions {
  /** Content-Type of the body; default application/merge-patch+json for PATCH, else application/json. */
  contentType?: string;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
}

export interface ApplyOptions {
  fieldManager?: string;
  /** Take over fields other managers own (server-side apply's force=true); default true. */
  force?: boolean;
  token?: string;
}

export interface PeerApiserver {
  readonly server: string;
  /** Like KubeCluster.request, against this apiserver. */
  request<T = unknown>(method: string, path: string, body?: unknown, token?: string, opts?: RequestOptions): Promise<T>;
  stop(): Promise<void>;
}

export interface KubeCluster {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** The apiserver's self-signed serving certificate chain (PEM); trust it as a CA. */
  readonly caPem: string;
  /** caPem, base64-encoded, as kubeconfig's certificate-authority-data wants it. */
  readonly caData: string;
  /** A file holding caPem. */
  readonly caFile: string;
  /** Token of user `admin` in group system:masters. */
  readonly adminToken: string;
  /** Token of MESHD_USER (groups MESHD_GROUPS): no permissions until a test grants them by RBAC. */
  readonly meshdToken: string;
  /** http://127.0.0.1:<port>, etcd's client URL. */
  readonly etcdUrl: string;
  /** The temp dir holding everything (removed by stop()). */
  readonly dir: string;
  /** Writes a kubeconfig for `token` (default: meshdToken) and returns its path. */
  kubeconfig(token?: string): string;
  /**
   * One REST call; `token` defaults to adminToken. Objects are sent as JSON (also valid for
   * application/apply-patch+yaml); strings are sent as they are. Resolves to the parsed JSON
   * answer (or the text when it is not JSON); rejects with KubeApiError on a non-2xx status.
   */
  request<T = unknown>(method: string, path: string, body?: unknown, token?: string, opts?: RequestOptions): Promise<T>;
  /** Like request() but resolves to the raw answer, whatever its status. */
  requestRaw(method: string, path: string, body?: unknown, token?: string, opts?: RequestOptions): Promise<RawResponse>;
  /** Server-side apply of `obj` at `path` (the object's own URL, e.g. /api/v1/namespaces/ns/services/foo). */
  apply<T = unknown>(path: string, obj: unknown, opts?: ApplyOptions): Promise<T>;
  /** Creates a namespace and its `default` ServiceAccount (the controller that would is not running). */
  createNamespace(name: string, labels?: Record<string, string>): Promise<void>;
  /**
   * Stops kube-apiserver with `signal` (default SIGTERM: a graceful stop, about 1 s; SIGKILL
   * after 10 s) and waits for it to exit.
   */
  stopApiserver(signal?: NodeJS.Signals): Promise<void>;
  /** Start kube-apiserver again (same port, flags and certificate) and wait for /readyz. */
  startApiserver(): Promise<void>;
  /**
   * Stops etcd with `signal` and waits for it to exit; the apiserver keeps running, unready.
   * A graceful SIGTERM (the default) takes about 7 s while the apiserver holds watches open, as
   * etcd waits for its gRPC streams; SIGKILL is instant and loses nothing (no machine crash).
   */
  stopEtcd(signal?: NodeJS.Signals): Promise<void>;
  /** Start etcd again (same ports and data) and wait until it, and a running apiserver, are ready. */
  startEtcd(): Promise<void>;
  /** Waits for /readyz OK (bounded by the start timeout). */
  waitReady(): Promise<void>;
  /**
   * A second kube-apiserver on the same etcd (as in an HA control plane), with its own port
   * and serving certificate: tests change objects through it while the first one is down.
   */
  startPeerApiserver(): Promise<PeerApiserver>;
  /** Stops everything and removes the temp dir. */
  stop(): Promise<void>;
  /** The last lines etcd and kube-apiserver printed (default 200 each). */
  logs(lines?: number): string;
}

interface Proc {
  name: string;
  bin: string;
  args: () => string[];
  log: LogRing;
  child?: ChildProcess;
  exited?: Promise<void>;
}

function spawnProc(p: Proc): void {
  p.log.note(`starting ${p.bin} ${p.args().join(' ')}`);
  const child = spawn(p.bin, p.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  child.stdout!.setEncoding('utf8').on('data', (d: string) => p.log.push(d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => p.log.push(d));
  p.child = child;
  p.exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      p.log.note(`${p.name} exited (${signal ?? `code ${code}`})`);
      if (p.child === child) p.child = undefined;
      resolve();
    });
    child.once('error', (err) => {
      p.log.note(`${p.name} failed to start: ${err.message}`);
      if (p.child === child) p.child = undefined;
      resolve();
    });
  });
}

async function stopProc(p: Proc, timeoutMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const child = p.child;
  if (child === undefined) return;
  const exited = p.exited!;
  p.log.note(`stopping ${p.name} with ${signal}`);
  child.kill(signal);
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(killer);
}

/** Polls `check` until it resolves true, failing when `p` exits or the deadline passes. */
async function waitFor(p: Proc, what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    if (p.child === undefined) {
      throw new Error(`${p.name} exited before ${what}; last log lines:\n${p.log.tail(40).join('\n')}`);
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${p.name}: not ${what} after ${timeoutMs} ms${lastError === '' ? '' : ` (last error: ${lastError})`}; last log lines:\n${p.log.tail(40).join('\n')}`,
      );
    }
    await sleep(200);
  }
}

/** Starts etcd and kube-apiserver on loopback and waits until the apiserver is ready. */
export async function startKube(opts: KubeStartOptions = {}): Promise<KubeCluster> {
  const bins = kubeBinaries();
  const startTimeoutMs = opts.startTimeoutMs ?? 120_000;
  const keepDir = opts.keepDir === true || process.env.MESHD_KUBE_KEEP === '1';
  const dir = mkdtempSync(join(tmpdir(), 'meshd-kube-'));
  const procs: Proc[] = [];
  try {
    const [etcdClientPort, etcdPeerPort, apiserverPort] = await distinctFreePorts(3);
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const server = `https://127.0.0.1:${apiserverPort}`;

    const etcd: Proc = {
      name: 'etcd',
      bin: bins.etcd,
      log: new LogRing('etcd'),
      args: () => [
        '--name=meshd-test',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=meshd-test=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
    };
    procs.push(etcd);
    spawnProc(etcd);

    // Meanwhile: keys, tokens and the apiserver's flags.
    const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const saPub = join(dir, 'sa.pub');
    const saKey = join(dir, 'sa.key');
    writeFileSync(saPub, publicKey, { mode: 0o600 });
    writeFileSync(saKey, privateKey, { mode: 0o600 });
    const adminToken = randomBytes(24).toString('hex');
    const meshdToken = randomBytes(24).toString('hex');
    const tokensFile = join(dir, 'tokens.csv');
    writeFileSync(
      tokensFile,
      [`${adminToken},admin,admin-uid,"system:masters"`, `${meshdToken},${MESHD_USER},meshd-uid,"${MESHD_GROUPS.join(',')}"`, ''].join('\n'),
      { mode: 0o600 },
    );
    const certDir = join(dir, 'certs');
    const apiserver: Proc = {
      name: 'kube-apiserver',
      bin: bins.kubeApiserver,
      log: new LogRing('kube-apiserver'),
      args: () => [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${apiserverPort}`,
        `--cert-dir=${certDir}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        `--api-audiences=${API_AUDIENCES.join(',')}`,
        `--token-auth-file=${tokensFile}`,
        '--authorization-mode=RBAC',
        // No kubelet or controllers here; keep the server lean.
        '--enable-priority-and-fairness=false',
        '--profiling=false',
        ...(opts.apiserverArgs ?? []),
      ],
    };
    procs.push(apiserver);

    const caFile = join(certDir, 'apiserver.crt');
    let caPem: string | undefined;
    const etcdHealthy = async (): Promise<boolean> => {
      const r = await httpRequest({ method: 'GET', url: new URL('/health', etcdUrl), timeoutMs: 2000 });
      return r.status === 200 && (JSON.parse(r.text) as { health?: unknown }).health === 'true';
    };
    const apiserverReady = async (): Promise<boolean> => {
      // The apiserver writes its self-signed certificate before it serves; trust it from then on.
      if (caPem === undefined) {
        if (!existsSync(caFile)) return false;
        caPem = readFileSync(caFile, 'utf8');
      }
      const r = await httpRequest({
        method: 'GET',
        url: new URL('/readyz', server),
        headers: { authorization: `Bearer ${adminToken}` },
        ca: caPem,
        timeoutMs: 5000,
      });
      if (r.status !== 200) throw new Error(`/readyz: HTTP ${r.status}: ${r.text.split('\n').filter((l) => l.includes('[-]')).join('; ')}`);
      // The system namespaces controller runs in the apiserver; wait for it too.
      const ns = await httpRequest({
        method: 'GET',
        url: new URL('/api/v1/namespaces/default', server),
        headers: { authorization: `Bearer ${adminToken}` },
        ca: caPem,
        timeoutMs: 5000,
      });
      return ns.status === 200;
    };
    const waitEtcd = () => waitFor(etcd, 'healthy', startTimeoutMs, etcdHealthy);
    const waitApiserver = () => waitFor(apiserver, 'ready (/readyz)', startTimeoutMs, apiserverReady);

    await waitEtcd();
    spawnProc(apiserver);
    await waitApiserver();
    const ca = caPem!;

    let kubeconfigs = 0;
    let stopped = false;
    const requestTo =
      (to: string, toCa: string) =>
      async (method: string, path: string, body?: unknown, token?: string, ropts: RequestOptions = {}): Promise<RawResponse> => {
        const headers: Record<string, string> = { authorization: `Bearer ${token ?? adminToken}`, accept: 'application/json' };
        let text: string | undefined;
        if (body !== undefined) {
          text = typeof body === 'string' ? body : JSON.stringify(body);
          headers['content-type'] = ropts.contentType ?? (method.toUpperCase() === 'PATCH' ? 'application/merge-patch+json' : 'application/json');
        }
        return httpRequest({ method: method.toUpperCase(), url: new URL(path, to), headers, body: text, ca: toCa, timeoutMs: ropts.timeoutMs });
      };
    const jsonFrom =
      (send: ReturnType<typeof requestTo>) =>
      async <T>(method: string, path: string, body?: unknown, token?: string, ropts?: RequestOptions): Promise<T> => {
        const r = await send(method, path, body, token, ropts);
      let parsed: unknown = r.text;
      if (r.text !== '' && (r.headers['content-type'] ?? '').includes('json')) {
        try {
          parsed = JSON.parse(r.text);
        } catch {
          // keep the text
        }
      }
      if (r.status < 200 || r.status > 299) throw new KubeApiError(method.toUpperCase(), path, r.status, parsed, r.text);
      return parsed as T;
    };
    const request = requestTo(server, ca);
    const requestJson = jsonFrom(request);

    const cluster: KubeCluster = {
      server,
      caPem: ca,
      caData: Buffer.from(ca).toString('base64'),
      caFile,
      adminToken,
      meshdToken,
      etcdUrl,
      dir,
      kubeconfig(token = meshdToken) {
        kubeconfigs += 1;
        const path = join(dir, `kubeconfig-${kubeconfigs}.yaml`);
        const user = token === adminToken ? 'admin' : token === meshdToken ? 'meshd' : `user-${kubeconfigs}`;
        const doc = {
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'meshd-test', cluster: { server, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
          users: [{ name: user, user: { token } }],
          contexts: [{ name: 'meshd-test', context: { cluster: 'meshd-test', user } }],
          'current-context': 'meshd-test',
        };
        writeFileSync(path, stringifyYaml(doc), { mode: 0o600 });
        return path;
      },
      request: requestJson,
      requestRaw: request,
      apply<T>(path: string, obj: unknown, aopts: ApplyOptions = {}) {
        const u = new URL(path, server);
        u.searchParams.set('fieldManager', aopts.fieldManager ?? 'meshd-test');
        if (aopts.force ?? true) u.searchParams.set('force', 'true');
        return requestJson<T>('PATCH', u.pathname + u.search, obj, aopts.token, { contentType: 'application/apply-patch+yaml' });
      },
      async createNamespace(name, labels) {
        await requestJson('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } });
        await requestJson('POST', `/api/v1/namespaces/${name}/serviceaccounts`, {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: { name: 'default', namespace: name },
        });
      },
      async stopApiserver(signal) {
        await stopProc(apiserver, 10_000, signal);
      },
      async startApiserver() {
        if (stopped) throw new Error('kube cluster already stopped');
        if (apiserver.child !== undefined) throw new Error('kube-apiserver is already running');
        spawnProc(apiserver);
        await waitApiserver();
      },
      async stopEtcd(signal) {
        await stopProc(etcd, 10_000, signal);
      },
      async startEtcd() {
        if (stopped) throw new Error('kube cluster already stopped');
        if (etcd.child !== undefined) throw new Error('etcd is already running');
        spawnProc(etcd);
        await waitEtcd();
        if (apiserver.child !== undefined) await waitApiserver();
      },
      waitReady: () => waitApiserver(),
      async startPeerApiserver() {
        const [port] = await distinctFreePorts(1);
        const peerServer = `https://127.0.0.1:${port}`;
        const peerCertDir = join(dir, `certs-peer-${port}`);
        const peer: Proc = {
          name: 'kube-apiserver-peer',
          bin: bins.kubeApiserver,
          log: new LogRing('kube-apiserver-peer'),
          args: () => apiserver.args().map((a) => (a.startsWith('--secure-port=') ? `--secure-port=${port}` : a.startsWith('--cert-dir=') ? `--cert-dir=${peerCertDir}` : a)),
        };
        procs.push(peer);
        spawnProc(peer);
        let peerCa: string | undefined;
        await waitFor(peer, 'ready (/readyz)', startTimeoutMs, async () => {
          const certFile = join(peerCertDir, 'apiserver.crt');
          if (peerCa === undefined) {
            if (!existsSync(certFile)) return false;
            peerCa = readFileSync(certFile, 'utf8');
          }
          const r = await requestTo(peerServer, peerCa)('GET', '/readyz');
          return r.status === 200;
        });
        return { server: peerServer, request: jsonFrom(requestTo(peerServer, peerCa!)), stop: () => stopProc(peer) };
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        // Apiservers (the first and any peers) before etcd, so etcd exits quickly.
        for (const p of procs.filter((x) => x !== etcd)) await stopProc(p);
        await stopProc(etcd);
        if (!keepDir) rmSync(dir, { recursive: true, force: true });
      },
      logs(lines = 200) {
        return procs.map((p) => `===== ${p.name} (last ${lines} lines)\n${p.log.tail(lines).join('\n')}`).join('\n');
      },
    };
    return cluster;
  } catch (err) {
    for (const p of [...procs].reverse()) await stopProc(p, 2000);
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
