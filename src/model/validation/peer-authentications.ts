// Which PeerAuthentications apply, as Istio decides it: of several mesh-wide policies (root
// namespace, no selector), or several namespace-wide ones in one namespace, the oldest
// applies; a workload policy (with a selector) applies only from the workload's namespace,
// and of several that match a workload the oldest does. translate/peer-authentication.ts
// resolves modes from what this decides; the others are findings.
import type { PeerAuthenticationObject } from '../objects.js';
import { selectorMatches } from '../labels.js';
import { hasWorkloadSelector } from '../security.js';
import { finding, type Finding } from '../finding.js';
import { olderFirst } from '../creation-order.js';

export interface PeerAuthenticationDecisions {
  /** The mesh-wide policy applied (the oldest one). */
  readonly mesh: PeerAuthenticationObject | undefined;
  /** The namespace-wide policy applied in each namespace other than the root. */
  readonly namespaceWide: ReadonlyMap<string, PeerAuthenticationObject>;
  /** Workload policies (with a selector) per namespace other than the root, oldest first. */
  readonly workload: ReadonlyMap<string, readonly PeerAuthenticationObject[]>;
  /** IST0167 for each policy that never applies. */
  readonly findings: readonly Finding[];
}


const ref = (o: PeerAuthenticationObject): string => `${o.metadata.namespace}/${o.metadata.name}`;

/**
 * IST0167 IneffectivePolicy about a policy that is valid but never applies. Istio's default
 * severity for the code is Warning; meshd reports it as an Error, as every finding about
 * config that is ignored, so that status says the object is not in effect.
 */
function ineffective(o: PeerAuthenticationObject, reason: string): Finding {
  return finding('IneffectivePolicy', o, 'spec.selector', `The policy has no impact: spec.selector ${reason}.`, 'Error');
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** `peerAuthentications` sorted by namespace/name; `rootNamespace` as the mesh config sets it. */
export function decidePeerAuthentications(peerAuthentications: readonly PeerAuthenticationObject[], rootNamespace: string): PeerAuthenticationDecisions {
  const mesh: PeerAuthenticationObject[] = [];
  const namespaceWide = new Map<string, PeerAuthenticationObject[]>();
  const workload = new Map<string, PeerAuthenticationObject[]>();
  const findings: Finding[] = [];
  for (const pa of peerAuthentications) {
    const ns = pa.metadata.namespace;
    if (!hasWorkloadSelector(pa.spec)) {
      if (ns === rootNamespace) mesh.push(pa);
      else push(namespaceWide, ns, pa);
    } else if (ns === rootNamespace) {
      findings.push(ineffective(pa, `selects workloads, but in the root namespace ${rootNamespace} only a policy without a selector (mesh-wide) applies; Istio applies a workload-specific policy only from the workload's own namespace, so this one is ignored`));
    } else {
      push(workload, ns, pa);
    }
  }
  const winner = (list: PeerAuthenticationObject[], scope: string): PeerAuthenticationObject => {
    list.sort(olderFirst);
    const first = list[0]!;
    for (const loser of list.slice(1)) {
      findings.push(ineffective(loser, `is empty, so this policy is ${scope}; the older ${scope} PeerAuthentication ${ref(first)} applies instead and this one is ignored (Istio applies only the oldest)`));
    }
    return first;
  };
  const decided = {
    mesh: mesh.length > 0 ? winner(mesh, 'mesh-wide') : undefined,
    namespaceWide: new Map([...namespaceWide].map(([ns, list]) => [ns, winner(list, 'namespace-wide')])),
    workload,
  };
  for (const list of workload.values()) {
    list.sort(olderFirst);
    // A newer policy whose selector includes an older one's never applies: every workload it selects, the older one selects first.
    list.forEach((pa, i) => {
      const shadow = list.slice(0, i).find((older) => selectorMatches(older.spec.selector?.matchLabels ?? undefined, pa.spec.selector?.matchLabels ?? {}));
      if (shadow) findings.push(ineffective(pa, `matches no workload that the older PeerAuthentication ${ref(shadow)} does not match too; of several matching policies the oldest applies (as in Istio), so this one never does`));
    });
  }
  return { ...decided, findings };
}
