// Analysis: the checks meshd makes of a set of objects, each a small pure function from the
// analysis context to findings; `analyze` runs them all. Used by `meshd analyze`.
import { analysisContext, type AnalysisContext, type AnalysisInput } from './context.js';
import { unknownDestinationRuleHosts, subsetsWithoutPods } from './destination-rules.js';
import { gatewaySelectors, gatewayServicePorts } from './gateways.js';
import { namespacesNotInjected, podsMissingProxy } from './injection.js';
import { validationFindings } from './validation.js';
import { boundGateways, destinationHosts, destinationPortRequired } from './virtual-services.js';
import { sortFindings, type Finding } from './finding.js';
import { keyOf } from '../model/objects.js';

export type Analyzer = (ctx: AnalysisContext) => Finding[];

/** Every check, by name. */
export const ANALYZERS: Readonly<Record<string, Analyzer>> = {
  validationFindings,
  destinationHosts,
  destinationPortRequired,
  boundGateways,
  gatewaySelectors,
  gatewayServicePorts,
  unknownDestinationRuleHosts,
  subsetsWithoutPods,
  namespacesNotInjected,
  podsMissingProxy,
};

/** Runs every analyzer; findings (with the file origins of their objects) sorted as istioctl sorts them. */
export function analyze(input: AnalysisInput): Finding[] {
  const ctx = analysisContext(input);
  const all = Object.values(ANALYZERS).flatMap((a) => a(ctx));
  const origins = input.origins;
  if (origins) {
    for (const f of all) {
      const origin = origins.get(keyOf(f.kind, f.namespace, f.name));
      if (origin) f.origin = origin;
    }
  }
  return sortFindings(all);
}

export { analysisContext, type AnalysisContext, type AnalysisInput } from './context.js';
export * from './finding.js';
