// A kubelet's part for one Pod stored in the test apiserver, and nothing more: it takes the Pod
// as the apiserver holds it (after admission, so with whatever a webhook injected), binds it to
// a node, gives it a sandbox (a network-namespace "pod", test/support/netns.ts, without the
// fixture's own capture rules), fills its volumes, runs its init containers to completion in
// order, then starts its containers with their command, args and env as the spec says
// (downward-API values filled in, $(VAR) expanded), probes them, and writes the Pod's status.
// No container runtime runs: a container is a process in the pod's network namespace, as the
// spec's uid/gid, with a clean environment, whose working directory is the pod's "root"
// (a temporary directory) and whose volumes are files under that root at their mountPath:
//
//   <root>/var/run/secrets/tokens/istio-token      projected serviceAccountToken (TokenRequest,
//                                                  the volume's audience, bound to the Pod)
//   <root>/var/run/secrets/istio/root-cert.pem     configMap istio-ca-root-cert
//   <root>/etc/istio/pod/labels                    downwardAPI
//   <root>/etc/istio/proxy/                        emptyDir (mode 0777)
//
// Programs that read their files relative to their working directory (Istio's pilot-agent and
// the bootstrap it writes for Envoy) see the volumes where a container would. Absolute paths
// that a container's command or args name under one of its mountPaths are rewritten to the
// same path under the root (a container's view of its mounts, without a mount namespace).
//
// What an image would hold comes from `images`: its entrypoint (used when a container has no
// `command`), files at paths under the root (e.g. the Envoy bootstrap template in proxyv2), and
// programs at absolute paths or by bare name (e.g. `envoy`). Commands not named there run as
// found on this machine's PATH (`/bin/sleep`, `node`).
//
// Cluster DNS and kube-proxy are emulated per pod: `network` gives /etc/hosts entries (through
// `ip netns exec`'s /etc/netns/<netns>/hosts) and DNAT rules in the pod's nat OUTPUT chain
// (a Service's <clusterIP>:<port> to where the process really listens).
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { httpGet } from './envoy.js';
import type { KubeCluster } from './kube.js';
import { createPod, type ExecResult, type Pod as NetnsPod } from './netns.js';

// ---------------------------------------------------------------------------------------------
// The Kubernetes shapes read here (only the fields a kubelet uses in this emulation)

interface ObjectFieldSelector {
  fieldPath: string;
}
interface ResourceFieldSelector {
  containerName?: string;
  resource: string;
  divisor?: string | number;
}
interface KeySelector {
  name: string;
  key: string;
  optional?: boolean;
}
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: ObjectFieldSelector; resourceFieldRef?: ResourceFieldSelector; configMapKeyRef?: KeySelector; secretKeyRef?: KeySelector };
}
interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}
interface DownwardApiFile {
  path: string;
  fieldRef?: ObjectFieldSelector;
  resourceFieldRef?: ResourceFieldSelector;
  mode?: number;
}
interface ProjectionSource {
  serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  secret?: { name: string; items?: KeyToPath[]; optional?: boolean };
  downwardAPI?: { items?: DownwardApiFile[] };
}
export interface Volume {
  name: string;
  emptyDir?: { medium?: string };
  configMap?: { name: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  downwardAPI?: { items?: DownwardApiFile[]; defaultMode?: number };
  projected?: { sources: ProjectionSource[]; defaultMode?: number };
}
interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string };
  tcpSocket?: { port: number | string; host?: string };
  periodSeconds?: number;
  timeoutSeconds?: number;
}
interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
}
export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { containerPort: number; name?: string }[];
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  readinessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: SecurityContext;
  restartPolicy?: string;
}
export interface PodObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  spec: { nodeName?: string; serviceAccountName?: string; initContainers?: Container[]; containers: Container[]; volumes?: Volume[]; securityContext?: SecurityContext; [k: string]: unknown };
  status?: { podIP?: string; hostIP?: string; phase?: string; [k: string]: unknown };
}

// ---------------------------------------------------------------------------------------------
// Options and the running pod

