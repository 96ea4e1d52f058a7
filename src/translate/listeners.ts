// LDS: for sidecars, `virtualOutbound` (15001) handing captured connections to
// per-port outbound listeners, and `virtualInbound` (15006) for the workload's own
// ports; without capture (INTERCEPTION_MODE=NONE) the outbound listeners bind to
// 127.0.0.1 instead. For proxyless gRPC, one API listener per `<host>:<port>`.
import type { MeshService, MeshServicePort, MeshSnapshot } from '../model/mesh.js';
import type { WorkloadCertificates } from '../model/proxy.js';
import { isHttpProtocol, type Protocol } from '../model/protocol.js';
import { MESH_HTTP_ALPN, MESH_TCP_ALPN, SNIFFED_HTTP_PROTOCOLS, detectionTimeout, httpInspector, meshHttpAlpnFilter } from './sniffing.js';
import type { InboundPort, ProxyContext } from './proxy-context.js';
import { MESH_ALPN, istioMutualServerSocket } from './mtls.js';
import { effectivePeerAuthentication } from './peer-authentication.js';
import { authorizationFilters, type AuthzFilters } from './authorization.js';
import { jwtAuthnFilters } from './request-authentication.js';
import { ADS_CONFIG_SOURCE, httpConnectionManager, routeConfigurableFilters, routerFilter, socketAddress, tcpProxy, tlsInspector } from './filters.js';
import { httpPorts, meshVirtualServicesByHost, outboundMode } from './routes.js';
import { seesServicePort } from './sidecar-scope.js';
import { visibleFrom } from '../model/service.js';
import { firstTcpRoute, firstTlsRoute, tcpProxyFor } from './tcp-routes.js';
import { MESH_GATEWAY } from './istio-config.js';
import type { RouteContext } from './http-routes.js';
import type { VirtualServiceObject } from '../model/objects.js';
import { gatewayListeners } from './gateways.js';
import { listenerLogsOf, proxyTelemetry, type SideTelemetry } from './telemetry.js';
import type { MeshConfig } from '../model/mesh-config.js';
import {
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER,
  PASSTHROUGH_CLUSTER,
  VIRTUAL_INBOUND,
  VIRTUAL_INBOUND_PORT,
  VIRTUAL_OUTBOUND,
  VIRTUAL_OUTBOUND_PORT,
  inboundClusterName,
  listenerName,
  outboundClusterName,
  proxylessTargets,
} from './names.js';
import { anyOf, byName, type EnvoyResource, type Json } from './types.js';

const WILDCARD = '0.0.0.0';
const LOCALHOST = '127.0.0.1';

/**
 * Captured connections no other listener takes: to their original destination (Istio's
 * ALLOW_ANY), or to the black hole (REGISTRY_ONLY), with Istio's chain names.
 */
/** The TCP proxy for connections to no known service: passthrough, or the black hole under REGISTRY_ONLY. */
function catchAllTcp(ctx: ProxyContext, mesh: MeshConfig, tel: SideTelemetry): Json {
  const cluster = outboundMode(ctx, mesh) === 'REGISTRY_ONLY' ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
  return tcpProxy(cluster, cluster, tel.logs);
}

function virtualOutbound(ctx: ProxyContext, mesh: MeshConfig, tel: SideTelemetry): EnvoyResource {
  const chain = { name: outboundMode(ctx, mesh) === 'REGISTRY_ONLY' ? 'virtualOutbound-blackhole' : 'virtualOutbound-catchall-tcp', filters: [catchAllTcp(ctx, mesh, tel)] };
  return {
    name: VIRTUAL_OUTBOUND,
    body: {
      name: VIRTUAL_OUTBOUND,
      address: socketAddress(WILDCARD, VIRTUAL_OUTBOUND_PORT),
      use_original_dst: true,
      traffic_direction: 'OUTBOUND',
      filter_chains: [chain],
      ...listenerLogsOf(tel),
    },
  };
}

