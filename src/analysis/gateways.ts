// Checks of Gateways: pods their selector matches, and the Services that bring traffic to
// those pods. (Servers another Gateway takes first: the validation stage, see validation.ts.)
import type { GatewayObject, PodObject } from '../model/objects.js';
import { selectorMatches } from '../model/labels.js';
import { podsWithLabels, selectorText, type AnalysisContext } from './context.js';
import { finding, notFound, type Finding } from './finding.js';

/** Gateways with a selector, and the pods it matches in any namespace. */
function selectedPods(ctx: AnalysisContext): { gw: GatewayObject; selector: Record<string, string>; pods: PodObject[] }[] {
  return ctx.gateways
    .filter((gw) => Object.keys(gw.spec.selector ?? {}).length > 0)
    .map((gw) => ({ gw, selector: gw.spec.selector!, pods: podsWithLabels(ctx, undefined, gw.spec.selector!) }));
}

/** IST0101: a Gateway whose selector matches no pod in the cluster; no proxy serves it. */
export function gatewaySelectors(ctx: AnalysisContext): Finding[] {
  if (!ctx.workloadsKnown) return [];
  return selectedPods(ctx)
    .filter((g) => g.pods.length === 0)
    .map((g) => notFound(g.gw, 'spec.selector', 'selector', selectorText(g.selector)));
}

/**
 * IST0162: a server port that no Service selecting the gateway's pods has. meshd (as Istio)
 * listens on the targetPort of the Service port equal to the server port; with none, it
 * listens on the server port itself, which no Service sends traffic to (and which a
 * non-root proxy cannot bind below 1024).
 */
export function gatewayServicePorts(ctx: AnalysisContext): Finding[] {
  if (!ctx.workloadsKnown) return [];
  const out: Finding[] = [];
  for (const { gw, selector, pods } of selectedPods(ctx)) {
    if (pods.length === 0) continue;
    const ports = new Set<number>();
    for (const svc of ctx.serviceByHost.values()) {
      if (pods.some((p) => p.metadata.namespace === svc.metadata.namespace && selectorMatches(svc.spec.selector, p.metadata.labels))) for (const p of svc.spec.ports) ports.add(p.port);
    }
    const reported = new Set<number>();
    gw.spec.servers.forEach((s, i) => {
      const port = s.port.number;
      if (ports.has(port) || reported.has(port)) return;
      reported.add(port);
      const bind = port < 1024 ? ', which a proxy not running as root cannot bind' : '';
      out.push(
        finding(
          'GatewayPortNotDefinedOnService',
          gw,
          `spec.servers[${i}].port.number`,
          `No Service selecting the gateway's pods (${selectorText(selector)}) has port ${port}: the gateway listens on ${port} itself${bind}, and no Service sends traffic there.`,
        ),
      );
    });
  }
  return out;
}
