// DestinationRule traffic policies as Envoy cluster settings: load balancing,
// connection pools (circuit breakers), outlier detection and client TLS.
import type { DestinationRuleSpec, TrafficPolicy } from '../model/istio.js';
import { parseDurationMs, protoDurationOf } from '../util/duration.js';
import { anyOf, UINT32_MAX, type Json } from './types.js';

type PortPolicy = NonNullable<TrafficPolicy['portLevelSettings']>[number];
export type EffectivePolicy = Omit<TrafficPolicy, 'portLevelSettings'>;

function portLevel(policy: TrafficPolicy | undefined, port: number): PortPolicy | undefined {
  return policy?.portLevelSettings?.find((p) => p.port?.number === port);
}

function overlay(base: EffectivePolicy, top: EffectivePolicy | undefined): EffectivePolicy {
  if (!top) return base;
  const out: EffectivePolicy = { ...base };
  if (top.loadBalancer) out.loadBalancer = top.loadBalancer;
  if (top.connectionPool) out.connectionPool = top.connectionPool;
  if (top.outlierDetection) out.outlierDetection = top.outlierDetection;
  if (top.tls) out.tls = top.tls;
  return out;
}

/** The policy for a port (and subset): top level, then its port level, then the subset's (and the subset's port level), each overriding whole sections, as Istio does. */
export function effectivePolicy(spec: DestinationRuleSpec | undefined, port: number, subset?: string): EffectivePolicy {
  if (!spec) return {};
  let p = overlay({}, spec.trafficPolicy);
  p = overlay(p, portLevel(spec.trafficPolicy, port));
  const sub = subset ? spec.subsets?.find((s) => s.name === subset) : undefined;
  if (sub?.trafficPolicy) {
    p = overlay(p, sub.trafficPolicy);
    p = overlay(p, portLevel(sub.trafficPolicy, port));
  }
  return p;
}



/** Istio's default circuit-breaker thresholds: effectively unlimited. */
export function unlimitedThresholds(): Json {
  return { max_connections: UINT32_MAX, max_pending_requests: UINT32_MAX, max_requests: UINT32_MAX, max_retries: UINT32_MAX, track_remaining: true };
}

/**
 * Applies a policy to a cluster (Envoy JSON), in place. `sniffed`: the port declares no
 * protocol, so HTTP goes upstream in the protocol it came in (unless the policy upgrades it).
 */