/** The HTTP connection manager options a sidecar's telemetry sets. */
function sidecarHcmTelemetry(tel: SideTelemetry): { accessLog: Json[] | undefined; tracing: Json | undefined; requestIdExtension: Json | undefined; preserveExternalRequestId: boolean } {
  return { accessLog: tel.logs, tracing: tel.tracing, requestIdExtension: tel.requestIdExtension, preserveExternalRequestId: true };
}

/** The HTTP connection manager of an outbound port's listener, routed by RDS `<port>`. */
function outboundHcm(name: string, port: number, tel: SideTelemetry, sniffed: boolean): Json {
  const filters = routeConfigurableFilters();
  return httpConnectionManager({ statPrefix: `outbound_${name}`, rds: String(port), httpFilters: sniffed ? [meshHttpAlpnFilter(), ...filters] : filters, ...sidecarHcmTelemetry(tel) });
}

/**
 * Filter chains of a listener whose port sniffs: HTTP (as the HTTP inspector reports it) to the
 * port's routes, anything else to `tcp`.
 */
function sniffingChains(name: string, port: number, mesh: MeshConfig, tel: SideTelemetry, tcp: Json): Json {
  return {
    listener_filters: [httpInspector()],
    ...detectionTimeout(mesh),
    filter_chains: [{ name: `${name}-http`, filter_chain_match: { application_protocols: SNIFFED_HTTP_PROTOCOLS }, filters: [outboundHcm(name, port, tel, true)] }],
    default_filter_chain: { name: `${name}-tcp`, filters: [tcp] },
  };
}

/**
 * The listener of an HTTP port, `0.0.0.0_<port>` (or 127.0.0.1 without capture). `sniffTcp`: the
 * port has services that declare no protocol, so non-HTTP traffic goes there instead.
 */
function outboundHttpListener(port: number, ctx: ProxyContext, mesh: MeshConfig, tel: SideTelemetry, sniffTcp?: Json): EnvoyResource {
  const bind = ctx.interception === 'NONE' ? LOCALHOST : WILDCARD;
  const name = listenerName(bind, port);
  return {
    name,
    body: {
      name,
      address: socketAddress(bind, port),
      ...(ctx.interception === 'REDIRECT' ? { bind_to_port: false } : {}),
      traffic_direction: 'OUTBOUND',
      ...(sniffTcp ? sniffingChains(name, port, mesh, tel, sniffTcp) : { filter_chains: [{ filters: [outboundHcm(name, port, tel, false)] }] }),
      ...listenerLogsOf(tel),
    },
  };
}

/** Where a service port's TCP connections go: its cluster, or a VirtualService's tcp route. */
function outboundTcpProxy(snapshot: MeshSnapshot, svc: MeshService, port: MeshServicePort, ctx: ProxyContext, vs: VirtualServiceObject | undefined, tel: SideTelemetry): Json {
  const cluster = outboundClusterName(port.port, svc.hostname);
  const rc: RouteContext = { snapshot, gateway: MESH_GATEWAY, port: port.port, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels };
  const tcpRoute = vs ? firstTcpRoute(vs, rc) : undefined;
  return tcpRoute && vs ? tcpProxyFor(tcpRoute, rc, vs, cluster, tel.logs) : tcpProxy(cluster, cluster, tel.logs);
}

/**
 * Where a captured TCP connection to `svc` is told apart: a Service's cluster IP (headless
 * ones have none); a ServiceEntry's IP addresses; its CIDR blocks, or its host by SNI for
 * TLS ports, or (neither) any address: chains of the port's wildcard listener, as Istio.
 */