export interface ImageContents {
  /** The image's ENTRYPOINT: what runs when a container gives no `command`. */
  entrypoint?: string[];
  /** Files the image holds, by path relative to the container's root. */
  files?: Record<string, string>;
  /** Programs of the image by the path (or bare name) a command uses, mapped to this machine's. */
  programs?: Record<string, string>;
}

export interface PodNetwork {
  /** /etc/hosts entries the pod resolves (name -> IP), as cluster DNS would answer them. */
  hosts?: Record<string, string>;
  /** kube-proxy: connections from the pod to ip:port go to toIp:toPort. */
  dnat?: { ip: string; port: number; toIp: string; toPort: number }[];
}

export interface KubeletOptions {
  kube: KubeCluster;
  namespace: string;
  /** The Pod's name in the apiserver. */
  name: string;
  /** The node the Pod is bound to when it is not yet (default `node-1`). */
  nodeName?: string;
  /** Keyed by the image reference exactly as the Pod names it. */
  images: Record<string, ImageContents>;
  /** DNS and Service routing as the pod sees them, from its addresses. */
  network?: (addresses: { podIp: string; hostIp: string }) => PodNetwork;
  /** Changes a container's environment after the kubelet resolved it (the test's only deviations). */
  env?: (container: string, env: Record<string, string>) => Record<string, string>;
  /** Deadline of each init container (default 60 s). */
  initTimeoutMs?: number;
  /** Keep the pod's root after destroy(), for debugging. Also $MESHD_KUBELET_KEEP=1. */
  keepDir?: boolean;
}

export interface KubeletPod {
  readonly name: string;
  readonly namespace: string;
  readonly podIp: string;
  readonly hostIp: string;
  readonly netns: NetnsPod;
  /** The pod's root: volumes and image files, the containers' working directory. */
  readonly root: string;
  /** The Pod as the kubelet started it (bound, with its addresses). */
  readonly object: PodObject;
  /** Each init container's exit code and output. */
  readonly initResults: { name: string; code: number; output: string }[];
  /** The environment each container was started with (after the `env` hook). */
  readonly environments: Map<string, Record<string, string>>;
  /** The last `lines` lines of a container's output (default: all containers, 200 lines each). */
  logs(container?: string, lines?: number): string;
  /** True while the container's process runs. */
  running(container: string): boolean;
  /** Runs a command in the pod's network namespace as root, as `kubectl exec` into the app container would. */
  exec(cmd: string[], opts?: { timeoutMs?: number; uid?: number }): Promise<ExecResult>;
  /** Probes every container's startup and readiness probes until all pass, then writes the Ready condition. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Kills the containers, removes the sandbox and the root. Idempotent. */
  destroy(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** /etc/netns/<netns> directories of this process's live pods (removed at exit if destroy() never ran). */
const etcNetnsDirs = new Set<string>();
process.on('exit', () => {
  for (const d of etcNetnsDirs) rmSync(d, { recursive: true, force: true });
});

/** Removes /etc/netns/meshd-*-<pid> directories left by test processes that are gone. */
function sweepEtcNetns(): void {
  let names: string[];
  try {
    names = readdirSync('/etc/netns');
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^meshd-.+-(\d+)$/.exec(n);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join('/etc/netns', n), { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The downward API and env

/** A field of the Pod, as the downward API names it (metadata.labels['k'] included). */
function podField(pod: PodObject, fieldPath: string): string {
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (keyed) return (pod.metadata[keyed[1] as 'labels' | 'annotations'] ?? {})[keyed[2]!] ?? '';
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace;
    case 'metadata.uid':
      return pod.metadata.uid;
    case 'metadata.labels':
      return downwardMap(pod.metadata.labels ?? {});
    case 'metadata.annotations':
      return downwardMap(pod.metadata.annotations ?? {});
    case 'spec.nodeName':
      return pod.spec.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? '';
    case 'status.podIP':
      return pod.status?.podIP ?? '';
    case 'status.hostIP':
      return pod.status?.hostIP ?? '';
    case 'status.podIPs':
      return pod.status?.podIP ?? '';
    case 'status.hostIPs':
      return pod.status?.hostIP ?? '';
    default:
      throw new Error(`kubelet emulation: downward API field ${fieldPath} is not supported`);
  }
}

/** The downward API's format for a map: sorted `key="value"` lines, values quoted as Go's strconv.Quote does for text. */
function downwardMap(m: Record<string, string>): string {
  return Object.keys(m)
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k])}`)
    .join('\n');
}

/** A quantity in base units (cores, bytes). */
function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(q.trim());
  if (!m) throw new Error(`kubelet emulation: quantity ${q} not understood`);
  const mult: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * mult[m[2] ?? '']!;
}

/** resourceFieldRef as the kubelet answers it: the limit (or request) divided by the divisor, rounded up. */
function resourceField(container: Container, ref: ResourceFieldSelector): string {
  const [kind, resource] = ref.resource.split('.') as ['limits' | 'requests', string];
  const raw = container.resources?.[kind]?.[resource];
  if (raw === undefined) throw new Error(`kubelet emulation: ${container.name} has no ${ref.resource} (a real kubelet would give the node's allocatable)`);
  const divisor = ref.divisor === undefined || ref.divisor === '0' || ref.divisor === 0 ? 1 : quantity(ref.divisor);
  return String(Math.ceil(quantity(raw) / divisor));
}

/** Kubernetes' $(VAR) expansion ($$ escapes, unknown names stay as written). */
export function expandVars(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name: string | undefined) => (name === undefined ? '$' : Object.hasOwn(env, name) ? env[name]! : all));
}

