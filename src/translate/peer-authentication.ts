// Which mTLS mode a workload port accepts inbound, from PeerAuthentications as Istio
// resolves them: the mesh-wide policy (root namespace, no selector), overridden by the
// namespace-wide one (workload's namespace, no selector), overridden by the oldest policy
// whose selector matches the workload's labels, overridden for one port by that policy's
// portLevelMtls. UNSET (or no mode) inherits from the level above; with nothing set the
// mode is PERMISSIVE. Pure; one index per IstioConfig.
import type { IstioConfig } from '../model/mesh.js';
import type { ObjectError, PeerAuthenticationObject } from '../model/objects.js';
import { selectorMatches, type Labels } from '../model/labels.js';
import { hasWorkloadSelector, portKey } from '../model/security.js';
import { rootNamespaceOf } from './istio-config.js';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** What a workload's inbound ports accept: `mode`, except for the ports listed. */
export interface EffectivePeerAuthentication {
  mode: MtlsMode;
  /** Ports the selected workload policy lists in portLevelMtls, with their resolved mode (UNSET ones inherit `mode`). */
  ports: ReadonlyMap<number, MtlsMode>;
  /** Equal for two workloads exactly when every port resolves the same way. */
  key: string;
}

/** A PeerAuthentication that is valid on its own but ignored, because of another one (or where it is). */
export interface PeerAuthenticationConflict extends ObjectError {
  /** `namespace/name` of the policy applied instead, if any. */
  winner?: string;
}

const DEFAULT_MODE: MtlsMode = 'PERMISSIVE';

interface Index {
  /** The mesh-wide policy applied (the oldest one). */
  mesh: PeerAuthenticationObject | undefined;
  /** The namespace-wide policy applied in each namespace other than the root. */
  namespaceWide: Map<string, PeerAuthenticationObject>;
  /** Workload policies (with a selector) per namespace other than the root, oldest first. */
  workload: Map<string, PeerAuthenticationObject[]>;
  /** Resolutions by `namespace/workload policy name` (empty name: no workload policy). */
  resolved: Map<string, EffectivePeerAuthentication>;
  conflicts: PeerAuthenticationConflict[];
}

const indexes = new WeakMap<IstioConfig, Index>();

