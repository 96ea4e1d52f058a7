// Sidecars that make a namespace ambiguous: more than one without a workloadSelector. Istio
// reports each of them (IST0111) and applies the oldest; so does meshd (model/sidecar.ts).
import type { SidecarObject } from '../objects.js';
import { hasSidecarSelector } from '../sidecar.js';
import { finding, type Finding } from '../finding.js';

/** `sidecars` sorted by namespace/name. */
export function sidecarFindings(sidecars: readonly SidecarObject[]): Finding[] {
  const byNamespace = new Map<string, SidecarObject[]>();
  for (const s of sidecars) {
    if (hasSidecarSelector(s)) continue;
    const list = byNamespace.get(s.metadata.namespace);
    if (list) list.push(s);
    else byNamespace.set(s.metadata.namespace, [s]);
  }
  const out: Finding[] = [];
  for (const [ns, list] of byNamespace) {
    if (list.length < 2) continue;
    const names = list.map((s) => s.metadata.name).join(', ');
    for (const s of list) {
      out.push(finding('MultipleSidecarsWithoutWorkloadSelectors', s, 'spec.workloadSelector', `The Sidecars [${names}] in namespace "${ns}" have no workload selector, which can lead to undefined behavior; meshd applies the oldest, as Istio does.`));
    }
  }
  return out;
}