async function keyValue(kube: KubeCluster, namespace: string, kind: 'configmaps' | 'secrets', ref: KeySelector): Promise<string | undefined> {
  const obj = await kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${namespace}/${kind}/${ref.name}`).catch((err: unknown): { data?: Record<string, string> } => {
    if (ref.optional) return { data: {} };
    throw err;
  });
  const v = obj.data?.[ref.key];
  if (v === undefined) {
    if (ref.optional) return undefined;
    throw new Error(`kubelet emulation: ${kind} ${namespace}/${ref.name} has no key ${ref.key}`);
  }
  return kind === 'secrets' ? Buffer.from(v, 'base64').toString('utf8') : v;
}

async function containerEnv(kube: KubeCluster, pod: PodObject, c: Container): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    let v: string | undefined;
    if (e.valueFrom?.fieldRef) v = podField(pod, e.valueFrom.fieldRef.fieldPath);
    else if (e.valueFrom?.resourceFieldRef) v = resourceField(e.valueFrom.resourceFieldRef.containerName ? [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((x) => x.name === e.valueFrom!.resourceFieldRef!.containerName) ?? c : c, e.valueFrom.resourceFieldRef);
    else if (e.valueFrom?.configMapKeyRef) v = await keyValue(kube, pod.metadata.namespace, 'configmaps', e.valueFrom.configMapKeyRef);
    else if (e.valueFrom?.secretKeyRef) v = await keyValue(kube, pod.metadata.namespace, 'secrets', e.valueFrom.secretKeyRef);
    else v = expandVars(e.value ?? '', env);
    if (v !== undefined) env[e.name] = v;
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Volumes

function writeFile(path: string, content: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
}

async function keysToFiles(kube: KubeCluster, namespace: string, kind: 'configmaps' | 'secrets', name: string, items: KeyToPath[] | undefined, optional: boolean | undefined, dir: string, mode: number): Promise<void> {
  let data: Record<string, string>;
  try {
    const obj = await kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${namespace}/${kind}/${name}`);
    data = Object.fromEntries(Object.entries(obj.data ?? {}).map(([k, v]) => [k, kind === 'secrets' ? Buffer.from(v, 'base64').toString('utf8') : v]));
  } catch (err) {
    if (optional) return;
    // A real kubelet would keep the pod in ContainerCreating until the object exists.
    throw new Error(`kubelet emulation: the volume's ${kind} ${namespace}/${name} cannot be read: ${String(err)}`, { cause: err });
  }
  for (const it of items ?? Object.keys(data).map((key): KeyToPath => ({ key, path: key }))) {
    const v = data[it.key];
    if (v === undefined) throw new Error(`kubelet emulation: ${kind} ${namespace}/${name} has no key ${it.key}`);
    writeFile(join(dir, it.path), v, it.mode ?? mode);
  }
}

