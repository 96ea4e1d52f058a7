// EDS: one ClusterLoadAssignment per outbound cluster, from the ready endpoints.
import { endpointKey, type MeshEndpoint, type MeshService, type MeshSnapshot } from '../model/mesh.js';
import type { Labels } from '../model/labels.js';
import { resolveHost } from './istio-config.js';
import { outboundClusterName } from './names.js';
import { socketAddress } from './filters.js';
import type { EnvoyResource, Json } from './types.js';
import { endpointTlsMetadata } from './mtls.js';

function localityEndpoints(eps: readonly MeshEndpoint[]): Json[] {
  // Group by zone; gRPC ignores localities without a weight, so each carries one.
  const byZone = new Map<string, Json[]>();
  for (const e of eps) {
    const zone = e.zone ?? '';
    let list = byZone.get(zone);
    if (!list) byZone.set(zone, (list = []));
    const metadata = endpointTlsMetadata(e.labels);
    list.push({ endpoint: { address: socketAddress(e.address, e.port) }, ...(metadata ? { metadata } : {}), load_balancing_weight: 1 });
  }
  return [...byZone.keys()].sort().map((zone) => {
    const lbEndpoints = byZone.get(zone)!;
    return { locality: zone ? { zone } : {}, lb_endpoints: lbEndpoints, load_balancing_weight: lbEndpoints.length };
  });
}

const subsetIndex = new WeakMap<MeshSnapshot['config'], Map<string, Map<string, Labels>>>();

/**
 * Subsets defined for each host by any DestinationRule, by name. When rules in two
 * namespaces define one subset name differently, the first rule (by namespace/name) wins.
 */
export function subsetsByHost(snapshot: MeshSnapshot): Map<string, Map<string, Labels>> {
  let index = subsetIndex.get(snapshot.config);
  if (!index) {
    index = new Map();
    for (const dr of snapshot.config.destinationRules) {
      const host = resolveHost(dr.spec.host, dr.metadata.namespace, snapshot.domain);
      let subsets = index.get(host);
      if (!subsets) index.set(host, (subsets = new Map()));
      for (const s of dr.spec.subsets ?? []) if (!subsets.has(s.name)) subsets.set(s.name, s.labels ?? {});
    }
    subsetIndex.set(snapshot.config, index);
  }
  return index;
}

export function serviceLoadAssignments(snapshot: MeshSnapshot, svc: MeshService): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  const subsets = subsetsByHost(snapshot).get(svc.hostname);
  for (const port of svc.ports) {
    if (port.protocol === 'UDP') continue;
    const name = outboundClusterName(port.port, svc.hostname);
    const eps = snapshot.endpoints.get(endpointKey(svc.hostname, port.port)) ?? [];
    out.push({ name, body: { cluster_name: name, endpoints: localityEndpoints(eps) } });
    for (const [subset, labels] of subsets ?? []) {
      const subsetName = outboundClusterName(port.port, svc.hostname, subset);
      const selected = eps.filter((e) => Object.entries(labels).every(([k, v]) => e.labels[k] === v));
      out.push({ name: subsetName, body: { cluster_name: subsetName, endpoints: localityEndpoints(selected) } });
    }
  }
  return out;
}

export function emptyLoadAssignment(name: string): EnvoyResource {
  return { name, body: { cluster_name: name, endpoints: [] } };
}

/** All ClusterLoadAssignments of the mesh, sorted by name. */
export function loadAssignments(snapshot: MeshSnapshot): EnvoyResource[] {
  return snapshot.services.flatMap((s) => serviceLoadAssignments(snapshot, s)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
