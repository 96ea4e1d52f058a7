// RDS: one route configuration per outbound HTTP port (named by the port), with a
// virtual host per service; and, for proxyless gRPC, one per `<host>:<port>` listener.
import type { MeshService, MeshServicePort, MeshSnapshot } from '../model/mesh.js';
import { visibleFrom } from '../model/service.js';
import { mayCarryHttp } from '../model/protocol.js';
import type { ProxyContext } from './proxy-context.js';
import { PASSTHROUGH_CLUSTER, outboundClusterName, proxylessTargets } from './names.js';
import { byName, type EnvoyResource, type Json } from './types.js';
import { meshRetryPolicy, readsClientLabels, virtualServiceRouteInputs, virtualServiceRoutes, type RouteContext } from './http-routes.js';
import { memoized, type TranslationMemo } from './memo.js';
import { labelsKey } from '../model/labels.js';
import { MESH_GATEWAY, virtualServicesFor } from './istio-config.js';
import type { VirtualServiceObject } from '../model/objects.js';
import type { MeshConfig } from '../model/mesh-config.js';
import { gatewayRoutes } from './gateways.js';
import { meshHostOwners } from '../model/validation/mesh-hosts.js';
import { seesServicePort, type SidecarScope } from './sidecar-scope.js';

/**
 * The names a client in `clientNamespace` may use for `svc`. Sidecar route configurations
 * ignore the port in the Host header (the listener already chose the port), as Istio's do.
 */
export function serviceDomains(svc: MeshService, clientNamespace: string): string[] {
  // A ServiceEntry's host is its only name (a wildcard host matches as Envoy's domain wildcard), and its IP addresses.
  if (svc.entry) return [svc.hostname, ...svc.entry.addresses.filter((a) => !a.includes('/')).map((a) => (a.includes(':') ? `[${a}]` : a))];
  const names = [svc.hostname, `${svc.name}.${svc.namespace}.svc`, `${svc.name}.${svc.namespace}`];
  if (clientNamespace === svc.namespace) names.push(svc.name);
  if (svc.clusterIP) names.push(svc.clusterIP.includes(':') ? `[${svc.clusterIP}]` : svc.clusterIP);
  return names;
}

function serviceVirtualHost(svc: MeshService, port: MeshServicePort, domains: string[], vs: VirtualServiceObject | undefined, rc: RouteContext): Json {
  if (vs) {
    // A VirtualService replaces the default route; a request matching none of its routes gets 404.
    return { name: `${svc.hostname}:${port.port}`, domains, routes: virtualServiceRoutes(vs, rc), ...retryOf(rc), include_request_attempt_count: true };
  }
  return {
    name: `${svc.hostname}:${port.port}`,
    domains,
    routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: outboundClusterName(port.port, svc.hostname), timeout: '0s', max_stream_duration: { grpc_timeout_header_max: '0s' } } }],
    // The mesh's default retry policy, once for the virtual host: its routes without a policy of their own use it.
    ...retryOf(rc),
    include_request_attempt_count: true,
  };
}

/** `retry_policy` of a virtual host: the mesh default, or none when the mesh config turns retries off. */
function retryOf(rc: RouteContext): Json {
  const policy = meshRetryPolicy(rc.snapshot.meshConfig);
  return policy ? { retry_policy: policy } : {};
}

/** The outbound traffic policy of a proxy: its Sidecar's, else the mesh config's. */
export function outboundMode(ctx: ProxyContext, mesh: MeshConfig): MeshConfig['outboundTrafficPolicy']['mode'] {
  return ctx.scope?.outboundMode ?? mesh.outboundTrafficPolicy.mode;
}

function catchAllVirtualHost(ctx: ProxyContext, mesh: MeshConfig): Json {
  // Outbound traffic to unknown hosts is allowed (Istio's ALLOW_ANY) when traffic is
  // captured; without capture there is no original destination to pass through to. Under
  // REGISTRY_ONLY, it gets 502, as in Istio.
  if (ctx.interception === 'REDIRECT' && outboundMode(ctx, mesh) === 'ALLOW_ANY') {
    return { name: 'allow_any', domains: ['*'], routes: [{ name: 'allow_any', match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: '0s' } }] };
  }
  return { name: 'block_all', domains: ['*'], routes: [{ name: 'block_all', match: { prefix: '/' }, direct_response: { status: 502 } }] };
}

