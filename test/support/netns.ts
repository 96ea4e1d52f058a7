/**
 * Test fixture: a "pod" emulated with a Linux network namespace plus Istio-style
 * iptables traffic capture, so that end-to-end tests can exercise the sidecar
 * path (app -> Envoy on 15001, peer -> Envoy on 15006) on a single machine.
 *
 * Layout of one pod:
 *
 *   host netns                                  pod netns (meshd-<name>-<pid>)
 *   ----------                                  ------------------------------
 *   <hostVeth>  hostIp/30   <== veth pair ==>   eth0  podIp/30, default via hostIp
 *                                               lo    127.0.0.1
 *
 * Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking range), one /30 per pod.
 * Test traffic must never leave this machine, so two guards are installed:
 *   - inside the pod, a filter rule (chain MESHD_EGRESS_GUARD) rejects anything
 *     leaving eth0 for a destination outside 198.18.0.0/15, unless it was
 *     REDIRECTed (conntrack state DNAT) and therefore actually goes to loopback;
 *   - on the host, an `unreachable 198.18.0.0/15` route (less specific than every
 *     pod's connected /30) so that a stale or mistyped pod address is refused
 *     locally instead of going to the default gateway. It is left in place; it
 *     is harmless and shared by all pods and test processes.
 *
 * Findings on Debian bookworm (kernel 6.x), recorded here because they shaped the code:
 *   - Both iptables backends work inside a fresh netns (`iptables` -> iptables-nft via
 *     alternatives, and `iptables-legacy`), including `-m owner --uid-owner` and
 *     REDIRECT in the nat table. We use `iptables` (nf_tables) by default and fall
 *     back to `iptables-legacy`; MESHD_IPTABLES=<binary> forces one. The backend
 *     only matters inside the pod's own namespace, so it cannot clash with the host.
 *   - In filter OUTPUT, `-o` matches the interface chosen *before* nat OUTPUT
 *     rerouted the packet: a connection REDIRECTed to 127.0.0.1:15001 still matches
 *     `-o eth0` there. Hence the egress guard exempts `--ctstate DNAT`.
 *   - route_localnet is not needed: an OUTPUT REDIRECT rewrites the destination to
 *     127.0.0.1 for a locally generated packet, which is rerouted via lo and never
 *     "received" on a non-loopback interface. Inbound REDIRECT (PREROUTING) rewrites
 *     to the primary address of eth0 (the pod IP), so it needs nothing either.
 *   - rp_filter: the reverse path of every packet is the interface it came in on
 *     (connected /30 routes on both sides), so strict mode passes; nothing to change.
 *   - ip_forward: the global switch is never touched. Pod <-> host traffic is always
 *     addressed to a local address of the receiving namespace. For pod <-> pod traffic
 *     (through the host, like a cluster network) forwarding is enabled only on each
 *     pod's host veth (net.ipv4.conf.<hostVeth>.forwarding=1; IPv4 checks the flag
 *     of the *input* interface, so the host still forwards nothing that arrives on
 *     its real interfaces). Combined with the two guards above, forwarded packets can
 *     only reach another pod's /30. A host whose iptables FORWARD policy is DROP
 *     (e.g. with Docker installed) would block pod <-> pod traffic; pod <-> host works.
 *   - IPv6 link-local autoconfiguration is disabled on both veth ends
 *     (`addrgenmode none`) so the pair emits no DAD/router-solicitation chatter.
 *   - Deleting a netns only removes its name while processes still run inside it;
 *     the veth (and the host address) survive until the last one exits. So destroy()
 *     kills everything in the namespace (`ip netns pids`) and deletes the veth
 *     explicitly, and creation sweeps leftovers from crashed runs the same way.
 */
