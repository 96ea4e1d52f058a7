// Test fixture for Istio's real sidecar agent, `pilot-agent proxy sidecar` (built from the Go
// module proxy by scripts/provision-pilot-agent.sh), run outside Kubernetes and outside a
// container: each agent runs in its own network-namespace "pod" (test/support/netns.ts, with
// istio-init's iptables capture) as uid 1337, from a temporary working directory laid out
// like the volumes of an injected pod:
//
//   var/lib/istio/envoy/envoy_bootstrap_tmpl.json   the bootstrap template (from the module)
//   var/run/secrets/istio/root-cert.pem             the mesh root (meshd's /debug/caz)
//   var/run/secrets/tokens/istio-token              a TokenRequest token, audience istio-ca
//   etc/istio/proxy/                                where the agent writes envoy-rev.json and
//                                                   its XDS socket
//   etc/istio/pod/labels                            the downward-API labels file
//
// Why a network namespace: the agent and its Envoy bind fixed ports. PROXY_CONFIG moves the
// admin port (proxyAdminPort, 15000) and the agent's status port (statusPort, 15020), and
// the env vars ENVOY_STATUS_PORT (15021) and ENVOY_PROMETHEUS_PORT (15090) move two bootstrap
// listeners, but the listeners the control plane sends (15001 outbound, 15006 inbound, with
// interception REDIRECT) are fixed, as are the capture rules that point at them. In its own
// namespace every agent keeps Istio's defaults, and traffic is captured as in a real pod.
//
// Reaching the control plane: the agent talks plaintext to CA_ADDR only when it ends in
// ":15010" (any other port means TLS, checked against the root cert and the host name). meshd
// listens on a random port, so inside the pod a DNAT rule maps <hostIp>:15010 to it, as
// kube-proxy maps istiod's Service port to its pod; both discoveryAddress and CA_ADDR are
// <hostIp>:15010. meshd must therefore listen on an address the pod reaches (0.0.0.0, or the
// pod's host address).
//
// Envoy's admin API binds 127.0.0.1:15000 inside the pod; admin() reads it with curl run in the
// namespace. The agent's readiness (/healthz/ready on 15021, Envoy's listener in front of the
// agent's 15020) is reachable from the host at <podIp>:15021.
import type { ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants as fsConstants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { envoyForProxyUid, httpGet, parseStats, type HttpResponse } from './envoy.js';
import type { KubeCluster } from './kube.js';
import type { MeshdProcess } from './meshd.js';
import { createPod, type Pod } from './netns.js';

/** The istio.io/istio module version scripts/provision-pilot-agent.sh builds. */
export const ISTIO_MODULE_VERSION = 'v0.0.0-20260827124520-eed52ebb66ad';
/** Istio's proxy uid: its traffic is not captured. */
export const ISTIO_PROXY_UID = 1337;
/** The ports of an injected pod, all at Istio's defaults inside the namespace. */
export const AGENT_PORTS = { admin: 15000, status: 15020, envoyStatus: 15021, prometheus: 15090, outbound: 15001, inbound: 15006, controlPlane: 15010 } as const;

const PROVISION_HINT = 'run `npm run provision` (scripts/provision.sh, which runs scripts/provision-pilot-agent.sh) to build it';

// ---------------------------------------------------------------------------------------------
// The binaries

export interface PilotAgentBinaries {
  pilotAgent: string;
  bootstrapTemplate: string;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * pilot-agent and its bootstrap template: $MESHD_PILOT_AGENT / $MESHD_ENVOY_BOOTSTRAP_TEMPLATE
 * when set, else the paths scripts/provision-pilot-agent.sh wrote to ~/.cache/meshd/pilot-agent-paths.
 * Throws, saying how to provision them, when either is missing.
 */
export function pilotAgentBinaries(): PilotAgentBinaries {
  const pathsFile = join(homedir(), '.cache', 'meshd', 'pilot-agent-paths');
  const recorded = new Map<string, string>();
  if (existsSync(pathsFile)) {
    for (const line of readFileSync(pathsFile, 'utf8').split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) recorded.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
  }
  const pilotAgent = process.env.MESHD_PILOT_AGENT || recorded.get('PILOT_AGENT');
  const bootstrapTemplate = process.env.MESHD_ENVOY_BOOTSTRAP_TEMPLATE || recorded.get('ENVOY_BOOTSTRAP_TEMPLATE');
  if (pilotAgent === undefined || !isExecutable(pilotAgent)) {
    throw new Error(`pilot-agent (istio.io/istio@${ISTIO_MODULE_VERSION}) not found (looked at $MESHD_PILOT_AGENT and PILOT_AGENT= in ${pathsFile}${pilotAgent === undefined ? '' : `: ${pilotAgent} is not executable`}); ${PROVISION_HINT}`);
  }
  if (bootstrapTemplate === undefined || !existsSync(bootstrapTemplate)) {
    throw new Error(`the Envoy bootstrap template for pilot-agent not found (looked at $MESHD_ENVOY_BOOTSTRAP_TEMPLATE and ENVOY_BOOTSTRAP_TEMPLATE= in ${pathsFile}); ${PROVISION_HINT}`);
  }
  return { pilotAgent, bootstrapTemplate };
}

/** uid 1337 cannot read under /root: give it its own copy of pilot-agent (once per build). */
export function pilotAgentForProxyUid(src: string): string {
  const dir = join(tmpdir(), 'meshd-pilot-agent-bin');
  const dst = join(dir, `pilot-agent-${ISTIO_MODULE_VERSION}`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const s = statSync(src);
  if (!existsSync(dst) || statSync(dst).size !== s.size || statSync(dst).mtimeMs < s.mtimeMs) {
    const tmp = `${dst}.tmp.${process.pid}`;
    copyFileSync(src, tmp);
    chmodSync(tmp, 0o755);
    renameSync(tmp, dst);
  }
  return dst;
}

// ---------------------------------------------------------------------------------------------
// What an injected pod is given

/** meshd's root certificate (PEM), from /debug/caz on its monitoring port. */
export async function meshdRootCert(meshd: MeshdProcess): Promise<string> {
  const r = await meshd.monitoring('/debug/caz');
  if (r.status !== 200) throw new Error(`meshd /debug/caz: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
  const pem = (JSON.parse(r.body) as { rootCertPem?: unknown }).rootCertPem;
  if (typeof pem !== 'string' || !pem.includes('BEGIN CERTIFICATE')) throw new Error(`meshd /debug/caz has no rootCertPem: ${r.body.slice(0, 300)}`);
  return pem;
}

/** A projected service-account token as the injector mounts it: TokenRequest, audience istio-ca. */
export async function istioCaToken(kube: KubeCluster, namespace: string, serviceAccount: string, expirationSeconds = 3600): Promise<string> {
  const r = await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { audiences: ['istio-ca'], expirationSeconds },
  });
  return r.status.token;
}

// ---------------------------------------------------------------------------------------------
// The agent

export interface PilotAgentOptions {
  /** Short name of the network-namespace pod; also the default pod name. */
  name: string;
  namespace: string;
  serviceAccount: string;
  /** POD_NAME; default `name`. */
  podName?: string;
  /** The pod's labels (written to etc/istio/pod/labels, as the downward API would). */
  labels?: Record<string, string>;
  /** meshd's plaintext gRPC (ADS + CA) port on the host; meshd must listen on 0.0.0.0 or the pod's host address. */
  controlPlanePort: number;
  /** The mesh root (meshdRootCert()). */
  rootCertPem: string;
  /** The pod's istio-token (istioCaToken()). */
  token: string;
  /** Extra PROXY_CONFIG fields, merged over the fixture's. */
  proxyConfig?: Record<string, unknown>;
  /** Extra environment variables for the agent, merged over the fixture's. */
  env?: Record<string, string>;
  /** Extra arguments after `proxy sidecar`. */
  args?: string[];
  /** Envoy's log level (the agent's --proxyLogLevel); default warning. */
  proxyLogLevel?: string;
  /** Keep the working directory after destroy(), for debugging. Also $MESHD_PILOT_AGENT_KEEP=1. */
  keepDir?: boolean;
}

export interface PilotAgent {
  readonly pod: Pod;
  readonly podIp: string;
  readonly hostIp: string;
  readonly podName: string;
  readonly namespace: string;
  /** The temporary working directory (the agent's cwd). */
  readonly workDir: string;
  /** discoveryAddress and CA_ADDR as the agent sees them (<hostIp>:15010, DNATed to meshd). */
  readonly controlPlaneAddress: string;
  /** Envoy's admin API as seen inside the pod (127.0.0.1:15000); read it with admin(). */
  readonly adminAddress: string;
  /** Envoy's node id as the agent builds it. */
  readonly nodeId: string;
  /** Starts `pilot-agent proxy sidecar` in the pod. */
  start(): Promise<void>;
  /** True while the agent process runs. */
  running(): boolean;
  /** GET on Envoy's admin API, from inside the pod; rejects on a non-2xx status. */
  admin(path: string): Promise<string>;
  adminJson<T = unknown>(path: string): Promise<T>;
  /** Envoy's /stats (optionally `?filter=`) parsed into counters and gauges. */
  stats(filter?: string): Promise<Map<string, number>>;
  /** GET <podIp>:15021/healthz/ready from the host, as the kubelet's readiness probe does. */
  readiness(): Promise<HttpResponse>;
  /** Waits until readiness() answers 200; fails early, with the logs, when the agent exits. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The last `lines` lines the agent and its Envoy printed (default 200). */
  logs(lines?: number): string;
  /** SIGTERM (then SIGKILL after 10 s) and wait for the agent to exit. */
  stop(): Promise<void>;
  /** stop(), then remove the pod and the working directory. Idempotent. */
  destroy(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function writeOwned(path: string, text: string, mode: number, uid: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode });
  chownSync(path, uid, uid);
}

/** chown -R, for the directories the fixture made (the agent writes into several). */
function chownTree(root: string, rel: string[], uid: number): void {
  chownSync(root, uid, uid);
  for (const r of rel) {
    let p = root;
    for (const part of r.split('/')) {
      p = join(p, part);
      chownSync(p, uid, uid);
    }
  }
}

/** The downward API's labels file format: key="value" lines. */
function downwardApiFile(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join('\n');
}

/**
 * Creates the pod (network namespace with Istio's capture) and the agent's working directory;
 * start() runs the agent. The pod's address is known before the agent starts, so a test can
 * first register the Pod (status.podIP) with the apiserver.
 */
export async function createPilotAgent(opts: PilotAgentOptions): Promise<PilotAgent> {
  const bins = pilotAgentBinaries();
  const agentBin = pilotAgentForProxyUid(bins.pilotAgent);
  const envoyBin = envoyForProxyUid();
  const uid = ISTIO_PROXY_UID;
  const podName = opts.podName ?? opts.name;
  const keepDir = opts.keepDir === true || process.env.MESHD_PILOT_AGENT_KEEP === '1';

  const pod = await createPod({ name: opts.name, proxyUid: uid });
  const workDir = mkdtempSync(join(tmpdir(), 'meshd-pilot-agent-'));
  try {
    const dirs = ['var/lib/istio/envoy', 'var/run/secrets/istio', 'var/run/secrets/tokens', 'var/run/secrets/workload-spiffe-uds', 'var/run/secrets/workload-spiffe-credentials', 'etc/istio/proxy', 'etc/istio/pod'];
    for (const d of dirs) mkdirSync(join(workDir, d), { recursive: true, mode: 0o755 });
    chmodSync(workDir, 0o755);
    chownTree(workDir, dirs, uid);
    writeOwned(join(workDir, 'var/lib/istio/envoy/envoy_bootstrap_tmpl.json'), readFileSync(bins.bootstrapTemplate, 'utf8'), 0o644, uid);
    writeOwned(join(workDir, 'var/run/secrets/istio/root-cert.pem'), opts.rootCertPem, 0o644, uid);
    writeOwned(join(workDir, 'var/run/secrets/tokens/istio-token'), opts.token, 0o600, uid);
    writeOwned(join(workDir, 'etc/istio/pod/labels'), downwardApiFile(opts.labels ?? {}), 0o644, uid);
    writeOwned(join(workDir, 'etc/istio/pod/annotations'), downwardApiFile({ 'sidecar.istio.io/status': '{"containers":["istio-proxy"]}' }), 0o644, uid);

    // istiod's Service port 15010, as kube-proxy would map it: to meshd's real port on the host.
    if (opts.controlPlanePort !== AGENT_PORTS.controlPlane) {
      const r = await pod.exec([pod.iptablesBackend, '-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-d', `${pod.hostIp}/32`, '--dport', String(AGENT_PORTS.controlPlane), '-j', 'DNAT', '--to-destination', `${pod.hostIp}:${opts.controlPlanePort}`]);
      if (r.code !== 0) throw new Error(`pilot-agent fixture: cannot add the control-plane DNAT rule in ${pod.netns}: ${r.stderr.trim()}`);
    }
  } catch (err) {
    await pod.destroy();
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }

  const controlPlaneAddress = `${pod.hostIp}:${AGENT_PORTS.controlPlane}`;
  const proxyConfig = {
    discoveryAddress: controlPlaneAddress,
    controlPlaneAuthPolicy: 'NONE',
    binaryPath: envoyBin,
    proxyAdminPort: AGENT_PORTS.admin,
    statusPort: AGENT_PORTS.status,
    concurrency: 1,
    drainDuration: '1s',
    terminationDrainDuration: '0s',
    // Istio's bootstrap keeps only a few stats (stats_matcher); a test needs every xDS
    // rejection (RDS, EDS and SDS ones are per resource) and the agent's SDS cluster.
    proxyStatsMatcher: { inclusionSuffixes: ['update_rejected', 'update_success', 'update_failure'], inclusionPrefixes: ['cluster.sds-grpc;.', 'sds.'] },
    ...opts.proxyConfig,
  };
  const env: Record<string, string> = {
    PROXY_CONFIG: JSON.stringify(proxyConfig),
    CA_ADDR: controlPlaneAddress,
    PILOT_CERT_PROVIDER: 'istiod',
    POD_NAME: podName,
    POD_NAMESPACE: opts.namespace,
    INSTANCE_IP: pod.podIp,
    SERVICE_ACCOUNT: opts.serviceAccount,
    HOST_IP: pod.hostIp,
    ISTIO_META_CLUSTER_ID: 'Kubernetes',
    ISTIO_META_INTERCEPTION_MODE: 'REDIRECT',
    ISTIO_META_WORKLOAD_NAME: podName,
    ISTIO_META_OWNER: `kubernetes://apis/v1/namespaces/${opts.namespace}/pods/${podName}`,
    ISTIO_META_MESH_ID: 'cluster.local',
    ISTIO_META_APP_CONTAINERS: 'app',
    TRUST_DOMAIN: 'cluster.local',
    ENVOY_STATUS_PORT: String(AGENT_PORTS.envoyStatus),
    ENVOY_PROMETHEUS_PORT: String(AGENT_PORTS.prometheus),
    // Leave the host's HOME (/root, unreadable for uid 1337) out of the agent's way.
    HOME: workDir,
    ...opts.env,
  };

  const lines: string[] = [];
  let partial = '';
  const note = (line: string): void => {
    lines.push(line);
    if (lines.length > 5000) lines.splice(0, lines.length - 5000);
  };
  const onData = (chunk: Buffer): void => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) note(l);
  };
  let child: ChildProcess | undefined;
  let exited: Promise<void> | undefined;
  let destroyed: Promise<void> | undefined;

  const logs = (n = 200): string => [...lines, ...(partial === '' ? [] : [partial])].slice(-n).join('\n');

  const admin = async (path: string): Promise<string> => {
    const r = await pod.exec(['curl', '-sS', '--max-time', '20', '-w', '\n%{http_code}', `http://127.0.0.1:${AGENT_PORTS.admin}${path}`], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`Envoy admin ${path} (in ${pod.netns}): curl exited ${r.code}: ${r.stderr.trim()}`);
    const nl = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(nl + 1));
    const body = r.stdout.slice(0, nl);
    if (status < 200 || status >= 300) throw new Error(`Envoy admin ${path}: HTTP ${status}: ${body.slice(0, 300)}`);
    return body;
  };

  const readiness = (): Promise<HttpResponse> => httpGet(`http://${pod.podIp}:${AGENT_PORTS.envoyStatus}/healthz/ready`, { timeoutMs: 2000 });

  const agent: PilotAgent = {
    pod,
    podIp: pod.podIp,
    hostIp: pod.hostIp,
    podName,
    namespace: opts.namespace,
    workDir,
    controlPlaneAddress,
    adminAddress: `127.0.0.1:${AGENT_PORTS.admin}`,
    nodeId: `sidecar~${pod.podIp}~${podName}.${opts.namespace}~${opts.namespace}.svc.cluster.local`,
    async start() {
      if (child !== undefined) throw new Error('pilot-agent fixture: already started');
      const cmd = ['env', '-C', workDir, agentBin, 'proxy', 'sidecar', '--proxyLogLevel', opts.proxyLogLevel ?? 'warning', ...(opts.args ?? [])];
      note(`--- starting (in ${pod.netns}, uid ${uid}, cwd ${workDir}): ${cmd.slice(3).join(' ')}`);
      const c = pod.spawn(cmd, { uid, env });
      child = c;
      c.stdout!.on('data', onData);
      c.stderr!.on('data', onData);
      exited = new Promise<void>((resolve) => {
        c.once('exit', (code, signal) => {
          note(`--- pilot-agent exited (${signal ?? `code ${code}`})`);
          resolve();
        });
        c.once('error', (err) => {
          note(`--- pilot-agent failed to start: ${err.message}`);
          resolve();
        });
      });
      await sleep(0);
    },
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    admin,
    adminJson: async <T>(path: string): Promise<T> => JSON.parse(await admin(path)) as T,
    stats: async (filter?: string) => parseStats(await admin(`/stats${filter === undefined ? '' : `?filter=${encodeURIComponent(filter)}`}`)),
    readiness,
    async waitReady(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last: string;
      for (;;) {
        if (!agent.running()) throw new Error(`pilot-agent exited before it was ready; last log lines:\n${logs(60)}`);
        try {
          const r = await readiness();
          if (r.status === 200) return;
          last = `HTTP ${r.status}: ${r.body.trim().slice(0, 300)}`;
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline) throw new Error(`pilot-agent: not ready after ${timeoutMs} ms (last: ${last}); last log lines:\n${logs(60)}`);
        await sleep(250);
      }
    },
    logs,
    async stop() {
      const c = child;
      if (c === undefined || !agent.running()) return;
      note('--- stopping pilot-agent with SIGTERM');
      // The agent and Envoy share the process group pod.spawn() made.
      try {
        process.kill(-c.pid!, 'SIGTERM');
      } catch {
        c.kill('SIGTERM');
      }
      const killer = setTimeout(() => {
        try {
          process.kill(-c.pid!, 'SIGKILL');
        } catch {
          c.kill('SIGKILL');
        }
      }, 10_000);
      await exited;
      clearTimeout(killer);
    },
    destroy() {
      destroyed ??= (async () => {
        await agent.stop();
        await pod.destroy();
        if (!keepDir) rmSync(workDir, { recursive: true, force: true });
      })();
      return destroyed;
    },
  };
  return agent;
}
