// How a meshd-bootstrapped Envoy exposes its own statistics: a static listener on 15090 that
// serves the admin interface's `/stats/prometheus` (and nothing else of the admin API), and tag
// extraction that turns Istio's cluster names into labels, so that Prometheus sees
//   envoy_cluster_upstream_rq_total{cluster_name="outbound|80|v1|httpbin.default.svc.cluster.local",
//     direction="outbound", service="httpbin.default.svc.cluster.local", service_port="80", subset="v1",...}
// rather than one metric name per cluster. Envoy applies every extractor to the full stat name;
// each removes its first capture group from the name and takes its second as the value. The
// service extractors capture an empty first group: they label without removing anything, and
// `cluster_name` removes the whole cluster name once.
import { staticHttpListener } from './static-listener.js';

/** The cluster through which the 15090 listener reaches Envoy's own admin interface. */
export const PROMETHEUS_STATS_CLUSTER = 'prometheus_stats';
export const PROMETHEUS_PATH = '/stats/prometheus';

/** Envoy's built-in extractors meshd keeps (its default cluster-name one is replaced below). */
const ENVOY_DEFAULT_TAGS = [
  'envoy.response_code',
  'envoy.response_code_class',
  'envoy.http_conn_manager_prefix',
  'envoy.listener_address',
  'envoy.http_user_agent',
  'envoy.rds_route_config',
  'envoy.virtual_host',
  'envoy.virtual_cluster',
  'envoy.tcp_prefix',
  'envoy.ssl_cipher',
] as const;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Tag extractors for Istio's cluster names, `direction|port|subset|host`. The host ends the name
 * and contains dots, as do the statistic names after it, so only hosts of the cluster's own
 * domain (`.svc.<domain>`) and the empty host of inbound clusters are recognised; other hosts
 * (ServiceEntry names) keep Envoy's plain dotted statistic names.
 */
export function statsTags(domain: string): Record<string, unknown>[] {
  const host = `(?:[^|]*?\\.svc\\.${escapeRegex(domain)})?`;
  const name = `(?:outbound|inbound)\\|\\d*\\|[^|]*\\|${host}`;
  const label = (tag: string, body: string): Record<string, unknown> => ({ tag_name: tag, regex: `^cluster\\.()${body}\\.` });
  return [
    { tag_name: 'cluster_name', regex: `^cluster\\.((${name})\\.)` },
    // Clusters without dots or pipes: xds-grpc, BlackHoleCluster, PassthroughCluster, prometheus_stats...
    { tag_name: 'cluster_name', regex: '^cluster\\.(([^.|]+)\\.)' },
    label('direction', `(outbound|inbound)\\|\\d*\\|[^|]*\\|${host}`),
    label('service_port', `(?:outbound|inbound)\\|(\\d*)\\|[^|]*\\|${host}`),
    label('subset', `(?:outbound|inbound)\\|\\d*\\|([^|]*)\\|${host}`),
    label('service', `(?:outbound|inbound)\\|\\d*\\|[^|]*\\|([^|]*?\\.svc\\.${escapeRegex(domain)})`),
    ...ENVOY_DEFAULT_TAGS.map((tag_name) => ({ tag_name })),
  ];
}

export function statsConfig(domain: string): Record<string, unknown> {
  return { use_all_default_tags: false, stats_tags: statsTags(domain) };
}

/** The admin interface as a cluster; an unspecified bind address is reached on loopback. */
export function prometheusStatsCluster(adminAddress: string, adminPort: number): Record<string, unknown> {
  const address = adminAddress === '0.0.0.0' ? '127.0.0.1' : adminAddress === '::' ? '::1' : adminAddress;
  return {
    name: PROMETHEUS_STATS_CLUSTER,
    type: 'STATIC',
    connect_timeout: '0.250s',
    load_assignment: {
      cluster_name: PROMETHEUS_STATS_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: adminPort } } } }] }],
    },
  };
}

/** `0.0.0.0_<port>`: GET /stats/prometheus is forwarded to the admin interface, anything else is 404. */
export function prometheusListener(port: number): Record<string, unknown> {
  return staticHttpListener(port, 'stats', 'prometheus', [
    { match: { path: PROMETHEUS_PATH, headers: [{ name: ':method', string_match: { exact: 'GET' } }] }, route: { cluster: PROMETHEUS_STATS_CLUSTER } },
    { match: { prefix: '/' }, direct_response: { status: 404 } },
  ]);
}