export function applyClusterPolicy(cluster: Json, policy: EffectivePolicy, http2: boolean, sniffed = false): void {
  const lb = policy.loadBalancer;
  if (lb?.consistentHash) {
    if (lb.consistentHash.maglev) {
      cluster.lb_policy = 'MAGLEV';
      if (lb.consistentHash.maglev.tableSize) cluster.maglev_lb_config = { table_size: lb.consistentHash.maglev.tableSize };
    } else {
      cluster.lb_policy = 'RING_HASH';
      const ring = lb.consistentHash.ringHash?.minimumRingSize ?? lb.consistentHash.minimumRingSize;
      if (ring) cluster.ring_hash_lb_config = { minimum_ring_size: ring };
    }
  } else if (lb?.simple === 'LEAST_REQUEST' || lb?.simple === 'LEAST_CONN') cluster.lb_policy = 'LEAST_REQUEST';
  else if (lb?.simple === 'RANDOM') cluster.lb_policy = 'RANDOM';
  else if (lb?.simple === 'ROUND_ROBIN') cluster.lb_policy = 'ROUND_ROBIN';

  const pool = policy.connectionPool;
  const thresholds = unlimitedThresholds();
  if (pool?.tcp?.maxConnections) thresholds.max_connections = pool.tcp.maxConnections;
  if (pool?.http?.http1MaxPendingRequests) thresholds.max_pending_requests = pool.http.http1MaxPendingRequests;
  if (pool?.http?.http2MaxRequests) thresholds.max_requests = pool.http.http2MaxRequests;
  if (pool?.http?.maxRetries) thresholds.max_retries = pool.http.maxRetries;
  cluster.circuit_breakers = { thresholds: [thresholds] };
  const connectTimeout = protoDurationOf(pool?.tcp?.connectTimeout);
  if (connectTimeout) cluster.connect_timeout = connectTimeout;
  const ka = pool?.tcp?.tcpKeepalive;
  if (ka) {
    const keepalive: Json = {};
    if (ka.probes) keepalive.keepalive_probes = ka.probes;
    const time = parseDurationMs(ka.time ?? '');
    if (time !== undefined) keepalive.keepalive_time = Math.max(1, Math.round(time / 1000));
    const interval = parseDurationMs(ka.interval ?? '');
    if (interval !== undefined) keepalive.keepalive_interval = Math.max(1, Math.round(interval / 1000));
    cluster.upstream_connection_options = { tcp_keepalive: keepalive };
  }
  const common: Json = {};
  if (pool?.http?.maxRequestsPerConnection) common.max_requests_per_connection = pool.http.maxRequestsPerConnection;
  const idle = protoDurationOf(pool?.http?.idleTimeout);
  if (idle) common.idle_timeout = idle;
  const useHttp2 = http2 || pool?.http?.h2UpgradePolicy === 'UPGRADE';
  const downstream = sniffed && !useHttp2;
  if (Object.keys(common).length > 0 || useHttp2 || downstream) {
    cluster.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': anyOf('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
        ...(Object.keys(common).length ? { common_http_protocol_options: common } : {}),
        ...(downstream
          ? { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} } }
          : { explicit_http_config: useHttp2 ? { http2_protocol_options: {} } : { http_protocol_options: {} } }),
      }),
    };
  }

  const od = policy.outlierDetection;
  if (od) {
    const detection: Json = {};
    const fivexx = od.consecutive5xxErrors ?? od.consecutiveErrors;
    if (fivexx !== undefined) {
      detection.consecutive_5xx = fivexx;
      if (fivexx === 0) detection.enforcing_consecutive_5xx = 0;
    } else detection.enforcing_consecutive_5xx = 0;
    if (od.consecutiveGatewayErrors) {
      detection.consecutive_gateway_failure = od.consecutiveGatewayErrors;
      detection.enforcing_consecutive_gateway_failure = 100;
    }
    if (od.splitExternalLocalOriginErrors) {
      detection.split_external_local_origin_errors = true;
      if (od.consecutiveLocalOriginFailures) detection.consecutive_local_origin_failure = od.consecutiveLocalOriginFailures;
    }
    detection.interval = protoDurationOf(od.interval) ?? '10s';
    detection.base_ejection_time = protoDurationOf(od.baseEjectionTime) ?? '30s';
    detection.max_ejection_percent = od.maxEjectionPercent ?? 10;
    detection.enforcing_success_rate = 0;
    cluster.outlier_detection = detection;
    // Istio's minHealthPercent defaults to 0: ejection keeps working however few hosts are left.
    cluster.common_lb_config = { healthy_panic_threshold: { value: od.minHealthPercent ?? 0 } };
  }

  const tls = policy.tls;
  if (tls && tls.mode && tls.mode !== 'DISABLE' && tls.mode !== 'ISTIO_MUTUAL') {
    const common: Json = {};
    const validation: Json = {};
    if (tls.caCertificates) validation.trusted_ca = { filename: tls.caCertificates };
    if (tls.subjectAltNames?.length) validation.match_typed_subject_alt_names = tls.subjectAltNames.map((n) => ({ san_type: 'DNS', matcher: { exact: n } }));
    if (Object.keys(validation).length && !tls.insecureSkipVerify) common.validation_context = validation;
    if (tls.mode === 'MUTUAL' && tls.clientCertificate && tls.privateKey) {
      common.tls_certificates = [{ certificate_chain: { filename: tls.clientCertificate }, private_key: { filename: tls.privateKey } }];
    }
    cluster.transport_socket = {
      name: 'envoy.transport_sockets.tls',
      typed_config: anyOf('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', { common_tls_context: common, ...(tls.sni ? { sni: tls.sni } : {}) }),
    };
  }
}

/** Route-level hash policy for consistent-hash load balancing. */
export function hashPolicy(policy: EffectivePolicy): Json[] | undefined {
  const ch = policy.loadBalancer?.consistentHash;
  if (!ch) return undefined;
  if (ch.httpHeaderName) return [{ header: { header_name: ch.httpHeaderName } }];
  if (ch.httpCookie) return [{ cookie: { name: ch.httpCookie.name, ...(ch.httpCookie.path ? { path: ch.httpCookie.path } : {}), ...(protoDurationOf(ch.httpCookie.ttl) ? { ttl: protoDurationOf(ch.httpCookie.ttl) } : {}) } }];
  if (ch.useSourceIp) return [{ connection_properties: { source_ip: true } }];
  if (ch.httpQueryParameterName) return [{ query_parameter: { name: ch.httpQueryParameterName } }];
  return undefined;
}
