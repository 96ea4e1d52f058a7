// LDS: for sidecars, `virtualOutbound` (15001) handing captured connections to
// per-port outbound listeners, and `virtualInbound` (15006) for the workload's own
// ports; without capture (INTERCEPTION_MODE=NONE) the outbound listeners bind to
// 127.0.0.1 instead. For proxyless gRPC, one API listener per `<host>:<port>`.
import type { MeshService, MeshServicePort, MeshSnapshot } from '../model/mesh.js';
import type { WorkloadCertificates } from '../model/proxy.js';
import { isHttpProtocol } from '../model/protocol.js';
import type { InboundPort, ProxyContext } from './proxy-context.js';
import { MESH_ALPN, istioMutualServerSocket } from './mtls.js';
import { effectivePeerAuthentication } from './peer-authentication.js';
import { authorizationFilters, type AuthzFilters } from './authorization.js';
import { ADS_CONFIG_SOURCE, httpConnectionManager, routeConfigurableFilters, routerFilter, socketAddress, tcpProxy, tlsInspector } from './filters.js';
import { httpPorts, meshVirtualServicesByHost, outboundMode } from './routes.js';
import { seesServicePort } from './sidecar-scope.js';
import { firstTcpRoute, tcpProxyFor } from './tcp-routes.js';
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
function virtualOutbound(ctx: ProxyContext, mesh: MeshConfig, tel: SideTelemetry): EnvoyResource {
  const logs = tel.logs;
  const chain =
    outboundMode(ctx, mesh) === 'REGISTRY_ONLY'
      ? { name: 'virtualOutbound-blackhole', filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER, logs)] }
      : { name: 'virtualOutbound-catchall-tcp', filters: [tcpProxy(PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, logs)] };
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

function outboundHttpListener(port: number, ctx: ProxyContext, tel: SideTelemetry): EnvoyResource {
  const bind = ctx.interception === 'NONE' ? LOCALHOST : WILDCARD;
  const name = listenerName(bind, port);
  return {
    name,
    body: {
      name,
      address: socketAddress(bind, port),
      ...(ctx.interception === 'REDIRECT' ? { bind_to_port: false } : {}),
      traffic_direction: 'OUTBOUND',
      filter_chains: [{ filters: [httpConnectionManager({ statPrefix: `outbound_${name}`, rds: String(port), httpFilters: routeConfigurableFilters(), ...sidecarHcmTelemetry(tel) })] }],
      ...listenerLogsOf(tel),
    },
  };
}

/** The HTTP connection manager options a sidecar's telemetry sets. */
function sidecarHcmTelemetry(tel: SideTelemetry): { accessLog: Json[] | undefined; tracing: Json | undefined; requestIdExtension: Json | undefined; preserveExternalRequestId: boolean } {
  return { accessLog: tel.logs, tracing: tel.tracing, requestIdExtension: tel.requestIdExtension, preserveExternalRequestId: true };
}

function outboundTcpListener(snapshot: MeshSnapshot, svc: MeshService, port: MeshServicePort, ctx: ProxyContext, vs: VirtualServiceObject | undefined, tel: SideTelemetry): EnvoyResource | undefined {
  const cluster = outboundClusterName(port.port, svc.hostname);
  // A VirtualService's tcp route for the host decides where connections go.
  const rc: RouteContext = { snapshot, gateway: MESH_GATEWAY, port: port.port, clientNamespace: ctx.proxy.namespace, clientLabels: ctx.proxy.labels };
  const tcpRoute = vs ? firstTcpRoute(vs, rc) : undefined;
  const proxy = tcpRoute && vs ? tcpProxyFor(tcpRoute, rc, vs, cluster, tel.logs) : tcpProxy(cluster, cluster, tel.logs);
  if (ctx.interception === 'NONE') {
    const name = listenerName(LOCALHOST, port.port);
    return { name, body: { name, address: socketAddress(LOCALHOST, port.port), traffic_direction: 'OUTBOUND', filter_chains: [{ filters: [proxy] }], ...listenerLogsOf(tel) } };
  }
  // Captured TCP is matched by the service's cluster IP; headless services have none.
  if (!svc.clusterIP) return undefined;
  const name = listenerName(svc.clusterIP, port.port);
  return {
    name,
    body: { name, address: socketAddress(svc.clusterIP, port.port), bind_to_port: false, traffic_direction: 'OUTBOUND', filter_chains: [{ filters: [proxy] }], ...listenerLogsOf(tel) },
  };
}

type InboundMtls = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/**
 * `clientCert`: the port takes mTLS, so x-forwarded-client-cert is the verified peer's (or
 * dropped, over plaintext). `authz`: AuthorizationPolicy's RBAC filters (authorization.ts).
 */
function inboundFilters(p: InboundPort, chainName: string, clientCert: boolean, tel: SideTelemetry, authz: AuthzFilters): Json[] {
  const cluster = inboundClusterName(p.targetPort);
  return isHttpProtocol(p.protocol)
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

function virtualInbound(ctx: ProxyContext, tel: SideTelemetry, workloadMode: InboundMtls, modeFor: (targetPort: number) => InboundMtls, authz: AuthzFilters): EnvoyResource {
  const certs = ctx.mtls;
  const logs = tel.logs;
  const chains: Json[] = ctx.inboundPorts.flatMap((p) => inboundChains(p, modeFor(p.targetPort), certs, tel, authz));
  const inspect = chains.some((c) => (c.filter_chain_match as Json).transport_protocol !== undefined);
  return {
    name: VIRTUAL_INBOUND,
    body: {
      name: VIRTUAL_INBOUND,
      address: socketAddress(WILDCARD, VIRTUAL_INBOUND_PORT),
      traffic_direction: 'INBOUND',
      listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: anyOf('envoy.extensions.filters.listener.original_dst.v3.OriginalDst', {}) }, ...(inspect ? [tlsInspector()] : [])],
      filter_chains: chains,
      default_filter_chain: passthroughChain(workloadMode, certs, logs, authz),
      ...listenerLogsOf(tel),
    },
  };
}

export function sidecarListeners(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  const taken = new Set<string>();
  const http = httpPorts(snapshot, ctx.scope);
  const vsByHost = meshVirtualServicesByHost(snapshot, ctx.proxy.namespace);
  const tel = proxyTelemetry(snapshot, ctx.proxy);
  for (const port of http.keys()) {
    const l = outboundHttpListener(port, ctx, tel.client);
    taken.add(l.name);
    out.push(l);
  }
  for (const svc of snapshot.services) {
    for (const port of svc.ports) {
      if (isHttpProtocol(port.protocol) || port.protocol === 'UDP' || !seesServicePort(ctx.scope, svc, port.port)) continue;
      const l = outboundTcpListener(snapshot, svc, port, ctx, vsByHost.get(svc.hostname), tel.client);
      // Two services cannot share one address and port: the first (by hostname) keeps it.
      if (!l || taken.has(l.name)) continue;
      if (ctx.interception === 'NONE' && http.has(port.port)) continue;
      taken.add(l.name);
      out.push(l);
    }
  }
  if (ctx.interception === 'REDIRECT') {
    const pa = effectivePeerAuthentication(snapshot.config, ctx.proxy.namespace, ctx.proxy.labels);
    const authz = authorizationFilters(snapshot.config, ctx.proxy);
    out.push(virtualOutbound(ctx, snapshot.meshConfig, tel.client), virtualInbound(ctx, tel.server, pa.mode, (port) => pa.ports.get(port) ?? pa.mode, authz));
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
