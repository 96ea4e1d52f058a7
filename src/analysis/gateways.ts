// Checks of Gateways: pods their selector matches, the Services that bring traffic to those
// pods, and servers another Gateway takes first.
import type { GatewayObject, PodObject } from '../model/objects.js';
import { selectorMatches } from '../model/labels.js';
import { gatewayConflicts as translatorGatewayConflicts } from '../translate/gateways.js';
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

/** IST0145: a Gateway server that another Gateway on the same proxies takes first (the first by namespace/name keeps a port and host). */
export function gatewayConflicts(ctx: AnalysisContext): Finding[] {
  const byRef = new Map(ctx.gateways.map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g]));
  const out: Finding[] = [];
  for (const c of translatorGatewayConflicts(ctx.snapshot)) {
    const gw = byRef.get(c.loser);
    if (!gw) continue;
    const selector = selectorText(gw.spec.selector ?? {});
    const protocol = c.host.startsWith('protocol ') ? c.host.slice('protocol '.length) : undefined;
    const message = protocol
      ? `Conflict with gateway ${c.winner} (workload selector ${selector}, port ${c.port}): it serves another protocol than ${protocol} on the same listening port, so this server is ignored.`
      : `Conflict with gateway ${c.winner} (workload selector ${selector}, port ${c.port}, host ${c.host}): ${c.winner} comes first by namespace/name and keeps this port and host, so this server is ignored for it.`;
    out.push(finding('ConflictingGateways', gw, 'spec.servers', message));
  }
  return out;
}