function tcpDestinations(svc: MeshService, port: MeshServicePort): { bind: string; match?: Json; key?: string }[] {
  if (!svc.entry) return svc.clusterIP ? [{ bind: svc.clusterIP }] : [];
  const ips = svc.entry.addresses.filter((a) => !a.includes('/'));
  const cidrs = svc.entry.addresses.filter((a) => a.includes('/')).sort();
  const out: { bind: string; match?: Json; key?: string }[] = ips.map((bind) => ({ bind }));
  if (cidrs.length > 0) {
    const ranges = cidrs.map((c) => ({ address_prefix: c.slice(0, c.indexOf('/')), prefix_len: Number(c.slice(c.indexOf('/') + 1)) }));
    out.push({ bind: WILDCARD, match: { prefix_ranges: ranges }, key: `cidr:${cidrs.join(',')}` });
  }
  if (svc.entry.addresses.length === 0) {
    if (port.protocol === 'TLS' || port.protocol === 'HTTPS') out.push({ bind: WILDCARD, match: { server_names: [svc.hostname] }, key: `sni:${svc.hostname}` });
    else out.push({ bind: WILDCARD, key: 'any' });
  }
  return out;
}

/** Chains of a port's wildcard listener (ServiceEntry ports without an address), by what they match. */
type WildcardChains = Map<number, Map<string, Json>>;

/**
 * A TCP port's listeners (a sniffed port's, with capture, also route the HTTP they detect);
 * chains for the port's wildcard listener go to `wildcard` instead.
 */
function outboundTcpListeners(snapshot: MeshSnapshot, svc: MeshService, port: MeshServicePort, ctx: ProxyContext, vs: VirtualServiceObject | undefined, wildcard: WildcardChains, tel: SideTelemetry): EnvoyResource[] {
  const proxy = outboundTcpProxy(snapshot, svc, port, ctx, vs, tel);
  const mesh = snapshot.meshConfig;
  if (ctx.interception === 'NONE') {
    const name = listenerName(LOCALHOST, port.port);
    return [{ name, body: { name, address: socketAddress(LOCALHOST, port.port), traffic_direction: 'OUTBOUND', filter_chains: [{ filters: [proxy] }], ...listenerLogsOf(tel) } }];
  }
  const out: EnvoyResource[] = [];
  for (const { bind, match, key } of tcpDestinations(svc, port)) {
    if (key !== undefined) {
      let chains = wildcard.get(port.port);
      if (!chains) wildcard.set(port.port, (chains = new Map()));
      // The first service (by hostname) keeps a match; a VirtualService's tls route for the SNI decides where it goes.
      if (chains.has(key)) continue;
      const rc: RouteContext = { snapshot, gateway: MESH_GATEWAY, port: port.port, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels };
      const tlsRoute = vs && key.startsWith('sni:') ? firstTlsRoute(vs, rc, svc.hostname) : undefined;
      const filters = [tlsRoute && vs ? tcpProxyFor(tlsRoute, rc, vs, outboundClusterName(port.port, svc.hostname), tel.logs) : proxy];
      chains.set(key, { name: `${svc.hostname}_${port.port}`, ...(match ? { filter_chain_match: match } : {}), filters });
      continue;
    }
    const name = listenerName(bind, port.port);
    const chains = port.protocol === 'AUTO' ? sniffingChains(name, port.port, mesh, tel, proxy) : { filter_chains: [{ filters: [proxy] }] };
    out.push({ name, body: { name, address: socketAddress(bind, port.port), bind_to_port: false, traffic_direction: 'OUTBOUND', ...chains, ...listenerLogsOf(tel) } });
  }
  return out;
}

/**
 * The wildcard listener of a port (`0.0.0.0_<port>`) for ServiceEntry hosts without an
 * address: one chain per CIDR block or TLS host (SNI, read by the TLS inspector); what
 * none takes goes where virtualOutbound would send it (or to the host without addresses).
 */