async function serviceAccountToken(kube: KubeCluster, pod: PodObject, audience: string | undefined, expirationSeconds: number | undefined): Promise<string> {
  const sa = pod.spec.serviceAccountName || 'default';
  const r = await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${pod.metadata.namespace}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      ...(audience ? { audiences: [audience] } : {}),
      expirationSeconds: expirationSeconds ?? 3600,
      boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata.name, uid: pod.metadata.uid },
    },
  });
  return r.status.token;
}

async function fillVolume(kube: KubeCluster, pod: PodObject, v: Volume, dir: string): Promise<void> {
  const ns = pod.metadata.namespace;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (v.emptyDir) {
    // No fsGroup: an emptyDir is writable by every uid, as the kubelet makes it.
    chmodSync(dir, 0o777);
  } else if (v.configMap) {
    await keysToFiles(kube, ns, 'configmaps', v.configMap.name, v.configMap.items, v.configMap.optional, dir, v.configMap.defaultMode ?? 0o644);
  } else if (v.secret) {
    await keysToFiles(kube, ns, 'secrets', v.secret.secretName, v.secret.items, v.secret.optional, dir, v.secret.defaultMode ?? 0o644);
  } else if (v.downwardAPI) {
    for (const it of v.downwardAPI.items ?? []) {
      if (!it.fieldRef) throw new Error(`kubelet emulation: downwardAPI item ${it.path} of volume ${v.name}: only fieldRef is supported`);
      writeFile(join(dir, it.path), podField(pod, it.fieldRef.fieldPath), it.mode ?? v.downwardAPI.defaultMode ?? 0o644);
    }
  } else if (v.projected) {
    const mode = v.projected.defaultMode ?? 0o644;
    for (const s of v.projected.sources) {
      if (s.serviceAccountToken) writeFile(join(dir, s.serviceAccountToken.path), await serviceAccountToken(kube, pod, s.serviceAccountToken.audience, s.serviceAccountToken.expirationSeconds), mode);
      else if (s.configMap) await keysToFiles(kube, ns, 'configmaps', s.configMap.name, s.configMap.items, s.configMap.optional, dir, mode);
      else if (s.secret) await keysToFiles(kube, ns, 'secrets', s.secret.name, s.secret.items, s.secret.optional, dir, mode);
      else if (s.downwardAPI) {
        for (const it of s.downwardAPI.items ?? []) {
          if (!it.fieldRef) throw new Error(`kubelet emulation: downwardAPI item ${it.path} of volume ${v.name}: only fieldRef is supported`);
          writeFile(join(dir, it.path), podField(pod, it.fieldRef.fieldPath), it.mode ?? mode);
        }
      } else throw new Error(`kubelet emulation: a projected source of volume ${v.name} is not supported: ${JSON.stringify(s)}`);
    }
  } else {
    throw new Error(`kubelet emulation: volume ${v.name} is of a kind not supported: ${JSON.stringify(v)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Containers

/** Rewrites absolute paths under the container's mountPaths (and the image's programs) to where they are on this machine. */
function hostPaths(s: string, root: string, mountPaths: string[], programs: Record<string, string>): string {
  let out = s;
  for (const [from, to] of Object.entries(programs)) {
    if (from.startsWith('/')) out = out.split(from).join(to);
  }
  for (const m of [...mountPaths].sort((a, b) => b.length - a.length)) {
    out = out.replace(new RegExp(`(^|[\\s"'=>])${m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=$|[/\\s"'])`, 'g'), (_all, pre: string) => `${pre}${root}${m}`);
  }
  return out;
}

class LogRing {
  private readonly lines: string[] = [];
  private partial = '';
  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts);
    if (this.lines.length > 5000) this.lines.splice(0, this.lines.length - 5000);
  }
  note(line: string): void {
    this.lines.push(line);
  }
  tail(n: number): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].slice(-n).join('\n');
  }
}

