// VirtualService `tcp` and `tls` routes: where a TCP connection goes, by port, source
// and (for TLS) SNI, as a TCP proxy to one cluster or weighted clusters.
import type { VirtualServiceObject } from '../model/objects.js';
import { destinationCluster, matchApplies, type RouteContext } from './http-routes.js';
import { tcpProxy } from './filters.js';
import type { Json } from './types.js';

type L4Route = NonNullable<VirtualServiceObject['spec']['tcp']>[number];


/** A TCP proxy filter for a route's destinations (weighted when there are several). */
export function tcpProxyFor(route: L4Route, rc: RouteContext, vs: VirtualServiceObject, statPrefix: string, accessLog: Json[] | undefined): Json {
  const dests = (route.route ?? []).filter((d) => d.weight === undefined || d.weight > 0).map((d) => ({ weight: d.weight, ...destinationCluster(rc, d.destination, vs.metadata.namespace) }));
  const target =
    dests.length === 1
      ? { cluster: dests[0]!.cluster }
      : { weighted_clusters: { clusters: dests.map((d) => ({ name: d.cluster, weight: d.weight ?? Math.floor(100 / dests.length) })) } };
  return tcpProxy(statPrefix, target, accessLog);
}

/** The first `tcp` route of `vs` that applies here (Istio takes the first match). */
export function firstTcpRoute(vs: VirtualServiceObject, rc: RouteContext): L4Route | undefined {
  return (vs.spec.tcp ?? []).find((r) => !r.match?.length || r.match.some((m) => matchApplies(m, rc, vs.metadata.namespace)));
}

/** The first `tls` route of `vs` that applies here to connections with SNI `sni`. */
export function firstTlsRoute(vs: VirtualServiceObject, rc: RouteContext, sni: string): L4Route | undefined {
  return (vs.spec.tls ?? []).find((r) => r.match.some((m) => matchApplies(m, rc, vs.metadata.namespace) && m.sniHosts.some((h) => h === sni || h === '*' || (h.startsWith('*.') && sni.endsWith(h.slice(1))))));
}