function wildcardTcpListener(port: number, chains: Map<string, Json>, ctx: ProxyContext, mesh: MeshConfig, tel: SideTelemetry): EnvoyResource {
  const name = listenerName(WILDCARD, port);
  const logs = tel.logs;
  const fallback =
    chains.get('any') ??
    (outboundMode(ctx, mesh) === 'REGISTRY_ONLY' ? { name: 'BlackHoleCluster', filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER, logs)] } : { name: 'PassthroughCluster', filters: [tcpProxy(PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, logs)] });
  const matched = [...chains.entries()].filter(([k]) => k !== 'any').sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, c]) => c);
  const sni = matched.some((c) => (c.filter_chain_match as Json | undefined)?.server_names !== undefined);
  return {
    name,
    body: {
      name,
      address: socketAddress(WILDCARD, port),
      bind_to_port: false,
      traffic_direction: 'OUTBOUND',
      ...(sni ? { listener_filters: [tlsInspector()] } : {}),
      filter_chains: matched,
      default_filter_chain: fallback,
      ...listenerLogsOf(tel),
    },
  };
}

type InboundMtls = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/**
 * `clientCert`: the port takes mTLS, so x-forwarded-client-cert is the verified peer's (or
 * dropped, over plaintext). `authz`: the HTTP filters of RequestAuthentication (jwt_authn,
 * request-authentication.ts) then AuthorizationPolicy (RBAC, authorization.ts), and the network RBAC filters.
 */
function inboundFilters(p: InboundPort, chainName: string, clientCert: boolean, tel: SideTelemetry, authz: AuthzFilters, protocol: Protocol = p.protocol): Json[] {
  const cluster = inboundClusterName(p.targetPort);
  return isHttpProtocol(protocol)
      ? [
          httpConnectionManager({
            statPrefix: `inbound_${chainName}`,
            // RequestAuthentication's jwt_authn filter goes first, then the RBAC filters.
            httpFilters: authz.http,
            // The app sees who called, as Istio's sidecars tell it (x-forwarded-client-cert).
            ...(clientCert ? { forwardClientCertDetails: 'SANITIZE_SET' } : {}),
            ...sidecarHcmTelemetry(tel),
            routeConfig: {
              name: cluster,
              validate_clusters: false,
              virtual_hosts: [{ name: `inbound|http|${p.targetPort}`, domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster, timeout: '0s', max_stream_duration: { grpc_timeout_header_max: '0s' } } }] }],
            },
          }),
        ]
      : [...authz.tcp, tcpProxy(cluster, cluster, tel.logs)];
}

/**
 * Inbound filter chains of one workload port: with mTLS, a chain terminating mesh mTLS
 * (told by the TLS inspector from the ALPN sidecars offer) and, unless STRICT, a
 * plaintext one. Under PERMISSIVE an app's own TLS matches neither and passes through.
 */
function inboundChains(p: InboundPort, mode: InboundMtls, certs: WorkloadCertificates | undefined, tel: SideTelemetry, authz: AuthzFilters): Json[] {
  const chainName = listenerName(WILDCARD, p.targetPort);
  if (p.protocol === 'AUTO') return sniffedInboundChains(p, chainName, mode, certs, tel, authz);
  if (!certs || mode === 'DISABLE') return [{ name: chainName, filter_chain_match: { destination_port: p.targetPort }, filters: inboundFilters(p, chainName, false, tel, authz) }];
  const tls: Json = {
    name: `${chainName}_mtls`,
    // STRICT: every connection to the port must complete the mTLS handshake, so the chain
    // takes them all (plaintext fails the handshake instead of falling through to passthrough).
    filter_chain_match: mode === 'STRICT' ? { destination_port: p.targetPort } : { destination_port: p.targetPort, transport_protocol: 'tls', application_protocols: MESH_ALPN },
    transport_socket: istioMutualServerSocket(certs),
    filters: inboundFilters(p, chainName, true, tel, authz),
  };
  if (mode === 'STRICT') return [tls];
  // Plaintext callers cannot claim an identity: a forwarded x-forwarded-client-cert is dropped.
  return [tls, { name: chainName, filter_chain_match: { destination_port: p.targetPort, transport_protocol: 'raw_buffer' }, filters: inboundFilters(p, chainName, true, tel, authz) }];
}

