// Building blocks shared by listeners: HTTP connection managers, TCP proxies.
import { anyOf, type Json } from './types.js';

export const ADS_CONFIG_SOURCE: Json = { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' };

/** Filters every outbound or gateway HTTP chain carries, so routes can configure CORS and faults. */
export function routeConfigurableFilters(): Json[] {
  return [
    { name: 'envoy.filters.http.cors', typed_config: anyOf('envoy.extensions.filters.http.cors.v3.Cors', {}) },
    { name: 'envoy.filters.http.fault', typed_config: anyOf('envoy.extensions.filters.http.fault.v3.HTTPFault', {}) },
  ];
}

export function routerFilter(): Json {
  return { name: 'envoy.filters.http.router', typed_config: anyOf('envoy.extensions.filters.http.router.v3.Router', {}) };
}

export interface HcmOptions {
  statPrefix: string;
  /** RDS route name, or an inline route configuration. */
  rds?: string;
  routeConfig?: Json;
  /** Access loggers (see access-log.ts); none when undefined. */
  accessLog?: Json[] | undefined;
  /** Extra HTTP filters, before the router. */
  httpFilters?: Json[];
  forwardClientCertDetails?: string;
  /** The Telemetry API's tracing (telemetry.ts); none when undefined. */
  tracing?: Json | undefined;
  /** Envoy's request id extension, when the default (UUID, used for sampling) is not wanted. */
  requestIdExtension?: Json | undefined;
  /** Keep an x-request-id coming from outside the mesh, as Istio's sidecars do (gateways make their own). */
  preserveExternalRequestId?: boolean;
}

export function httpConnectionManager(o: HcmOptions): Json {
  const hcm: Json = {
    stat_prefix: o.statPrefix,
    ...(o.rds !== undefined ? { rds: { config_source: ADS_CONFIG_SOURCE, route_config_name: o.rds } } : {}),
    ...(o.routeConfig ? { route_config: o.routeConfig } : {}),
    http_filters: [...(o.httpFilters ?? []), routerFilter()],
    use_remote_address: false,
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'KEEP_UNCHANGED',
    ...(o.forwardClientCertDetails ? { forward_client_cert_details: o.forwardClientCertDetails, set_current_client_cert_details: { subject: true, uri: true, dns: true } } : {}),
    ...(o.accessLog ? { access_log: o.accessLog } : {}),
    // Request ids, generated when missing and propagated, as Istio configures them.
    generate_request_id: true,
    ...(o.preserveExternalRequestId ? { preserve_external_request_id: true } : {}),
    ...(o.requestIdExtension ? { request_id_extension: o.requestIdExtension } : {}),
    ...(o.tracing ? { tracing: o.tracing } : {}),
  };
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: anyOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', hcm),
  };
}

/** A TCP proxy to one cluster, or (`target`) to weighted clusters. */
export function tcpProxy(statPrefix: string, cluster: string | Json, accessLog: Json[] | undefined): Json {
  const target = typeof cluster === 'string' ? { cluster } : cluster;
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: anyOf('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: statPrefix, ...target, ...(accessLog ? { access_log: accessLog } : {}) }),
  };
}

export function socketAddress(address: string, port: number): Json {
  return { socket_address: { address, port_value: port } };
}

/** The TLS inspector listener filter: reads SNI and ALPN so filter chains can match on them. */
export function tlsInspector(): Json {
  return { name: 'envoy.filters.listener.tls_inspector', typed_config: anyOf('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector', {}) };
}
