// Which mTLS mode a workload port accepts inbound, from PeerAuthentications as Istio
// resolves them: the mesh-wide policy (root namespace, no selector), overridden by the
// namespace-wide one (workload's namespace, no selector), overridden by the oldest policy
// whose selector matches the workload's labels, overridden for one port by that policy's
// portLevelMtls. UNSET (or no mode) inherits from the level above; with nothing set the
// mode is PERMISSIVE. Which policies apply is the validation stage's decision
// (model/validation/peer-authentications.ts). Pure; one index per IstioConfig.
import type { IstioConfig } from '../model/mesh.js';
import type { PeerAuthenticationObject } from '../model/objects.js';
import { selectorMatches, type Labels } from '../model/labels.js';
import { portKey } from '../model/security.js';
import type { PeerAuthenticationDecisions } from '../model/validation/peer-authentications.js';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** What a workload's inbound ports accept: `mode`, except for the ports listed. */
export interface EffectivePeerAuthentication {
  mode: MtlsMode;
  /** Ports the selected workload policy lists in portLevelMtls, with their resolved mode (UNSET ones inherit `mode`). */
  ports: ReadonlyMap<number, MtlsMode>;
  /** Equal for two workloads exactly when every port resolves the same way. */
  key: string;
}

const DEFAULT_MODE: MtlsMode = 'PERMISSIVE';

/** The validation stage's decisions (model/validation/peer-authentications.ts), with resolutions memoized. */
interface Index {
  decisions: PeerAuthenticationDecisions;
  /** Resolutions by `namespace/workload policy name` (empty name: no workload policy). */
  resolved: Map<string, EffectivePeerAuthentication>;
}

const indexes = new WeakMap<IstioConfig, Index>();

function indexOf(config: IstioConfig): Index {
  let index = indexes.get(config);
  if (!index) {
    index = { decisions: config.peerAuthenticationDecisions, resolved: new Map() };
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
  let mode = setMode(index.decisions.mesh?.spec.mtls) ?? DEFAULT_MODE;
  mode = setMode(index.decisions.namespaceWide.get(namespace)?.spec.mtls) ?? mode;
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
  const workloadPolicy = index.decisions.workload.get(namespace)?.find((pa) => selectorMatches(pa.spec.selector?.matchLabels ?? undefined, labels));
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