/**
 * Runs the kubelet's part for the stored Pod `namespace/name`: bind, sandbox, volumes, init
 * containers, containers, status. Resolves once the containers are started (waitReady() probes
 * them). On failure everything made so far is removed.
 */
export async function runPod(o: KubeletOptions): Promise<KubeletPod> {
  const { kube, namespace, name } = o;
  const podPath = `/api/v1/namespaces/${namespace}/pods/${name}`;
  let stored = await kube.request<PodObject>('GET', podPath);
  if (stored.spec.initContainers?.some((c) => c.restartPolicy === 'Always')) throw new Error('kubelet emulation: native sidecars (init containers with restartPolicy Always) are not supported');
  if (!stored.spec.nodeName) {
    // The scheduler's part: bind the Pod to a node.
    await kube.request('POST', `${podPath}/binding`, { apiVersion: 'v1', kind: 'Binding', metadata: { name }, target: { apiVersion: 'v1', kind: 'Node', name: o.nodeName ?? 'node-1' } });
  }

  sweepEtcNetns();
  const sandbox = await createPod({ name: name.slice(0, 20), proxyUid: 1337, captureInbound: false, captureOutbound: false });
  const root = mkdtempSync(join(tmpdir(), `meshd-kubelet-${name.slice(0, 20)}-`));
  const etcNetns = join('/etc/netns', sandbox.netns);
  const logs = new Map<string, LogRing>();
  const children = new Map<string, ChildProcess>();
  const initResults: { name: string; code: number; output: string }[] = [];
  const environments = new Map<string, Record<string, string>>();
  let destroyed: Promise<void> | undefined;
  const keep = o.keepDir === true || process.env.MESHD_KUBELET_KEEP === '1';
  const destroy = (): Promise<void> =>
    (destroyed ??= (async () => {
      await sandbox.destroy();
      rmSync(etcNetns, { recursive: true, force: true });
      etcNetnsDirs.delete(etcNetns);
      if (!keep) rmSync(root, { recursive: true, force: true });
    })());

  try {
    chmodSync(root, 0o755);
    // The sandbox: only the fixture's egress guard (filter table) stays; the nat table is the
    // init containers' to fill.
    for (const args of [['-t', 'nat', '-F'], ['-t', 'nat', '-X']]) {
      const r = await sandbox.exec([sandbox.iptablesBackend, ...args]);
      if (r.code !== 0) throw new Error(`kubelet emulation: cannot clear the sandbox's nat table: ${r.stderr.trim()}`);
    }
    const net = o.network?.({ podIp: sandbox.podIp, hostIp: sandbox.hostIp }) ?? {};
    // /etc/hosts as the kubelet writes it, plus what cluster DNS would answer.
    mkdirSync(etcNetns, { recursive: true, mode: 0o755 });
    etcNetnsDirs.add(etcNetns);
    const hostLines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `${sandbox.podIp}\t${name}`];
    const byIp = new Map<string, string[]>();
    for (const [host, ip] of Object.entries(net.hosts ?? {})) byIp.set(ip, [...(byIp.get(ip) ?? []), host]);
    for (const [ip, hosts] of byIp) hostLines.push(`${ip}\t${hosts.join(' ')}`);
    writeFileSync(join(etcNetns, 'hosts'), `${hostLines.join('\n')}\n`, { mode: 0o644 });
    for (const d of net.dnat ?? []) {
      const r = await sandbox.exec([sandbox.iptablesBackend, '-t', 'nat', '-I', 'OUTPUT', '1', '-p', 'tcp', '-d', `${d.ip}/32`, '--dport', String(d.port), '-j', 'DNAT', '--to-destination', `${d.toIp}:${d.toPort}`]);
      if (r.code !== 0) throw new Error(`kubelet emulation: cannot add the DNAT rule for ${d.ip}:${d.port}: ${r.stderr.trim()}`);
    }

    // The sandbox has its addresses: the kubelet reports them.
    stored = await kube.request<PodObject>('PATCH', `${podPath}/status`, {
      status: { phase: 'Pending', hostIP: sandbox.hostIp, hostIPs: [{ ip: sandbox.hostIp }], podIP: sandbox.podIp, podIPs: [{ ip: sandbox.podIp }], startTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
    });

    // Image contents, then volumes at their mount paths.
    const all = [...(stored.spec.initContainers ?? []), ...stored.spec.containers];
    for (const c of all) {
      for (const [rel, text] of Object.entries(o.images[c.image ?? '']?.files ?? {})) writeFile(join(root, rel), text, 0o644);
    }
    const mountedAt = new Map<string, string>();
    for (const c of all) {
      for (const m of c.volumeMounts ?? []) {
        if (m.subPath) throw new Error(`kubelet emulation: ${c.name} mounts ${m.name} with a subPath, not supported`);
        const prev = mountedAt.get(m.name);
        if (prev !== undefined && prev !== m.mountPath) throw new Error(`kubelet emulation: volume ${m.name} is mounted at ${prev} and ${m.mountPath}; one path per volume is supported`);
        mountedAt.set(m.name, m.mountPath);
      }
    }
    for (const v of stored.spec.volumes ?? []) {
      const at = mountedAt.get(v.name);
      if (at !== undefined) await fillVolume(kube, stored, v, join(root, at));
    }

    const start = async (c: Container): Promise<ChildProcess> => {
      const image = o.images[c.image ?? ''] ?? {};
      const programs = image.programs ?? {};
      let env = await containerEnv(kube, stored, c);
      if (o.env) env = o.env(c.name, env);
      environments.set(c.name, env);
      // command replaces the image's entrypoint; args follow either.
      let argv = [...(c.command ?? image.entrypoint ?? []), ...(c.args ?? [])];
      if (argv.length === 0) throw new Error(`kubelet emulation: container ${c.name} has no command and image ${c.image} no entrypoint given`);
      const mounts = (c.volumeMounts ?? []).map((m) => m.mountPath);
      argv = argv.map((a) => hostPaths(expandVars(a, env), root, mounts, programs));
      if (Object.hasOwn(programs, argv[0]!)) argv[0] = programs[argv[0]!]!;
      const uid = c.securityContext?.runAsUser ?? stored.spec.securityContext?.runAsUser ?? 0;
      const gid = c.securityContext?.runAsGroup ?? stored.spec.securityContext?.runAsGroup ?? 0;
      // A container's environment is its own: PATH and HOME as an image would set them, then the spec's.
      const pairs = Object.entries({ PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: root, HOSTNAME: name, ...env }).map(([k, v]) => `${k}=${v}`);
      const log = logs.get(c.name) ?? new LogRing();
      logs.set(c.name, log);
      log.note(`--- ${c.name}: starting as ${uid}:${gid} in ${sandbox.netns}, cwd ${root}: ${argv.join(' ')}`);
      const child = sandbox.spawn(['env', '-i', '-C', root, ...pairs, ...argv], { uid, gid });
      child.stdout!.setEncoding('utf8').on('data', (d: string) => log.push(d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(d));
      child.once('exit', (code, signal) => log.note(`--- ${c.name} exited (${signal ?? `code ${code}`})`));
      child.once('error', (err) => log.note(`--- ${c.name} failed to start: ${err.message}`));
      return child;
    };

    // Init containers, one after the other, each to completion.
    for (const c of stored.spec.initContainers ?? []) {
      const child = await start(c);
      const timeoutMs = o.initTimeoutMs ?? 60_000;
      const code = await new Promise<number>((resolve) => {
        const timer = setTimeout(() => {
          logs.get(c.name)!.note(`--- ${c.name}: killed after ${timeoutMs} ms`);
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            child.kill('SIGKILL');
          }
        }, timeoutMs);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          resolve(code ?? (signal ? 128 : 1));
        });
        child.once('error', () => {
          clearTimeout(timer);
          resolve(127);
        });
      });
      initResults.push({ name: c.name, code, output: logs.get(c.name)!.tail(200) });
      if (code !== 0) throw new Error(`kubelet emulation: init container ${c.name} exited ${code}:\n${logs.get(c.name)!.tail(60)}`);
    }
    for (const c of stored.spec.containers) children.set(c.name, await start(c));
    stored = await kube.request<PodObject>('PATCH', `${podPath}/status`, {
      status: {
        phase: 'Running',
        conditions: [{ type: 'Initialized', status: 'True' }, { type: 'ContainersReady', status: 'False' }, { type: 'Ready', status: 'False' }],
      },
    });
  } catch (err) {
    const out = [...logs].map(([n, l]) => `=== ${n}\n${l.tail(40)}`).join('\n');
    await destroy();
    throw new Error(`${String(err)}\n${out}`, { cause: err });
  }

  const running = (c: string): boolean => {
    const ch = children.get(c);
    return ch !== undefined && ch.exitCode === null && ch.signalCode === null;
  };
  const logsOf = (c?: string, lines = 200): string =>
    c !== undefined ? (logs.get(c)?.tail(lines) ?? '') : [...logs].map(([n, l]) => `=== ${n}\n${l.tail(lines)}`).join('\n');

  const probe = async (c: Container, p: Probe): Promise<boolean> => {
    const portOf = (port: number | string): number => (typeof port === 'number' ? port : (c.ports?.find((x) => x.name === port)?.containerPort ?? Number(port)));
    const timeoutMs = (p.timeoutSeconds ?? 1) * 1000;
    if (p.httpGet) {
      const host = p.httpGet.host ?? sandbox.podIp;
      try {
        const r = await httpGet(`${(p.httpGet.scheme ?? 'HTTP').toLowerCase()}://${host}:${portOf(p.httpGet.port)}${p.httpGet.path ?? '/'}`, { timeoutMs });
        return r.status >= 200 && r.status < 400;
      } catch {
        return false;
      }
    }
    if (p.tcpSocket) {
      const r = await sandbox.exec(['bash', '-c', `exec 3<>/dev/tcp/${p.tcpSocket.host ?? sandbox.podIp}/${portOf(p.tcpSocket.port)}`], { timeoutMs });
      return r.code === 0;
    }
    throw new Error(`kubelet emulation: container ${c.name}: only httpGet and tcpSocket probes are supported`);
  };

  const pod: KubeletPod = {
    name,
    namespace,
    podIp: sandbox.podIp,
    hostIp: sandbox.hostIp,
    netns: sandbox,
    root,
    object: stored,
    initResults,
    environments,
    logs: logsOf,
    running,
    exec: (cmd, eo = {}) => sandbox.exec(cmd, { timeoutMs: eo.timeoutMs ?? 30_000, ...(eo.uid !== undefined ? { uid: eo.uid } : {}) }),
    async waitReady(timeoutMs = 90_000) {
      const deadline = Date.now() + timeoutMs;
      const pending = new Set(stored.spec.containers.filter((c) => c.startupProbe || c.readinessProbe).map((c) => c.name));
      for (;;) {
        for (const c of stored.spec.containers) {
          if (!running(c.name)) throw new Error(`kubelet emulation: container ${c.name} of ${namespace}/${name} exited before the pod was ready:\n${logsOf(c.name, 60)}`);
        }
        for (const n of [...pending]) {
          const c = stored.spec.containers.find((x) => x.name === n)!;
          let ok = true;
          for (const p of [c.startupProbe, c.readinessProbe]) if (p && ok) ok = await probe(c, p);
          if (ok) pending.delete(n);
        }
        if (pending.size === 0) break;
        if (Date.now() > deadline) throw new Error(`kubelet emulation: ${namespace}/${name} not ready after ${timeoutMs} ms (waiting for ${[...pending].join(', ')}):\n${logsOf(undefined, 40)}`);
        await sleep(250);
      }
      await kube.request('PATCH', `${podPath}/status`, { status: { conditions: [{ type: 'Initialized', status: 'True' }, { type: 'ContainersReady', status: 'True' }, { type: 'Ready', status: 'True' }] } });
    },
    destroy,
  };
  return pod;
}

/** True when the path exists (for tests that look at what a volume holds). */
export function podFileExists(pod: KubeletPod, path: string): boolean {
  return existsSync(join(pod.root, path));
}
