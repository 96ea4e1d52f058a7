// A bootstrap's static HTTP listener on 0.0.0.0:<port> with inline routes (the readiness and
// Prometheus listeners). Static listeners start only once Envoy has its initial dynamic config.

export function staticHttpListener(port: number, statPrefix: string, routeName: string, routes: Record<string, unknown>[]): Record<string, unknown> {
  return {
    name: `0.0.0.0_${port}`,
    address: { socket_address: { address: '0.0.0.0', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: statPrefix,
              route_config: { name: routeName, virtual_hosts: [{ name: routeName, domains: ['*'], routes }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}
