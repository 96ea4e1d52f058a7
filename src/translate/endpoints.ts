// EDS: one ClusterLoadAssignment per outbound cluster, from the ready endpoints.
import { endpointKey, type MeshEndpoint, type MeshService, type MeshSnapshot } from '../model/mesh.js';
import type { Labels } from '../model/labels.js';
import type { DestinationRuleObject } from '../model/objects.js';
import { destinationRuleFor, resolveHost } from './istio-config.js';
import { outboundClusterName } from './names.js';
import { socketAddress } from './filters.js';
import { byName, type EnvoyResource, type Json } from './types.js';
import { endpointTlsMetadata } from './mtls.js';

function localityOf(e: MeshEndpoint): Json {
  const out: Json = {};
  if (e.region) out.region = e.region;
  if (e.zone) out.zone = e.zone;
  if (e.subZone) out.sub_zone = e.subZone;
  return out;
}

function endpointAddress(e: MeshEndpoint): Json {
  // A ServiceEntry endpoint or WorkloadEntry may be a unix domain socket.
  return e.address.startsWith('unix://') ? { pipe: { path: e.address.slice('unix://'.length) } } : socketAddress(e.address, e.port);
}

/** Endpoints grouped by locality, each locality weighted by the sum of its endpoints' weights. */
export function localityEndpoints(eps: readonly MeshEndpoint[]): Json[] {
  // Group by locality; gRPC ignores localities without a weight, so each carries one.
  const byLocality = new Map<string, { locality: Json; weight: number; lbEndpoints: Json[] }>();
  for (const e of eps) {
    const key = `${e.region ?? ''}/${e.zone ?? ''}/${e.subZone ?? ''}`;
    let group = byLocality.get(key);
    if (!group) byLocality.set(key, (group = { locality: localityOf(e), weight: 0, lbEndpoints: [] }));
    const metadata = endpointTlsMetadata(e.labels);
    // Envoy refuses a weight of 0: a 0 weight (as unset) counts as 1.
    const weight = e.weight ? e.weight : 1;
    group.weight += weight;
    group.lbEndpoints.push({ endpoint: { address: endpointAddress(e) }, ...(metadata ? { metadata } : {}), load_balancing_weight: weight });
  }
  return [...byLocality.keys()].sort().map((key) => {
    const g = byLocality.get(key)!;
    return { locality: g.locality, lb_endpoints: g.lbEndpoints, load_balancing_weight: g.weight };
  });
}

/** A subset as some client namespaces see it: its labels, and the rule that defines it. */
export interface SubsetSelection {
  subset: string;
  labels: Labels;
  /** The DestinationRule, `namespace/name`. */
  rule: string;
  /** Appended to Istio's cluster name to name its load assignment: '' for the rule that owns the name. */
  qualifier: string;
}

const subsetIndex = new WeakMap<MeshSnapshot['config'], Map<string, Map<string, SubsetSelection>>>();

/**
 * Which load assignment a subset cluster reads: the one selected by the DestinationRule the
 * cluster was built from, found by the clusters' own lookup (destinationRuleFor: the
 * client's namespace, the service's, then istio-system).
 *
 * Load assignments are shared by every proxy, so one name must mean one endpoint set.
 * Istio's name, `outbound|<port>|<subset>|<host>`, belongs to the rule a client in a
 * namespace without rules of its own gets (the service's namespace, then istio-system: the
 * common case); a subset name that rule does not define belongs to the first other rule
 * (by namespace/name) that does. Any other rule defining that subset name (a client-side
 * override, seen only from its own namespace) gets a load assignment of its own, named
 * `outbound|<port>|<subset>|<host>|<namespace>/<rule>`: a cluster built from that rule keeps
 * Istio's name and must name this one as its EDS service_name.
 */
export function subsetServiceName(snapshot: MeshSnapshot, svc: MeshService, port: number, subset: string, clientNamespace: string): string {
  const base = outboundClusterName(port, svc.hostname, subset);
  const dr = destinationRuleFor(snapshot.config, svc.hostname, clientNamespace, svc.namespace, snapshot.domain);
  if (!dr) return base;
  const rule = `${dr.metadata.namespace}/${dr.metadata.name}`;
  const owner = subsetsByHost(snapshot).get(svc.hostname)?.get(subset);
  return !owner || owner.rule === rule ? base : `${base}|${rule}`;
}

/**
 * For each host, every subset some client can resolve, keyed by the suffix of its load
 * assignment's name (see subsetServiceName): the subset name alone for the rule that owns
 * it, `<subset>|<namespace>/<rule>` for every other rule defining it. Within one rule the
 * first definition of a name wins.
 */
export function subsetsByHost(snapshot: MeshSnapshot): Map<string, Map<string, SubsetSelection>> {
  let index = subsetIndex.get(snapshot.config);
  if (!index) {
    index = new Map();
    const rulesByHost = new Map<string, DestinationRuleObject[]>();
    for (const dr of snapshot.config.destinationRules) {
      if (dr.spec.workloadSelector || !dr.spec.subsets?.length) continue;
      const host = resolveHost(dr.spec.host, dr.metadata.namespace, snapshot.domain);
      const list = rulesByHost.get(host);
      if (list) list.push(dr);
      else rulesByHost.set(host, [dr]);
    }
    for (const svc of snapshot.services) {
      const rules = rulesByHost.get(svc.hostname);
      if (!rules) continue;
      const shared = destinationRuleFor(snapshot.config, svc.hostname, '', svc.namespace, snapshot.domain);
      const ordered = shared && rules.includes(shared) ? [shared, ...rules.filter((r) => r !== shared)] : rules;
      const subsets = new Map<string, SubsetSelection>();
      for (const dr of ordered) {
        const rule = `${dr.metadata.namespace}/${dr.metadata.name}`;
        const seen = new Set<string>();
        for (const s of dr.spec.subsets ?? []) {
          if (seen.has(s.name)) continue;
          seen.add(s.name);
          const qualifier = subsets.has(s.name) ? `|${rule}` : '';
          subsets.set(`${s.name}${qualifier}`, { subset: s.name, labels: s.labels ?? {}, rule, qualifier });
        }
      }
      index.set(svc.hostname, subsets);
    }
    subsetIndex.set(snapshot.config, index);
  }
  return index;
}

export function serviceLoadAssignments(snapshot: MeshSnapshot, svc: MeshService): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  // A ServiceEntry host resolved otherwise (NONE, DNS) has no load assignment: its clusters carry their endpoints.
  if (svc.entry && svc.entry.resolution !== 'STATIC') return out;
  const subsets = subsetsByHost(snapshot).get(svc.hostname);
  for (const port of svc.ports) {
    if (port.protocol === 'UDP') continue;
    const name = outboundClusterName(port.port, svc.hostname);
    const eps = snapshot.endpoints.get(endpointKey(svc.hostname, port.port)) ?? [];
    out.push({ name, body: { cluster_name: name, endpoints: localityEndpoints(eps) } });
    for (const sel of subsets?.values() ?? []) {
      const subsetName = outboundClusterName(port.port, svc.hostname, sel.subset) + sel.qualifier;
      const selected = eps.filter((e) => Object.entries(sel.labels).every(([k, v]) => e.labels[k] === v));
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
  return snapshot.services.flatMap((s) => serviceLoadAssignments(snapshot, s)).sort(byName);
}