/** Outbound HTTP ports of the mesh, with the services listening on each that `clientNamespace` sees, sorted. */
export function httpPorts(snapshot: MeshSnapshot, clientNamespace: string, scope?: SidecarScope): Map<number, { svc: MeshService; port: MeshServicePort }[]> {
  const out = new Map<number, { svc: MeshService; port: MeshServicePort }[]>();
  for (const svc of snapshot.services) {
    if (!visibleFrom(svc, clientNamespace)) continue;
    for (const port of svc.ports) {
      if (!mayCarryHttp(port.protocol) || !seesServicePort(scope, svc, port.port)) continue;
      let list = out.get(port.port);
      if (!list) out.set(port.port, (list = []));
      list.push({ svc, port });
    }
  }
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]));
}

/**
 * For sidecars, the VirtualService that governs each host: when several claim one host,
 * the first (by namespace/name) wins, as the oldest does in Istio (the validation stage's
 * rule, model/validation/mesh-hosts.ts, which reports the others).
 */
export function meshVirtualServicesByHost(snapshot: MeshSnapshot, clientNamespace: string): Map<string, VirtualServiceObject> {
  return meshHostOwners(virtualServicesFor(snapshot.config, MESH_GATEWAY, clientNamespace), snapshot.domain);
}

export function sidecarRoutes(snapshot: MeshSnapshot, ctx: ProxyContext, memo?: TranslationMemo): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  const vsByHost = meshVirtualServicesByHost(snapshot, ctx.proxy.namespace);
  for (const [portNumber, entries] of httpPorts(snapshot, ctx.proxy.namespace, ctx.scope)) {
    const used = new Set<string>();
    const virtualHosts: Json[] = [];
    const rc: RouteContext = { snapshot, gateway: MESH_GATEWAY, port: portNumber, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels };
    for (const { svc, port } of entries) {
      // Envoy rejects a domain that appears in two virtual hosts: the first service (by hostname) keeps it.
      const domains = serviceDomains(svc, ctx.proxy.namespace).filter((d) => !used.has(d));
      if (domains.length === 0) continue;
      for (const d of domains) used.add(d);
      const vs = vsByHost.get(svc.hostname);
      // Rebuilt only when one of its inputs changed (translate/memo.ts).
      const key = `vh|${portNumber}|${svc.hostname}|${port.port}|${ctx.proxy.namespace}|${vs && readsClientLabels(vs) ? labelsKey(ctx.proxy.labels) : ''}`;
      const deps = [svc, vs, domains.join(','), snapshot.meshConfig, ...(vs ? virtualServiceRouteInputs(vs, rc) : [])];
      virtualHosts.push(memoized(memo, key, deps, () => serviceVirtualHost(svc, port, domains, vs, rc)));
    }
    virtualHosts.push(catchAllVirtualHost(ctx, snapshot.meshConfig));
    const name = String(portNumber);
    out.push({ name, body: { name, virtual_hosts: virtualHosts, validate_clusters: false, ignore_port_in_host_matching: true } });
  }
  return out;
}

/** Proxyless gRPC: a route configuration named `<host>:<port>` for each service port. */
export function grpcRoutes(snapshot: MeshSnapshot): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const { svc, port, name } of proxylessTargets(snapshot)) {
    const route = { name: 'default', match: { prefix: '' }, route: { cluster: outboundClusterName(port.port, svc.hostname) } };
    out.push({ name, body: { name, virtual_hosts: [{ name, domains: [svc.hostname, name], routes: [route] }] } });
  }
  return out.sort(byName);
}

export function routesFor(snapshot: MeshSnapshot, ctx: ProxyContext, memo?: TranslationMemo): EnvoyResource[] {
  if (ctx.proxyless) return grpcRoutes(snapshot);
  if (ctx.proxy.type === 'router') return gatewayRoutes(snapshot, ctx);
  return sidecarRoutes(snapshot, ctx, memo).sort(byName);
}