/**
 * Inbound chains of a port that declares no protocol: plaintext HTTP as the HTTP inspector
 * detects it, mesh mTLS by the ALPN the client offers (HTTP or TCP), and TCP for the rest.
 * STRICT keeps a catch-all mTLS chain, so plaintext fails the handshake.
 */
function sniffedInboundChains(p: InboundPort, chainName: string, mode: InboundMtls, certs: WorkloadCertificates | undefined, tel: SideTelemetry, authz: AuthzFilters): Json[] {
  const port = p.targetPort;
  const filters = (protocol: Protocol, clientCert: boolean): Json[] => inboundFilters(p, chainName, clientCert, tel, authz, protocol);
  const plaintext = (clientCert: boolean, transport?: string): Json[] => [
    { name: `${chainName}-http`, filter_chain_match: { destination_port: port, ...(transport ? { transport_protocol: transport } : {}), application_protocols: SNIFFED_HTTP_PROTOCOLS }, filters: filters('HTTP', clientCert) },
    { name: `${chainName}-tcp`, filter_chain_match: { destination_port: port, ...(transport ? { transport_protocol: transport } : {}) }, filters: filters('TCP', clientCert) },
  ];
  if (!certs || mode === 'DISABLE') return plaintext(false);
  const socket = istioMutualServerSocket(certs);
  const mtlsHttp: Json = {
    name: `${chainName}_mtls-http`,
    filter_chain_match: { destination_port: port, ...(mode === 'STRICT' ? {} : { transport_protocol: 'tls' }), application_protocols: MESH_HTTP_ALPN },
    transport_socket: socket,
    filters: filters('HTTP', true),
  };
  const mtlsTcp: Json = {
    name: `${chainName}_mtls-tcp`,
    filter_chain_match: mode === 'STRICT' ? { destination_port: port } : { destination_port: port, transport_protocol: 'tls', application_protocols: MESH_TCP_ALPN },
    transport_socket: socket,
    filters: filters('TCP', true),
  };
  if (mode === 'STRICT') return [mtlsHttp, mtlsTcp];
  return [mtlsHttp, mtlsTcp, ...plaintext(true, 'raw_buffer')];
}

/**
 * Traffic to the workload's other ports passes through; under a STRICT workload policy only
 * over mesh mTLS, as in Istio. AuthorizationPolicies apply to it as to a TCP port.
 */
function passthroughChain(workloadMode: InboundMtls, certs: WorkloadCertificates | undefined, logs: Json[] | undefined, authz: AuthzFilters): Json {
  const strict = certs !== undefined && workloadMode === 'STRICT';
  return {
    name: 'virtualInbound-catchall-tcp',
    ...(strict ? { transport_socket: istioMutualServerSocket(certs) } : {}),
    filters: [...authz.tcp, tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, logs)],
  };
}

function virtualInbound(ctx: ProxyContext, mesh: MeshConfig, tel: SideTelemetry, workloadMode: InboundMtls, modeFor: (targetPort: number) => InboundMtls, authz: AuthzFilters): EnvoyResource {
  const certs = ctx.mtls;
  const logs = tel.logs;
  const chains: Json[] = ctx.inboundPorts.flatMap((p) => inboundChains(p, modeFor(p.targetPort), certs, tel, authz));
  const matches = chains.map((c) => c.filter_chain_match as Json);
  const inspectTls = matches.some((m) => m.transport_protocol !== undefined || m.application_protocols === MESH_HTTP_ALPN);
  const inspectHttp = matches.some((m) => m.application_protocols === SNIFFED_HTTP_PROTOCOLS);
  const inspectors = [...(inspectTls ? [tlsInspector()] : []), ...(inspectHttp ? [httpInspector()] : [])];
  return {
    name: VIRTUAL_INBOUND,
    body: {
      name: VIRTUAL_INBOUND,
      address: socketAddress(WILDCARD, VIRTUAL_INBOUND_PORT),
      traffic_direction: 'INBOUND',
      listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: anyOf('envoy.extensions.filters.listener.original_dst.v3.OriginalDst', {}) }, ...inspectors],
      ...(inspectors.length ? detectionTimeout(mesh) : {}),
      filter_chains: chains,
      default_filter_chain: passthroughChain(workloadMode, certs, logs, authz),
      ...listenerLogsOf(tel),
    },
  };
}

