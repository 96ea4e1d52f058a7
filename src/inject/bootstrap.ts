// The Envoy bootstrap for a proxy that connects to meshd: its identity (node id and
// Istio-style metadata), ADS over gRPC, an admin port, the 15021 readiness listener, and the
// 15090 Prometheus listener with stats tags from Istio's cluster names (proxy-stats.ts).
import { formatNodeId, type ProxyType } from '../model/proxy.js';
import type { Labels } from '../model/labels.js';
import { isIP } from 'node:net';
import { RE2_MAX_PROGRAM_SIZE } from '../model/re2.js';
import { prometheusListener, prometheusStatsCluster, statsConfig } from './proxy-stats.js';
import { staticHttpListener } from './static-listener.js';

export interface BootstrapOptions {
  type: ProxyType;
  ip: string;
  podName: string;
  namespace: string;
  domain: string;
  serviceAccount: string;
  labels: Labels;
  /** Where meshd's xDS port is, host:port. */
  xdsAddress: string;
  delta: boolean;
  adminPort: number;
  adminAddress?: string;
  readinessPort: number;
  /** The static listener serving Envoy's stats for Prometheus (15090); 0 or absent for none. Needs a fixed adminPort. */
  prometheusPort?: number;
  /** REDIRECT (iptables capture, Istio's default) or NONE (outbound listeners bind to 127.0.0.1). */
  interceptionMode: 'REDIRECT' | 'NONE';
  clusterId?: string;
  /** Envoy's `node.cluster`; defaults to the app label or the pod's name. */
  serviceCluster?: string;
  extraMetadata?: Record<string, string>;
  /** A service account token: sent as `authorization: Bearer` on the xDS stream, it proves the workload's identity (mTLS, SDS). */
  token?: string;
  /** meshd's root certificate (PEM file path): connect to meshd over TLS (port 15012), verifying it. */
  xdsRootCertFile?: string;
  /** The name meshd's certificate is checked against over TLS. */
  xdsServerName?: string;
}

const ISTIO_VERSION = 'meshd-0.1';

export function nodeMetadata(o: BootstrapOptions): Record<string, unknown> {
  return {
    NAMESPACE: o.namespace,
    SERVICE_ACCOUNT: o.serviceAccount,
    LABELS: o.labels,
    INSTANCE_IPS: o.ip,
    CLUSTER_ID: o.clusterId ?? 'Kubernetes',
    ISTIO_VERSION,
    NAME: o.podName,
    INTERCEPTION_MODE: o.interceptionMode,
    ...(o.extraMetadata ?? {}),
  };
}

function xdsCluster(address: string, rootCertFile: string | undefined, serverName: string): Record<string, unknown> {
  const idx = address.lastIndexOf(':');
  if (idx <= 0) throw new Error(`invalid --xds-address "${address}": expected host:port`);
  const host = address.slice(0, idx).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(idx + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`invalid --xds-address "${address}": bad port`);
  return {
    name: 'xds-grpc',
    type: isIP(host) ? 'STATIC' : 'STRICT_DNS',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: 'xds-grpc',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }],
    },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '10s' } } },
      },
    },
    circuit_breakers: { thresholds: [{ max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 }] },
    ...(rootCertFile
      ? {
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
              sni: serverName,
              common_tls_context: {
                alpn_protocols: ['h2'],
                validation_context: { trusted_ca: { filename: rootCertFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: serverName } }] },
              },
            },
          },
        }
      : {}),
  };
}

function readinessListener(port: number): Record<string, unknown> {
  // Static listeners start only once Envoy has its initial dynamic config, so a 200 here means ready.
  return staticHttpListener(port, 'agent', 'readiness', [{ match: { prefix: '/healthz/ready' }, direct_response: { status: 200, body: { inline_string: 'ready\n' } } }]);
}

export function envoyBootstrap(o: BootstrapOptions): Record<string, unknown> {
  const nodeId = formatNodeId(o.type, o.ip, o.podName, o.namespace, o.domain);
  const ads = { ads: {}, resource_api_version: 'V3' };
  const prometheus = (o.prometheusPort ?? 0) > 0 && o.adminPort > 0;
  return {
    node: {
      id: nodeId,
      cluster: o.serviceCluster ?? (o.labels.app ? `${o.labels.app}.${o.namespace}` : `${o.podName}.${o.namespace}`),
      metadata: nodeMetadata(o),
    },
    admin: {
      address: { socket_address: { address: o.adminAddress ?? '127.0.0.1', port_value: o.adminPort } },
    },
    dynamic_resources: {
      ads_config: {
        api_type: o.delta ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' }, ...(o.token ? { initial_metadata: [{ key: 'authorization', value: `Bearer ${o.token}` }] } : {}) }],
        set_node_on_first_message_only: true,
      },
      cds_config: ads,
      lds_config: ads,
    },
    static_resources: {
      clusters: [xdsCluster(o.xdsAddress, o.xdsRootCertFile, o.xdsServerName ?? 'istiod.istio-system.svc'), ...(prometheus ? [prometheusStatsCluster(o.adminAddress ?? '127.0.0.1', o.adminPort)] : [])],
      listeners: [...(o.readinessPort > 0 ? [readinessListener(o.readinessPort)] : []), ...(prometheus ? [prometheusListener(o.prometheusPort!)] : [])],
    },
    stats_config: statsConfig(o.domain),
    layered_runtime: {
      layers: [
        {
          name: 'static',
          static_layer: {
            'overload.global_downstream_max_connections': 2147483647,
            // Envoy refuses regexes whose RE2 program is larger (its default is 100); meshd's
            // validation checks every regex against the same limit.
            're2.max_program_size.error_level': RE2_MAX_PROGRAM_SIZE,
          },
        },
        { name: 'admin', admin_layer: {} },
      ],
    },
  };
}

/** The bootstrap file a proxyless gRPC client reads (GRPC_XDS_BOOTSTRAP). */
export function grpcBootstrap(o: BootstrapOptions): Record<string, unknown> {
  return {
    xds_servers: [{ server_uri: o.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: formatNodeId(o.type, o.ip, o.podName, o.namespace, o.domain),
      metadata: { ...nodeMetadata(o), GENERATOR: 'grpc' },
      locality: {},
    },
  };
}
