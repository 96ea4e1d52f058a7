// Checks of VirtualServices against the objects they name: destination hosts, ports and
// subsets, the Gateways they bind to, and hosts two of them claim for sidecars.
import { resolveHost } from '../model/istio.js';
import type { VirtualServiceObject } from '../model/objects.js';
import { MESH_GATEWAY, resolveGateway } from '../translate/istio-config.js';
import { hostAllows } from '../translate/gateways.js';
import type { AnalysisContext } from './context.js';
import { destinationsOf, gatewaysOf } from './destinations.js';
import { finding, notFound, type Finding } from './finding.js';

const isWildcard = (host: string): boolean => host.includes('*');

/** IST0101 for a destination host no Service defines, or a port that Service does not have. */
export function destinationHosts(ctx: AnalysisContext): Finding[] {
  const out: Finding[] = [];
  for (const vs of ctx.virtualServices) {
    for (const d of destinationsOf(vs)) {
      if (isWildcard(d.host)) continue;
      const svc = ctx.serviceByHost.get(resolveHost(d.host, vs.metadata.namespace, ctx.domain));
      if (!svc) {
        out.push(notFound(vs, `${d.field}.host`, d.mirror ? 'mirror host' : 'host', d.host));
        continue;
      }
      if (d.port !== undefined && !svc.spec.ports.some((p) => p.port === d.port)) out.push(notFound(vs, `${d.field}.port.number`, 'host:port', `${d.host}:${d.port}`));
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
      const svc = ctx.serviceByHost.get(resolveHost(d.host, vs.metadata.namespace, ctx.domain));
      const ports = (svc?.spec.ports ?? []).map((p) => p.port).sort((a, b) => a - b);
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

/** IST0101 for a subset that no DestinationRule of the destination's host defines. */
export function destinationSubsets(ctx: AnalysisContext): Finding[] {
  const defined = new Set<string>();
  for (const dr of ctx.destinationRules) {
    const host = resolveHost(dr.spec.host, dr.metadata.namespace, ctx.domain);
    for (const s of dr.spec.subsets ?? []) defined.add(`${host}|${s.name}`);
  }
  const out: Finding[] = [];
  for (const vs of ctx.virtualServices) {
    for (const d of destinationsOf(vs)) {
      if (!d.subset || defined.has(`${resolveHost(d.host, vs.metadata.namespace, ctx.domain)}|${d.subset}`)) continue;
      out.push(notFound(vs, `${d.field}.subset`, d.mirror ? 'mirror+subset in destinationrule' : 'host+subset in destinationrule', `${d.host}+${d.subset}`));
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

/** The namespaces a mesh VirtualService's hosts are visible in (`*`: all). */
function scopes(vs: VirtualServiceObject): string[] {
  const exportTo = vs.spec.exportTo ?? [];
  if (exportTo.length === 0 || exportTo.includes('*')) return ['*'];
  return [...new Set(exportTo.map((e) => (e === '.' ? vs.metadata.namespace : e)))];
}

/** IST0109: two VirtualServices bound to the mesh claim one host; sidecars use only the first. */
export function meshHostConflicts(ctx: AnalysisContext): Finding[] {
  const claims = new Map<string, { host: string; list: VirtualServiceObject[] }>();
  for (const vs of ctx.virtualServices) {
    if (!gatewaysOf(vs).includes(MESH_GATEWAY)) continue;
    for (const h of new Set(vs.spec.hosts ?? [])) {
      const host = resolveHost(h, vs.metadata.namespace, ctx.domain);
      for (const scope of scopes(vs)) {
        const key = `${scope}/${host}`;
        let claim = claims.get(key);
        if (!claim) claims.set(key, (claim = { host, list: [] }));
        claim.list.push(vs);
      }
    }
  }
  const out: Finding[] = [];
  for (const { host, list } of claims.values()) {
    if (list.length < 2) continue;
    const names = list.map((v) => `${v.metadata.namespace}/${v.metadata.name}`);
    for (const vs of list) {
      out.push(
        finding(
          'ConflictingMeshGatewayVirtualServiceHosts',
          vs,
          'spec.hosts',
          `The VirtualServices ${names.join(',')} bound to the mesh gateway all define host ${host}: sidecars use only ${names[0]} (the first by namespace/name) for it and ignore the others. Merge them into one VirtualService.`,
        ),
      );
    }
  }
  return out;
}
