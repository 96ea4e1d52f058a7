// Destinations naming a subset that no DestinationRule defines for their host. In a snapshot
// the VirtualService is left out (Envoy would be sent a cluster that does not exist); at
// admission it is a warning, since the DestinationRule may be applied next.
import type { DestinationRuleObject, VirtualServiceObject } from '../objects.js';
import { resolveHost } from '../istio.js';
import { notFound, type Finding, type Severity } from '../finding.js';
import { destinationsOf } from './destinations.js';

/** The subset names defined for each resolved host, by any DestinationRule. */
export function definedSubsets(destinationRules: readonly DestinationRuleObject[], domain: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const dr of destinationRules) {
    const host = resolveHost(dr.spec.host, dr.metadata.namespace, domain);
    let names = out.get(host);
    if (!names) out.set(host, (names = new Set()));
    for (const s of dr.spec.subsets ?? []) names.add(s.name);
  }
  return out;
}

/**
 * IST0101 ReferencedResourceNotFound for each destination naming an undefined subset:
 * an Error in a snapshot (the VirtualService is left out), a Warning at admission.
 */
export function undefinedSubsetFindings(vs: VirtualServiceObject, subsets: ReadonlyMap<string, ReadonlySet<string>>, domain: string, severity: Severity = 'Error'): Finding[] {
  const out: Finding[] = [];
  for (const d of destinationsOf(vs)) {
    if (!d.subset) continue;
    const host = resolveHost(d.host, vs.metadata.namespace, domain);
    if (subsets.get(host)?.has(d.subset)) continue;
    const f = notFound(vs, `${d.field}.subset`, d.mirror ? 'mirror+subset in destinationrule' : 'host+subset in destinationrule', `${d.host}+${d.subset}`);
    f.severity = severity;
    f.message += severity === 'Error' ? `: no DestinationRule for ${host} defines subset ${d.subset}, so this VirtualService is left out.` : `: no DestinationRule for ${host} defines subset ${d.subset} yet; until one does, meshd leaves this VirtualService out.`;
    out.push(f);
  }
  return out;
}
