// Checks of DestinationRules against the Services and pods they are meant for.
import { resolveHost } from '../model/istio.js';
import { podsWithLabels, registryPorts, selectorText, type AnalysisContext } from './context.js';
import { finding, type Finding } from './finding.js';

/** IST0174: a DestinationRule host that is no Service (or ServiceEntry host) of the mesh; its policies apply to nothing. */
export function unknownDestinationRuleHosts(ctx: AnalysisContext): Finding[] {
  return ctx.destinationRules
    .filter((dr) => {
      const host = resolveHost(dr.spec.host, dr.metadata.namespace, ctx.domain);
      return !host.includes('*') && registryPorts(ctx, host) === undefined;
    })
    .map((dr) => finding('UnknownDestinationRuleHost', dr, 'spec.host', `The host ${dr.spec.host} of this DestinationRule matches no Service in the mesh, so its policies apply to nothing.`));
}

/** IST0173: a subset whose labels select none of the Service's pods; requests routed to it get 503. */
export function subsetsWithoutPods(ctx: AnalysisContext): Finding[] {
  if (!ctx.workloadsKnown) return [];
  const out: Finding[] = [];
  for (const dr of ctx.destinationRules) {
    const svc = ctx.serviceByHost.get(resolveHost(dr.spec.host, dr.metadata.namespace, ctx.domain));
    const selector = svc?.spec.selector;
    if (!svc || !selector || Object.keys(selector).length === 0) continue;
    dr.spec.subsets?.forEach((s, i) => {
      const labels = { ...selector, ...(s.labels ?? {}) };
      if (podsWithLabels(ctx, svc.metadata.namespace, labels).length > 0) return;
      out.push(
        finding(
          'DestinationRuleSubsetNotSelectPods',
          dr,
          `spec.subsets[${i}].labels`,
          `The subset ${s.name} selects no pod of Service ${svc.metadata.namespace}/${svc.metadata.name} (pods with ${selectorText(labels)}): requests routed to it fail with 503 (no healthy upstream).`,
        ),
      );
    });
  }
  return out;
}
