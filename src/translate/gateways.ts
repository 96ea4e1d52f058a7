// Gateways: for a router proxy, the Gateway servers whose selector matches its labels
// become listeners `0.0.0.0_<port>`, bound as Istio binds them on the targetPort of the
// gateway pod's Service for the server port (model/gateway-ports.ts); the VirtualServices bound to
// those Gateways become route configurations `http.<port>` (the port listened on, as Istio
// names them), with a virtual host `<host>:<server port>` per Gateway host.
import type { MeshSnapshot } from '../model/mesh.js';
import type { VirtualServiceObject } from '../model/objects.js';
import { claimGatewayServers, HTTP_PROTOCOLS, type ClaimedServer } from '../model/validation/gateway-servers.js';
import type { ProxyContext } from './proxy-context.js';
import { httpConnectionManager, routeConfigurableFilters, socketAddress, tlsInspector } from './filters.js';
import { hostMatches, resolveHost, virtualServicesFor } from './istio-config.js';
import { meshRetryPolicy, matchApplies, virtualServiceRoutes, type RouteContext } from './http-routes.js';
import { firstTcpRoute, tcpProxyFor } from './tcp-routes.js';
import { listenerName } from './names.js';
import { anyOf, byName, type EnvoyResource, type Json } from './types.js';
import { listenerLogsOf, proxyTelemetry, type SideTelemetry } from './telemetry.js';
import { authorizationFilters } from './authorization.js';
import { jwtAuthnFilters } from './request-authentication.js';

/** A server a gateway proxy serves: the Gateway that keeps it, with the hosts it keeps. */
export type GatewayServer = ClaimedServer;

/**
 * The servers this router serves, by the port it listens on for them, as the validation
 * stage decides them (model/validation/gateway-servers.ts: the first Gateway by
 * namespace/name keeps a listening port and host; a listening port carries one protocol).
 */
export function gatewayServers(snapshot: MeshSnapshot, ctx: ProxyContext): Map<number, GatewayServer[]> {
  return claimGatewayServers(snapshot.config.gateways, snapshot.services, ctx.proxy).byPort;
}

/** Istio's name for the route configuration of the HTTP servers on a listening port: `http.<listening port>`. */
function routeName(listenPort: number): string {
  return `http.${listenPort}`;
}

/** Istio's name for an HTTPS server's route configuration: `https.<server port>.<port name>.<gateway>.<namespace>`. */
export function httpsRouteName(s: GatewayServer): string {
  return `https.${s.server.port.number}.${s.server.port.name ?? s.index}.${s.gateway.metadata.name}.${s.gateway.metadata.namespace}`;
}

/** The SDS name of a Gateway credential, and of its CA for mutual TLS. */
export function credentialSecretName(credentialName: string, ca = false): string {
  return `kubernetes://${credentialName}${ca ? '-cacert' : ''}`;
}