import { spawn as spawnChild, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';

export interface CreatePodOptions {
  /** Short logical name; used in the namespace name `meshd-<name>-<pid>`. */
  name: string;
  /** Address of the pod (eth0 inside the namespace). Allocated from 198.18.0.0/15 when omitted. */
  podIp?: string;
  /** Address of the host end of the veth pair; must be in the same /30 as podIp. */
  hostIp?: string;
  /** Uid whose traffic is not captured (Istio: 1337). Also used as gid for the owner match. */
  proxyUid: number;
  /** Redirect outbound TCP to 15001 (default true). */
  captureOutbound?: boolean;
  /** Redirect inbound TCP to 15006 (default true). */
  captureInbound?: boolean;
  /** Inbound destination ports never redirected (in addition to 22, 15008, 15020, 15021, 15090). */
  excludeInboundPorts?: number[];
  /** Outbound destination ports never redirected. */
  excludeOutboundPorts?: number[];
}

export interface PodProcessOptions {
  /** Run as this uid (via util-linux setpriv); default: root (uid 0), as the app container runs in this fixture. */
  uid?: number;
  /** Gid to run as; defaults to uid when uid is given. */
  gid?: number;
  /** Extra environment variables, merged over this process's environment. */
  env?: Record<string, string>;
}

export interface PodSpawnOptions extends PodProcessOptions {
  /**
   * stdio of the spawned program (default 'pipe'). With 'pipe' the caller must drain
   * stdout/stderr, or a chatty program (Envoy's logs) blocks once the pipe fills.
   */
  stdio?: 'pipe' | 'inherit' | 'ignore';
}

export interface PodExecOptions extends PodProcessOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** Kill the command (SIGKILL) after this long; default 30 s. */
  timeoutMs?: number;
}

export interface ExecResult {
  /** Exit code; 128 + signal number when killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface Pod {
  readonly name: string;
  /** Network namespace name, usable with `ip netns exec`. */
  readonly netns: string;
  readonly podIp: string;
  readonly hostIp: string;
  /** The pod's /30, e.g. "198.18.3.4/30". */
  readonly subnet: string;
  /** Host-side veth interface name. */
  readonly hostVeth: string;
  readonly proxyUid: number;
  /** The iptables binary used for the rules (e.g. "iptables" or "iptables-legacy"). */
  readonly iptablesBackend: string;
  /** Run a command to completion inside the pod's namespace. */
  exec(cmd: string[], opts?: PodExecOptions): Promise<ExecResult>;
  /** Start a long-running command inside the pod; it is killed by destroy(). */
  spawn(cmd: string[], opts?: PodSpawnOptions): ChildProcess;
  /** `iptables-save -t nat` output from inside the pod. */
  iptablesRules(): Promise<string>;
  /** Kill spawned processes and remove the namespace and veth pair. Idempotent. */
  destroy(): Promise<void>;
}

const PRECONDITION_MESSAGE = 'netns fixture needs root and iptables (run npm run provision)';

/** 198.18.0.0/15 as [network, prefix length]. */
const RANGE_BASE = ipToInt('198.18.0.0');
const RANGE_PREFIX = 15;
const RANGE_CIDR = '198.18.0.0/15';
const BLOCKS = 2 ** (32 - RANGE_PREFIX) / 4;

const INBOUND_ALWAYS_EXCLUDED = [22, 15008, 15090, 15021, 15020];
const OUTBOUND_PORT = 15001;
const INBOUND_PORT = 15006;

const livePods = new Map<string, PodImpl>();
let podCounter = 0;
let iptablesCandidatesCache: string[] | undefined;

// ---------------------------------------------------------------------------
// small helpers

function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`not an IPv4 address: ${ip}`);
    n = n * 256 + Number(p);
  }
  return n;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function inRange(n: number): boolean {
  return Math.floor(n / 2 ** (32 - RANGE_PREFIX)) === Math.floor(RANGE_BASE / 2 ** (32 - RANGE_PREFIX));
}

interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

function signalCode(signal: NodeJS.Signals | null): number {
  if (!signal) return 1;
  const num = (osConstants.signals as Record<string, number | undefined>)[signal];
  return 128 + (num ?? 0);
}

