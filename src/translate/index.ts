// The translator's entry point: a pure function of (snapshot, proxy) to Envoy resources.
import type { MeshSnapshot } from '../model/mesh.js';
import { clustersFor, outboundClusters } from './clusters.js';
import { loadAssignments } from './endpoints.js';
import { listenersFor } from './listeners.js';
import { proxyContext, type ProxyContext } from './proxy-context.js';
import { routesFor } from './routes.js';
import { gatewaySecrets } from './gateways.js';
import { TypeUrl, type EnvoyResource } from './types.js';
import { splitVirtualHosts } from './virtual-hosts.js';
import type { TranslationMemo } from './memo.js';

export type ResourcesByType = Record<TypeUrl, EnvoyResource[]>;

/**
 * Everything one proxy of this context's class gets, per type, each list sorted by name.
 * meshd serves through xds/generator.ts, which passes the clusters it shares between classes
 * and keeps endpoints (the same for every proxy) apart; called alone, this translates all.
 */
export function translateContext(snapshot: MeshSnapshot, ctx: ProxyContext, shared?: { clusters?: EnvoyResource[]; endpoints?: EnvoyResource[]; memo?: TranslationMemo }): ResourcesByType {
  const whole = routesFor(snapshot, ctx, shared?.memo);
  // A sidecar on delta ADS takes its service virtual hosts over VHDS (virtual-hosts.ts).
  const routes = ctx.vhds ? splitVirtualHosts(whole) : { routes: whole, virtualHosts: [] };
  return {
    [TypeUrl.Cluster]: clustersFor(snapshot, ctx, shared?.clusters ?? outboundClusters(snapshot, ctx.proxy.namespace, { mtls: ctx.mtls, scope: ctx.scope })),
    [TypeUrl.ClusterLoadAssignment]: shared?.endpoints ?? loadAssignments(snapshot),
    [TypeUrl.Listener]: listenersFor(snapshot, ctx),
    [TypeUrl.RouteConfiguration]: routes.routes,
    [TypeUrl.VirtualHost]: routes.virtualHosts,
    [TypeUrl.Secret]: ctx.proxy.type === 'router' ? gatewaySecrets(snapshot, ctx) : [],
  };
}

export { proxyContext, type ProxyContext };
export * from './types.js';
export { TranslationMemo } from './memo.js';