/** Servers that terminate TLS with a credential meshd can serve. */
export function terminatesTls(s: GatewayServer, snapshot: MeshSnapshot, proxyNamespace: string): boolean {
  const tls = s.server.tls;
  if (!tls || (tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL') || !tls.credentialName) return false;
  // Gateways read credentials from their own namespace only.
  return snapshot.config.secrets.has(`${proxyNamespace}/${tls.credentialName}`);
}

const SDS_SOURCE: Json = { ads: {}, resource_api_version: 'V3' };

function sniNames(hosts: readonly string[]): string[] {
  const names = hosts.map((h) => (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h));
  return names.includes('*') ? [] : [...new Set(names)].sort();
}

/** The HTTP connection manager options a gateway's telemetry sets. */
function gatewayHcmTelemetry(tel: SideTelemetry): { accessLog: Json[] | undefined; tracing: Json | undefined; requestIdExtension: Json | undefined } {
  return { accessLog: tel.logs, tracing: tel.tracing, requestIdExtension: tel.requestIdExtension };
}

function tlsChain(s: GatewayServer, statPrefix: string, tel: SideTelemetry, authzHttp: Json[]): Json {
  const tls = s.server.tls!;
  const common: Json = {
    tls_certificate_sds_secret_configs: [{ name: credentialSecretName(tls.credentialName!), sds_config: SDS_SOURCE }],
    alpn_protocols: ['h2', 'http/1.1'],
  };
  if (tls.mode === 'MUTUAL') common.validation_context_sds_secret_config = { name: credentialSecretName(tls.credentialName!, true), sds_config: SDS_SOURCE };
  const sni = sniNames(s.server.hosts);
  return {
    ...(sni.length ? { filter_chain_match: { server_names: sni } } : {}),
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: anyOf('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', {
        common_tls_context: common,
        ...(tls.mode === 'MUTUAL' ? { require_client_certificate: true } : {}),
      }),
    },
    filters: [httpConnectionManager({ statPrefix, rds: httpsRouteName(s), httpFilters: [...authzHttp, ...routeConfigurableFilters()], ...gatewayHcmTelemetry(tel) })],
  };
}

function gatewayListener(tel: SideTelemetry, port: number, filterChains: Json[], listenerFilters?: Json[]): EnvoyResource {
  const name = listenerName('0.0.0.0', port);
  return {
    name,
    body: {
      name,
      address: socketAddress('0.0.0.0', port),
      traffic_direction: 'OUTBOUND',
      ...(listenerFilters ? { listener_filters: listenerFilters } : {}),
      filter_chains: filterChains,
      ...listenerLogsOf(tel),
    },
  };
}

export function gatewayListeners(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  const tel = proxyTelemetry(snapshot, ctx.proxy).client;
  // AuthorizationPolicies that apply to this gateway: RBAC before routing, or before the TCP proxy;
  // RequestAuthentications' jwt_authn before RBAC, which reads the verified token's payload.
  const authz = authorizationFilters(snapshot.config, ctx.proxy, snapshot);
  const httpSecurity = [...jwtAuthnFilters(snapshot.config, ctx.proxy), ...authz.http];
  for (const [port, servers] of gatewayServers(snapshot, ctx)) {
    const protocol = servers[0]!.server.port.protocol.toUpperCase();
    const statPrefix = `outbound_${listenerName('0.0.0.0', port)}`;
    if (HTTP_PROTOCOLS.has(protocol)) {
      out.push(gatewayListener(tel, port, [{ filters: [httpConnectionManager({ statPrefix, rds: routeName(port), httpFilters: [...httpSecurity, ...routeConfigurableFilters()], ...gatewayHcmTelemetry(tel) })] }]));
      continue;
    }
    if (protocol === 'TCP' || (protocol === 'TLS' && servers[0]!.server.tls?.mode === 'PASSTHROUGH')) {
      const chains = l4Chains(snapshot, ctx, servers, protocol === 'TLS', statPrefix, tel.logs).map((c) => ({ ...c, filters: [...authz.tcp, ...(c.filters as Json[])] }));
      if (chains.length) out.push(gatewayListener(tel, port, chains, protocol === 'TLS' ? [tlsInspector()] : undefined));
      continue;
    }
    // TLS terminated with a credential from meshd (SDS); a server whose Secret is missing is left out.
    const chains = servers.filter((s) => terminatesTls(s, snapshot, ctx.proxy.namespace)).map((s) => tlsChain(s, statPrefix, tel, httpSecurity));
    if (chains.length === 0) continue;
    out.push(gatewayListener(tel, port, chains, [tlsInspector()]));
  }
  return out.sort(byName);
}


/** Routes match `port` against the Gateway server's port (the port clients reach), as in Istio. */
function routeContext(snapshot: MeshSnapshot, ctx: ProxyContext, s: GatewayServer): RouteContext {
  return { snapshot, gateway: s.ref, port: s.server.port.number, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels };
}

/**
 * TCP servers: the first applicable `tcp` route of the VirtualServices bound to the
 * Gateway. TLS PASSTHROUGH servers: a filter chain per `tls` route, chosen by SNI.
 */
function l4Chains(snapshot: MeshSnapshot, ctx: ProxyContext, servers: GatewayServer[], bySni: boolean, statPrefix: string, logs: Json[] | undefined): Json[] {
  const chains: Json[] = [];
  const sniTaken = new Set<string>();
  for (const s of servers) {
    const rc = routeContext(snapshot, ctx, s);
    for (const vs of virtualServicesFor(snapshot.config, s.ref, ctx.proxy.namespace)) {
      const hosts = (vs.spec.hosts ?? []).map((h) => resolveHost(h, vs.metadata.namespace, snapshot.domain));
      if (!hosts.some((h) => s.server.hosts.some((p) => hostAllows(p, vs, h)))) continue;
      if (!bySni) {
        const route = firstTcpRoute(vs, rc);
        if (route && chains.length === 0) chains.push({ filters: [tcpProxyFor(route, rc, vs, statPrefix, logs)] });
        continue;
      }
      for (const route of vs.spec.tls ?? []) {
        const snis = [...new Set(route.match.filter((m) => matchApplies(m, rc, vs.metadata.namespace)).flatMap((m) => m.sniHosts))]
          .filter((n) => !sniTaken.has(n) && s.server.hosts.some((p) => hostAllows(p, vs, n)))
          .sort();
        if (snis.length === 0) continue;
        for (const n of snis) sniTaken.add(n);
        chains.push({ filter_chain_match: { server_names: snis }, filters: [tcpProxyFor(route, rc, vs, statPrefix, logs)] });
      }
    }
  }
  return chains;
}

/** Gateway host patterns may carry a namespace ("ns/host"): only VirtualServices there may use them. */
export function hostAllows(pattern: string, vs: VirtualServiceObject, host: string): boolean {
  const slash = pattern.indexOf('/');
  const ns = slash >= 0 ? pattern.slice(0, slash) : '*';
  const hostPattern = slash >= 0 ? pattern.slice(slash + 1) : pattern;
  if (ns !== '*' && ns !== '.' && ns !== vs.metadata.namespace) return false;
  return hostMatches(hostPattern, host);
}

/**
 * Virtual hosts for a set of servers on one listening port: VirtualServices for one host
 * merge, in order. A virtual host is named, and matches the authority, with the port of the
 * first server that has its host (the Gateway's port, which clients send in `Host`).
 */
function serverVirtualHosts(snapshot: MeshSnapshot, ctx: ProxyContext, servers: GatewayServer[]): Json[] {
  const hosts = new Map<string, { port: number; routes: Json[]; httpsRedirect: boolean }>();
  for (const s of servers) {
    const rc = routeContext(snapshot, ctx, s);
    for (const vs of virtualServicesFor(snapshot.config, s.ref, ctx.proxy.namespace)) {
      for (const h of vs.spec.hosts ?? []) {
        const host = resolveHost(h, vs.metadata.namespace, snapshot.domain);
        if (!s.server.hosts.some((p) => hostAllows(p, vs, host))) continue;
        let vh = hosts.get(host);
        if (!vh) hosts.set(host, (vh = { port: s.server.port.number, routes: [], httpsRedirect: s.server.tls?.httpsRedirect === true }));
        vh.routes.push(...virtualServiceRoutes(vs, rc));
      }
    }
  }
  const retry = meshRetryPolicy(snapshot.meshConfig);
  return [...hosts.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([host, vh]) => ({
      name: `${host}:${vh.port}`,
      domains: host === '*' ? ['*'] : [host, `${host}:${vh.port}`],
      routes: vh.routes,
      // The mesh's default retry policy for the routes that have none of their own.
      ...(retry ? { retry_policy: retry } : {}),
      ...(vh.httpsRedirect ? { require_tls: 'ALL' } : {}),
    }));
}

export function gatewayRoutes(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const [port, servers] of gatewayServers(snapshot, ctx)) {
    if (HTTP_PROTOCOLS.has(servers[0]!.server.port.protocol.toUpperCase())) {
      const name = routeName(port);
      out.push({ name, body: { name, virtual_hosts: serverVirtualHosts(snapshot, ctx, servers), validate_clusters: false } });
      continue;
    }
    for (const s of servers) {
      if (!terminatesTls(s, snapshot, ctx.proxy.namespace)) continue;
      const name = httpsRouteName(s);
      out.push({ name, body: { name, virtual_hosts: serverVirtualHosts(snapshot, ctx, [s]), validate_clusters: false } });
    }
  }
  return out.sort(byName);
}