export function sidecarListeners(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  const taken = new Set<string>();
  const http = httpPorts(snapshot, ctx.proxy.namespace, ctx.scope);
  const vsByHost = meshVirtualServicesByHost(snapshot, ctx.proxy.namespace);
  const tel = proxyTelemetry(snapshot, ctx.proxy);
  const wildcard: WildcardChains = new Map();
  for (const [port, entries] of http) {
    // A port some service leaves undeclared sniffs: what is not HTTP goes on as TCP, to its
    // original destination (or the first such service's, without capture).
    const auto = entries.find((e) => e.port.protocol === 'AUTO');
    const sniffTcp = !auto ? undefined : ctx.interception === 'NONE' ? outboundTcpProxy(snapshot, auto.svc, auto.port, ctx, vsByHost.get(auto.svc.hostname), tel.client) : catchAllTcp(ctx, snapshot.meshConfig, tel.client);
    const l = outboundHttpListener(port, ctx, snapshot.meshConfig, tel.client, sniffTcp);
    taken.add(l.name);
    out.push(l);
  }
  for (const svc of snapshot.services) {
    if (!visibleFrom(svc, ctx.proxy.namespace)) continue;
    for (const port of svc.ports) {
      if (isHttpProtocol(port.protocol) || port.protocol === 'UDP' || !seesServicePort(ctx.scope, svc, port.port)) continue;
      for (const l of outboundTcpListeners(snapshot, svc, port, ctx, vsByHost.get(svc.hostname), wildcard, tel.client)) {
        // Two services cannot share one address and port: the first (by hostname) keeps it.
        if (taken.has(l.name)) continue;
        if (ctx.interception === 'NONE' && http.has(port.port)) continue;
        taken.add(l.name);
        out.push(l);
      }
    }
  }
  for (const [port, chains] of [...wildcard.entries()].sort((a, b) => a[0] - b[0])) {
    // An HTTP port's listener keeps the wildcard address (its routes hold the HTTP hosts).
    const l = wildcardTcpListener(port, chains, ctx, snapshot.meshConfig, tel.client);
    if (taken.has(l.name)) continue;
    taken.add(l.name);
    out.push(l);
  }
  if (ctx.interception === 'REDIRECT') {
    const pa = effectivePeerAuthentication(snapshot.config, ctx.proxy.namespace, ctx.proxy.labels);
    const rbac = authorizationFilters(snapshot.config, ctx.proxy, snapshot);
    // RequestAuthentication's jwt_authn goes first: RBAC reads the payload it verified.
    const authz: AuthzFilters = { http: [...jwtAuthnFilters(snapshot.config, ctx.proxy), ...rbac.http], tcp: rbac.tcp };
    out.push(virtualOutbound(ctx, snapshot.meshConfig, tel.client), virtualInbound(ctx, snapshot.meshConfig, tel.server, pa.mode, (port) => pa.ports.get(port) ?? pa.mode, authz));
  }
  return out.sort(byName);
}

/** Proxyless gRPC: an API listener per service port, named `<host>:<port>`. */
export function grpcListeners(snapshot: MeshSnapshot): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const { name } of proxylessTargets(snapshot)) {
    const hcm = anyOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
      stat_prefix: name,
      rds: { config_source: ADS_CONFIG_SOURCE, route_config_name: name },
      http_filters: [routerFilter()],
    });
    out.push({ name, body: { name, api_listener: { api_listener: hcm } } });
  }
  return out.sort(byName);
}

export function listenersFor(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  if (ctx.proxyless) return grpcListeners(snapshot);
  if (ctx.proxy.type === 'router') return gatewayListeners(snapshot, ctx);
  return sidecarListeners(snapshot, ctx);
}