function time(o: PeerAuthenticationObject): number {
  // No timestamp (a YAML file) sorts first, as Go's zero time does in Istio.
  const t = o.metadata.creationTimestamp ? Date.parse(o.metadata.creationTimestamp) : Number.NEGATIVE_INFINITY;
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

/** Oldest first; equal times by name, then namespace. */
function olderFirst(a: PeerAuthenticationObject, b: PeerAuthenticationObject): number {
  const ta = time(a);
  const tb = time(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a.metadata.name !== b.metadata.name) return a.metadata.name < b.metadata.name ? -1 : 1;
  return a.metadata.namespace < b.metadata.namespace ? -1 : a.metadata.namespace > b.metadata.namespace ? 1 : 0;
}

const ref = (o: PeerAuthenticationObject): string => `${o.metadata.namespace}/${o.metadata.name}`;

function conflict(o: PeerAuthenticationObject, message: string, winner?: PeerAuthenticationObject): PeerAuthenticationConflict {
  const c: PeerAuthenticationConflict = { kind: 'PeerAuthentication', namespace: o.metadata.namespace, name: o.metadata.name, field: 'spec.selector', message };
  if (winner) c.winner = ref(winner);
  return c;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function buildIndex(config: IstioConfig): Index {
  const mesh: PeerAuthenticationObject[] = [];
  const namespaceWide = new Map<string, PeerAuthenticationObject[]>();
  const workload = new Map<string, PeerAuthenticationObject[]>();
  const conflicts: PeerAuthenticationConflict[] = [];
  const root = rootNamespaceOf(config);
  for (const pa of config.peerAuthentications) {
    const ns = pa.metadata.namespace;
    if (!hasWorkloadSelector(pa.spec)) {
      if (ns === root) mesh.push(pa);
      else push(namespaceWide, ns, pa);
    } else if (ns === root) {
      conflicts.push(conflict(pa, `selects workloads, but in the root namespace ${root} only a policy without a selector (mesh-wide) applies; Istio applies a workload-specific policy only from the workload's own namespace, so this one is ignored`));
    } else {
      push(workload, ns, pa);
    }
  }
  const winner = (list: PeerAuthenticationObject[], scope: string): PeerAuthenticationObject => {
    list.sort(olderFirst);
    const first = list[0]!;
    for (const loser of list.slice(1)) {
      conflicts.push(conflict(loser, `is empty, so this policy is ${scope}; the older ${scope} PeerAuthentication ${ref(first)} applies instead and this one is ignored (Istio applies only the oldest)`, first));
    }
    return first;
  };
  const index: Index = {
    mesh: mesh.length > 0 ? winner(mesh, 'mesh-wide') : undefined,
    namespaceWide: new Map([...namespaceWide].map(([ns, list]) => [ns, winner(list, 'namespace-wide')])),
    workload,
    resolved: new Map(),
    conflicts,
  };
  for (const list of workload.values()) {
    list.sort(olderFirst);
    // A newer policy whose selector includes an older one's never applies: every workload it selects, the older one selects first.
    list.forEach((pa, i) => {
      const shadow = list.slice(0, i).find((older) => selectorMatches(older.spec.selector?.matchLabels ?? undefined, pa.spec.selector?.matchLabels ?? {}));
      if (shadow) {
        conflicts.push(conflict(pa, `matches no workload that the older PeerAuthentication ${ref(shadow)} does not match too; of several matching policies the oldest applies (as in Istio), so this one never does`, shadow));
      }
    });
  }
  conflicts.sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  return index;
}

function indexOf(config: IstioConfig): Index {
  let index = indexes.get(config);
  if (!index) {
    index = buildIndex(config);
    indexes.set(config, index);
  }
  return index;
}

/** The mode a policy level sets, or undefined when it inherits (no mtls, no mode, or UNSET). */
function setMode(mtls: { mode?: string | null | undefined } | null | undefined): MtlsMode | undefined {
  const m = mtls?.mode;
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined;
}

function resolve(index: Index, namespace: string, workloadPolicy: PeerAuthenticationObject | undefined): EffectivePeerAuthentication {
  let mode = setMode(index.mesh?.spec.mtls) ?? DEFAULT_MODE;
  mode = setMode(index.namespaceWide.get(namespace)?.spec.mtls) ?? mode;
  mode = setMode(workloadPolicy?.spec.mtls) ?? mode;
  const ports = new Map<number, MtlsMode>();
  for (const [key, mtls] of Object.entries(workloadPolicy?.spec.portLevelMtls ?? {})) {
    const port = portKey(key);
    if (port !== undefined) ports.set(port, setMode(mtls) ?? mode);
  }
  const exceptions = [...ports]
    .filter(([, m]) => m !== mode)
    .sort(([a], [b]) => a - b)
    .map(([p, m]) => `${p}=${m}`);
  return { mode, ports, key: exceptions.length > 0 ? `${mode};${exceptions.join(',')}` : mode };
}

/** The inbound mTLS policy of a workload in `namespace` with `labels`, for all its ports. */
export function effectivePeerAuthentication(config: IstioConfig, namespace: string, labels: Labels): EffectivePeerAuthentication {
  const index = indexOf(config);
  const workloadPolicy = index.workload.get(namespace)?.find((pa) => selectorMatches(pa.spec.selector?.matchLabels ?? undefined, labels));
  const memo = `${namespace}/${workloadPolicy?.metadata.name ?? ''}`;
  let out = index.resolved.get(memo);
  if (!out) {
    out = resolve(index, namespace, workloadPolicy);
    index.resolved.set(memo, out);
  }
  return out;
}

/** Whether inbound traffic to `port` (the workload's target port) must be mTLS, may be either, or must be plaintext. */
export function inboundMtlsMode(config: IstioConfig, namespace: string, labels: Labels, port: number): MtlsMode {
  const p = effectivePeerAuthentication(config, namespace, labels);
  return p.ports.get(port) ?? p.mode;
}

/**
 * A short stable string, equal for two workloads exactly when every port resolves to the
 * same mode: the workload-wide mode, then the ports that differ from it ("STRICT",
 * "PERMISSIVE;8080=STRICT,9090=DISABLE").
 */
export function peerAuthenticationKey(config: IstioConfig, namespace: string, labels: Labels): string {
  return effectivePeerAuthentication(config, namespace, labels).key;
}

/**
 * PeerAuthentications that are valid but ignored: the newer of several mesh-wide or
 * namespace-wide policies, workload policies in the root namespace, and workload policies
 * an older one always wins over. Warnings, not errors: the rest applies.
 */
export function peerAuthenticationConflicts(config: IstioConfig): readonly PeerAuthenticationConflict[] {
  return indexOf(config).conflicts;
}
