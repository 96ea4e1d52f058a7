// Checks of VirtualServices against the objects they name: destination hosts and ports, and
// the Gateways they bind to. (Subsets and hosts two of them claim for sidecars are the
// validation stage's rules: see validation.ts.)
import { resolveHost } from '../model/istio.js';
import { MESH_GATEWAY, resolveGateway } from '../translate/istio-config.js';
import { hostAllows } from '../translate/gateways.js';
import { registryPorts, type AnalysisContext } from './context.js';
import { destinationsOf, gatewaysOf } from '../model/validation/destinations.js';
import { finding, notFound, type Finding } from './finding.js';

const isWildcard = (host: string): boolean => host.includes('*');

/** IST0101 for a destination host no Service (or ServiceEntry) defines, or a port it does not have. */
export function destinationHosts(ctx: AnalysisContext): Finding[] {
  const out: Finding[] = [];
  for (const vs of ctx.virtualServices) {
    for (const d of destinationsOf(vs)) {
      if (isWildcard(d.host)) continue;
      const ports = registryPorts(ctx, resolveHost(d.host, vs.metadata.namespace, ctx.domain));
      if (!ports) {
        out.push(notFound(vs, `${d.field}.host`, d.mirror ? 'mirror host' : 'host', d.host));
        continue;
      }
      if (d.port !== undefined && !ports.includes(d.port)) out.push(notFound(vs, `${d.field}.port.number`, 'host:port', `${d.host}:${d.port}`));
    }
  }
  return out;
}

/**
 * IST0112 for a destination without a port to a Service with several, on a VirtualService
 * bound to a Gateway. For sidecars meshd takes the port the request came in on, which is
 * what users mean; a gateway listens on its own ports, so meshd would pick the Service's
 * lowest port, which is rarely the one wanted.
 */
export function destinationPortRequired(ctx: AnalysisContext): Finding[] {
  const out: Finding[] = [];
  for (const vs of ctx.virtualServices) {
    if (!gatewaysOf(vs).some((g) => g !== MESH_GATEWAY)) continue;
    for (const d of destinationsOf(vs)) {
      if (d.port !== undefined || isWildcard(d.host)) continue;
      const ports = [...(registryPorts(ctx, resolveHost(d.host, vs.metadata.namespace, ctx.domain)) ?? [])].sort((a, b) => a - b);
      if (ports.length < 2) continue;
      out.push(
        finding(
          'VirtualServiceDestinationPortSelectorRequired',
          vs,
          `${d.field}.port`,
          `This VirtualService routes to service "${d.host}", which has ports [${ports.join(' ')}], without naming one; on a gateway meshd would send to port ${ports[0]}. Set ${d.field}.port.number.`,
        ),
      );
    }
  }
  return out;
}

/** IST0101 for a Gateway that does not exist; IST0132 for one that exists but serves none of the VirtualService's hosts. */
export function boundGateways(ctx: AnalysisContext): Finding[] {
  const byRef = new Map(ctx.gateways.map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g]));
  const out: Finding[] = [];
  for (const vs of ctx.virtualServices) {
    vs.spec.gateways?.forEach((ref, i) => {
      if (ref === MESH_GATEWAY) return;
      const gwRef = resolveGateway(ref, vs.metadata.namespace);
      const gw = byRef.get(gwRef);
      if (!gw) {
        out.push(notFound(vs, `spec.gateways[${i}]`, 'gateway', ref));
        return;
      }
      const hosts = vs.spec.hosts ?? [];
      const served = hosts.some((h) => gw.spec.servers.some((s) => s.hosts.some((p) => hostAllows(p, vs, resolveHost(h, vs.metadata.namespace, ctx.domain)))));
      if (!served && hosts.length > 0) {
        const gwHosts = [...new Set(gw.spec.servers.flatMap((s) => s.hosts))];
        out.push(
          finding(
            'VirtualServiceHostNotFoundInGateway',
            vs,
            `spec.gateways[${i}]`,
            `No host of this VirtualService [${hosts.join(' ')}] is served by Gateway ${gwRef} (its hosts: [${gwHosts.join(' ')}]), so that gateway never routes to it.`,
          ),
        );
      }
    });
  }
  return out;
}
