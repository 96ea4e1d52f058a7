// Gateways: for a router proxy, the Gateway servers whose selector matches its labels
// become listeners `0.0.0.0_<port>`; the VirtualServices bound to those Gateways become
// route configurations `http.<port>`, with a virtual host per Gateway host.
import type { MeshSnapshot } from '../model/mesh.js';
import type { GatewayObject, VirtualServiceObject } from '../model/objects.js';
import type { GatewaySpec } from '../model/istio.js';
import { selectorMatches } from '../model/labels.js';
import type { ProxyContext } from './proxy-context.js';
import { httpConnectionManager, routeConfigurableFilters, socketAddress } from './filters.js';
import { hostMatches, resolveHost, virtualServicesFor } from './istio-config.js';
import { virtualServiceRoutes, type RouteContext } from './http-routes.js';
import { listenerName } from './names.js';
import { byName, type EnvoyResource, type Json } from './types.js';

type Server = GatewaySpec['servers'][number];

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

export interface GatewayServer {
  gateway: GatewayObject;
  /** "ns/name" */
  ref: string;
  server: Server;
  index: number;
}

export interface GatewayConflict {
  loser: string;
  winner: string;
  port: number;
  host: string;
}

/**
 * The servers this router serves, by port. Two Gateways claiming one port and host:
 * the first by namespace/name keeps it, the other is reported. Ports carry one protocol.
 */
export function gatewayServers(snapshot: MeshSnapshot, ctx: ProxyContext): { byPort: Map<number, GatewayServer[]>; conflicts: GatewayConflict[] } {
  const byPort = new Map<number, GatewayServer[]>();
  const conflicts: GatewayConflict[] = [];
  const claimed = new Map<string, string>();
  const portProtocol = new Map<number, string>();
  for (const gw of snapshot.config.gateways) {
    if (!selectorMatches(gw.spec.selector, ctx.proxy.labels)) continue;
    const ref = `${gw.metadata.namespace}/${gw.metadata.name}`;
    gw.spec.servers.forEach((server, index) => {
      const protocol = server.port.protocol.toUpperCase();
      const port = server.port.number;
      const family = HTTP_PROTOCOLS.has(protocol) ? 'HTTP' : protocol;
      const existing = portProtocol.get(port);
      if (existing && existing !== family) {
        conflicts.push({ loser: ref, winner: claimed.get(`${port}/*proto`) ?? '', port, host: `protocol ${protocol}` });
        return;
      }
      const hosts = server.hosts.filter((h) => {
        const key = `${port}/${h}`;
        const owner = claimed.get(key);
        if (owner && owner !== ref) {
          conflicts.push({ loser: ref, winner: owner, port, host: h });
          return false;
        }
        claimed.set(key, ref);
        return true;
      });
      if (hosts.length === 0) return;
      portProtocol.set(port, family);
      claimed.set(`${port}/*proto`, claimed.get(`${port}/*proto`) ?? ref);
      let list = byPort.get(port);
      if (!list) byPort.set(port, (list = []));
      list.push({ gateway: gw, ref, server: { ...server, hosts }, index });
    });
  }
  return { byPort: new Map([...byPort.entries()].sort((a, b) => a[0] - b[0])), conflicts };
}

function routeName(port: number): string {
  return `http.${port}`;
}

export function gatewayListeners(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const [port, servers] of gatewayServers(snapshot, ctx).byPort) {
    const protocol = servers[0]!.server.port.protocol.toUpperCase();
    if (!HTTP_PROTOCOLS.has(protocol)) continue; // TLS, TCP and HTTPS servers come with SDS.
    const name = listenerName('0.0.0.0', port);
    out.push({
      name,
      body: {
        name,
        address: socketAddress('0.0.0.0', port),
        traffic_direction: 'OUTBOUND',
        filter_chains: [{ filters: [{ ...httpConnectionManager({ statPrefix: `outbound_${name}`, rds: routeName(port), httpFilters: routeConfigurableFilters() }) }] }],
      },
    });
  }
  return out.sort(byName);
}

/** Gateway host patterns may carry a namespace ("ns/host"): only VirtualServices there may use them. */
function hostAllows(pattern: string, vs: VirtualServiceObject, host: string): boolean {
  const slash = pattern.indexOf('/');
  const ns = slash >= 0 ? pattern.slice(0, slash) : '*';
  const hostPattern = slash >= 0 ? pattern.slice(slash + 1) : pattern;
  if (ns !== '*' && ns !== '.' && ns !== vs.metadata.namespace) return false;
  return hostMatches(hostPattern, host);
}

export function gatewayRoutes(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const [port, servers] of gatewayServers(snapshot, ctx).byPort) {
    if (!HTTP_PROTOCOLS.has(servers[0]!.server.port.protocol.toUpperCase())) continue;
    // Virtual hosts by host; VirtualServices for one host on a gateway merge, in order.
    const hosts = new Map<string, { routes: Json[]; httpsRedirect: boolean }>();
    for (const s of servers) {
      const rc: RouteContext = { snapshot, gateway: s.ref, port, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels };
      for (const vs of virtualServicesFor(snapshot.config, s.ref, ctx.proxy.namespace)) {
        for (const h of vs.spec.hosts ?? []) {
          const host = resolveHost(h, vs.metadata.namespace, snapshot.domain);
          if (!s.server.hosts.some((p) => hostAllows(p, vs, host))) continue;
          let vh = hosts.get(host);
          if (!vh) hosts.set(host, (vh = { routes: [], httpsRedirect: s.server.tls?.httpsRedirect === true }));
          vh.routes.push(...virtualServiceRoutes(vs, rc));
        }
      }
    }
    const virtualHosts = [...hosts.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : 1))
      .map(([host, vh]) => ({
        name: `${host}:${port}`,
        domains: host === '*' ? ['*'] : [host, `${host}:${port}`],
        routes: vh.routes,
        ...(vh.httpsRedirect ? { require_tls: 'ALL' } : {}),
      }));
    const name = routeName(port);
    out.push({ name, body: { name, virtual_hosts: virtualHosts, validate_clusters: false } });
  }
  return out.sort(byName);
}