/**
 * SDS secrets for the credentials this gateway's servers name, read from Secrets in the
 * gateway's own namespace: `kubernetes.io/tls` (tls.crt, tls.key, ca.crt) or generic
 * (cert, key, cacert).
 */
export function gatewaySecrets(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const out = new Map<string, EnvoyResource>();
  for (const servers of gatewayServers(snapshot, ctx).values()) {
    for (const s of servers) {
      if (!terminatesTls(s, snapshot, ctx.proxy.namespace)) continue;
      const credential = s.server.tls!.credentialName!;
      const secret = snapshot.config.secrets.get(`${ctx.proxy.namespace}/${credential}`)!;
      const cert = secret.data['tls.crt'] ?? secret.data.cert;
      const key = secret.data['tls.key'] ?? secret.data.key;
      const ca = secret.data['ca.crt'] ?? secret.data.cacert;
      if (cert && key) {
        const name = credentialSecretName(credential);
        out.set(name, { name, body: { name, tls_certificate: { certificate_chain: { inline_bytes: cert }, private_key: { inline_bytes: key } } } });
      }
      if (s.server.tls!.mode === 'MUTUAL' && ca) {
        const name = credentialSecretName(credential, true);
        out.set(name, { name, body: { name, validation_context: { trusted_ca: { inline_bytes: ca } } } });
      }
    }
  }
  return [...out.values()].sort(byName);
}