/** Run a program to completion; never rejects except when it cannot be started. */
function run(file: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      stderr += `\n[netns fixture] killed after ${timeoutMs} ms: ${file} ${args.join(' ')}`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signalCode(signal), stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // EPIPE if the program ignores stdin
    child.stdin.end(opts.input ?? '');
  });
}

async function runOk(file: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) {
    throw new Error(`netns fixture: \`${file} ${args.join(' ')}\` exited ${r.code}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** Run and ignore failures (cleanup paths). */
async function runQuiet(file: string, args: string[]): Promise<void> {
  try {
    await run(file, args, { timeoutMs: 10_000 });
  } catch {
    // not installed / cannot start: nothing to clean with it
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function saveCommandFor(iptables: string): string {
  return `${iptables}-save`;
}

function restoreCommandFor(iptables: string): string {
  return `${iptables}-restore`;
}

// ---------------------------------------------------------------------------
// preconditions

async function commandWorks(file: string, args: string[]): Promise<boolean> {
  try {
    return (await run(file, args, { timeoutMs: 10_000 })).code === 0;
  } catch {
    return false;
  }
}

async function checkPreconditions(): Promise<string[]> {
  const problems: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) problems.push('not running as root');
  if (!(await commandWorks('ip', ['-V']))) problems.push('`ip` (iproute2) not found');
  if (!(await commandWorks('setpriv', ['--version']))) problems.push('`setpriv` (util-linux) not found');

  if (!iptablesCandidatesCache) {
    const wanted = process.env['MESHD_IPTABLES'];
    const names = wanted ? [wanted] : ['iptables', 'iptables-legacy'];
    const found: string[] = [];
    for (const name of names) {
      if (
        (await commandWorks(name, ['--version'])) &&
        (await commandWorks(restoreCommandFor(name), ['--version'])) &&
        (await commandWorks(saveCommandFor(name), ['--version']))
      ) {
        found.push(name);
      }
    }
    if (found.length > 0) iptablesCandidatesCache = found;
  }
  if (!iptablesCandidatesCache) problems.push('`iptables`, `iptables-restore` and `iptables-save` not found');

  if (problems.length > 0) throw new Error(`${PRECONDITION_MESSAGE}: ${problems.join('; ')}`);
  return iptablesCandidatesCache!;
}

// ---------------------------------------------------------------------------
// host state: namespaces, addresses, the guard route

async function listNetns(): Promise<string[]> {
  const out = await runOk('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** Kill every process in a namespace, delete its veth, then the namespace. Ignores errors. */
async function removeNetns(netns: string, hostVeth?: string): Promise<void> {
  try {
    const r = await run('ip', ['netns', 'pids', netns], { timeoutMs: 10_000 });
    for (const line of r.stdout.split('\n')) {
      const pid = Number(line.trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  } catch {
    // ip missing: nothing we can do
  }
  // Deleting one end of a veth pair deletes both, even while the namespace lingers.
  await runQuiet('ip', ['-n', netns, 'link', 'del', 'eth0']);
  if (hostVeth) await runQuiet('ip', ['link', 'del', hostVeth]);
  await runQuiet('ip', ['netns', 'del', netns]);
}

/**
 * Remove namespaces left by crashed runs: `meshd-<anything>-<pid>` whose pid is dead,
 * and the exact name we are about to use (pid reuse), unless a live pod of ours owns it.
 */
async function sweepLeftovers(wantedNetns: string): Promise<void> {
  for (const ns of await listNetns()) {
    const m = /^meshd-.+-(\d+)$/.exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    const ours = pid === process.pid;
    const stale = ours ? !livePods.has(ns) && ns === wantedNetns : !pidAlive(pid);
    if (stale) await removeNetns(ns);
  }
}

async function hostAddresses(): Promise<number[]> {
  const out = await runOk('ip', ['-4', '-o', 'addr', 'show']);
  const addrs: number[] = [];
  for (const m of out.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)) addrs.push(ipToInt(m[1]!));
  return addrs;
}

async function ensureGuardRoute(): Promise<void> {
  const out = await runOk('ip', ['-4', 'route', 'show', 'exact', RANGE_CIDR]);
  if (out.trim().length > 0) return;
  const r = await run('ip', ['-4', 'route', 'add', 'unreachable', RANGE_CIDR]);
  // A concurrent test process may have added it between the check and the add.
  if (r.code !== 0 && !/File exists/i.test(r.stderr)) {
    throw new Error(`netns fixture: cannot add guard route ${RANGE_CIDR}: ${r.stderr.trim()}`);
  }
}

interface Addresses {
  podIp: string;
  hostIp: string;
  subnet: string;
}

function blockOf(n: number): number {
  return Math.floor(n / 4) * 4;
}

async function chooseAddresses(opts: CreatePodOptions): Promise<Addresses> {
  const used = await hostAddresses();
  const blockFree = (block: number): boolean => !used.some((a) => blockOf(a) === block);

  if (opts.podIp !== undefined || opts.hostIp !== undefined) {
    if (opts.podIp === undefined || opts.hostIp === undefined) {
      throw new Error('netns fixture: give both podIp and hostIp, or neither');
    }
    const pod = ipToInt(opts.podIp);
    const host = ipToInt(opts.hostIp);
    const block = blockOf(pod);
    const usable = (n: number): boolean => n % 4 === 1 || n % 4 === 2;
    if (!inRange(pod) || !inRange(host) || blockOf(host) !== block || pod === host || !usable(pod) || !usable(host)) {
      throw new Error(
        `netns fixture: podIp ${opts.podIp} and hostIp ${opts.hostIp} must be the two usable addresses ` +
          `of one /30 inside ${RANGE_CIDR} (e.g. 198.18.0.2 and 198.18.0.1)`,
      );
    }
    if (!blockFree(block)) {
      throw new Error(`netns fixture: ${intToIp(block)}/30 is already in use on this host`);
    }
    return { podIp: opts.podIp, hostIp: opts.hostIp, subnet: `${intToIp(block)}/30` };
  }

  // Start at a pid-dependent offset so parallel test processes rarely race for a block.
  const start = ((process.pid % 4096) * 8 + podCounter) % BLOCKS;
  for (let i = 0; i < BLOCKS; i++) {
    const block = RANGE_BASE + ((start + i) % BLOCKS) * 4;
    if (blockFree(block)) {
      return { podIp: intToIp(block + 2), hostIp: intToIp(block + 1), subnet: `${intToIp(block)}/30` };
    }
  }
  throw new Error(`netns fixture: no free /30 left in ${RANGE_CIDR}`);
}

// ---------------------------------------------------------------------------
// iptables rules

function validPort(p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`netns fixture: bad port ${p}`);
  return p;
}

/** iptables-restore input reproducing the shape of istio-init's NAT rules. */
export function istioRules(opts: {
  proxyUid: number;
  captureOutbound?: boolean;
  captureInbound?: boolean;
  excludeInboundPorts?: number[];
  excludeOutboundPorts?: number[];
}): string {
  const uid = opts.proxyUid;
  if (!Number.isInteger(uid) || uid < 0) throw new Error(`netns fixture: bad proxyUid ${uid}`);
  const inboundExcluded = [...new Set([...INBOUND_ALWAYS_EXCLUDED, ...(opts.excludeInboundPorts ?? [])].map(validPort))];
  const outboundExcluded = [...new Set((opts.excludeOutboundPorts ?? []).map(validPort))];

  const nat: string[] = [
    '*nat',
    ':ISTIO_INBOUND - [0:0]',
    ':ISTIO_IN_REDIRECT - [0:0]',
    ':ISTIO_OUTPUT - [0:0]',
    ':ISTIO_REDIRECT - [0:0]',
  ];
  if (opts.captureInbound ?? true) nat.push('-A PREROUTING -p tcp -j ISTIO_INBOUND');
  if (opts.captureOutbound ?? true) nat.push('-A OUTPUT -p tcp -j ISTIO_OUTPUT');
  for (const p of inboundExcluded) nat.push(`-A ISTIO_INBOUND -p tcp --dport ${p} -j RETURN`);
  nat.push(
    '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
    `-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${INBOUND_PORT}`,
    // Envoy's inbound passthrough connections originate from 127.0.0.6 over lo.
    '-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
    // The proxy's own connections (upstreams, xDS) are never captured.
    `-A ISTIO_OUTPUT -m owner --uid-owner ${uid} -j RETURN`,
    `-A ISTIO_OUTPUT -m owner --gid-owner ${uid} -j RETURN`,
    // Loopback traffic is left alone.
    '-A ISTIO_OUTPUT -o lo -j RETURN',
    '-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
  );
  for (const p of outboundExcluded) nat.push(`-A ISTIO_OUTPUT -p tcp --dport ${p} -j RETURN`);
  nat.push('-A ISTIO_OUTPUT -j ISTIO_REDIRECT', `-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports ${OUTBOUND_PORT}`, 'COMMIT');

  const filter = [
    '*filter',
    ':MESHD_EGRESS_GUARD - [0:0]',
    '-A OUTPUT -o eth0 -j MESHD_EGRESS_GUARD',
    `-A MESHD_EGRESS_GUARD -d ${RANGE_CIDR} -j RETURN`,
    // REDIRECTed packets still show `-o eth0` here (see header comment) but go to lo.
    '-A MESHD_EGRESS_GUARD -m conntrack --ctstate DNAT -j RETURN',
    '-A MESHD_EGRESS_GUARD -j REJECT --reject-with icmp-net-prohibited',
    'COMMIT',
  ];
  return [...nat, ...filter, ''].join('\n');
}

// ---------------------------------------------------------------------------
// the pod

function wrapCommand(netns: string, cmd: string[], opts: PodProcessOptions): string[] {
  if (cmd.length === 0) throw new Error('netns fixture: empty command');
  const args = ['netns', 'exec', netns];
  if (opts.uid !== undefined || opts.gid !== undefined) {
    const uid = opts.uid ?? 0;
    const gid = opts.gid ?? uid;
    args.push('setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--');
  }
  args.push(...cmd);
  return args;
}

function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return extra ? { ...process.env, ...extra } : process.env;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child) || child.pid === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

class PodImpl implements Pod {
  readonly children = new Set<ChildProcess>();
  private destroying: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly netns: string,
    readonly podIp: string,
    readonly hostIp: string,
    readonly subnet: string,
    readonly hostVeth: string,
    readonly proxyUid: number,
    readonly iptablesBackend: string,
  ) {}

  exec(cmd: string[], opts: PodExecOptions = {}): Promise<ExecResult> {
    if (this.destroying) return Promise.reject(new Error(`pod ${this.name} is destroyed`));
    const runOpts: RunOptions = { env: childEnv(opts.env) };
    if (opts.input !== undefined) runOpts.input = opts.input;
    if (opts.timeoutMs !== undefined) runOpts.timeoutMs = opts.timeoutMs;
    return run('ip', wrapCommand(this.netns, cmd, opts), runOpts);
  }

  spawn(cmd: string[], opts: PodSpawnOptions = {}): ChildProcess {
    if (this.destroying) throw new Error(`pod ${this.name} is destroyed`);
    // `ip netns exec` and setpriv both exec(), so the child pid is the program itself;
    // its own process group lets destroy() reach any grandchildren too.
    const child = spawnChild('ip', wrapCommand(this.netns, cmd, opts), {
      stdio: opts.stdio ?? 'pipe',
      env: childEnv(opts.env),
      detached: true,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    child.on('error', () => this.children.delete(child));
    return child;
  }

  iptablesRules(): Promise<string> {
    return runOk('ip', ['netns', 'exec', this.netns, saveCommandFor(this.iptablesBackend), '-t', 'nat']);
  }

  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const children = [...this.children];
    for (const c of children) killGroup(c, 'SIGTERM');
    const done = await Promise.all(children.map((c) => waitExit(c, 2000)));
    children.forEach((c, i) => {
      if (!done[i]) killGroup(c, 'SIGKILL');
    });
    await Promise.all(children.map((c) => waitExit(c, 2000)));
    await removeNetns(this.netns, this.hostVeth);
    livePods.delete(this.netns);
  }
}

function sanitizeName(name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 24);
  if (s.length === 0) throw new Error(`netns fixture: unusable pod name ${JSON.stringify(name)}`);
  return s;
}

/** Create a network namespace "pod" with Istio-style traffic capture. See the header comment. */
export async function createPod(opts: CreatePodOptions): Promise<Pod> {
  const candidates = await checkPreconditions();
  const netns = `meshd-${sanitizeName(opts.name)}-${process.pid}`;
  if (livePods.has(netns)) throw new Error(`netns fixture: pod ${opts.name} already exists in this process`);

  await sweepLeftovers(netns);
  await ensureGuardRoute();
  const addrs = await chooseAddresses(opts);
  const index = podCounter++;
  // Interface names are limited to 15 characters.
  const tag = `${process.pid.toString(36)}${index.toString(36)}`;
  const hostVeth = `mdh${tag}`.slice(0, 15);
  const tmpPeer = `mdp${tag}`.slice(0, 15);
  const rules = istioRules(opts);

  let created = false;
  try {
    await runQuiet('ip', ['link', 'del', hostVeth]);
    await runOk('ip', ['netns', 'add', netns]);
    created = true;
    await runOk('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', tmpPeer, 'netns', netns]);
    // host end
    await runOk('ip', ['link', 'set', hostVeth, 'addrgenmode', 'none']);
    await runOk('ip', ['addr', 'add', `${addrs.hostIp}/30`, 'dev', hostVeth]);
    await runOk('ip', ['link', 'set', hostVeth, 'up']);
    await writeFile(`/proc/sys/net/ipv4/conf/${hostVeth}/forwarding`, '1');
    // pod end
    const inPod = (...args: string[]): Promise<string> => runOk('ip', ['-n', netns, ...args]);
    await inPod('link', 'set', tmpPeer, 'name', 'eth0');
    await inPod('link', 'set', 'eth0', 'addrgenmode', 'none');
    await inPod('addr', 'add', `${addrs.podIp}/30`, 'dev', 'eth0');
    await inPod('link', 'set', 'lo', 'up');
    await inPod('link', 'set', 'eth0', 'up');
    await inPod('route', 'add', 'default', 'via', addrs.hostIp, 'dev', 'eth0');

    let backend: string | undefined;
    const errors: string[] = [];
    for (const candidate of candidates) {
      const r = await run('ip', ['netns', 'exec', netns, restoreCommandFor(candidate)], { input: rules });
      if (r.code === 0) {
        backend = candidate;
        break;
      }
      errors.push(`${candidate}: ${r.stderr.trim()}`);
    }
    if (!backend) throw new Error(`netns fixture: cannot install iptables rules in ${netns}: ${errors.join(' | ')}`);

    const pod = new PodImpl(
      opts.name,
      netns,
      addrs.podIp,
      addrs.hostIp,
      addrs.subnet,
      hostVeth,
      opts.proxyUid,
      backend,
    );
    livePods.set(netns, pod);
    return pod;
  } catch (err) {
    if (created) await removeNetns(netns, hostVeth);
    else await runQuiet('ip', ['link', 'del', hostVeth]);
    throw err;
  }
}

/** Destroy every pod created by this process (for `after()` hooks). */
export async function destroyAllPods(): Promise<void> {
  await Promise.all([...livePods.values()].map((p) => p.destroy()));
}

// Last-resort cleanup if a test process exits without calling destroy(): synchronous only.
process.on('exit', () => {
  for (const pod of livePods.values()) {
    for (const c of pod.children) killGroup(c, 'SIGKILL');
    spawnSync('ip', ['link', 'del', pod.hostVeth], { stdio: 'ignore' });
    spawnSync('ip', ['netns', 'del', pod.netns], { stdio: 'ignore' });
  }
});
