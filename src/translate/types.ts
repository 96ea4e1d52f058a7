// What the translator produces: Envoy resources in Envoy's own JSON form, by name.

export const TypeUrl = {
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  /** VHDS (delta only): the virtual hosts of a route configuration, named `<route configuration>/<virtual host>`. */
  VirtualHost: 'type.googleapis.com/envoy.config.route.v3.VirtualHost',
} as const;

export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/** Push order, make-before-break: clusters and their endpoints before the listeners and routes that use them. */
export const PUSH_ORDER: readonly TypeUrl[] = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.VirtualHost, TypeUrl.Secret];

export const SHORT_TYPE: Record<TypeUrl, string> = {
  [TypeUrl.Cluster]: 'cds',
  [TypeUrl.ClusterLoadAssignment]: 'eds',
  [TypeUrl.Listener]: 'lds',
  [TypeUrl.RouteConfiguration]: 'rds',
  [TypeUrl.Secret]: 'sds',
  [TypeUrl.VirtualHost]: 'vhds',
};

export type Json = Record<string, unknown>;

export interface EnvoyResource {
  name: string;
  /** The resource in Envoy's JSON form, without "@type". */
  body: Json;
}

/** The largest value of Envoy's uint32 fields: "no limit" for circuit-breaker thresholds. */
export const UINT32_MAX = 4294967295;

/** Orders anything named (resources, cached entries) by name. */
export function byName(a: { readonly name: string }, b: { readonly name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function anyOf(typeName: string, body: Json): Json {
  return { '@type': `type.googleapis.com/${typeName}`, ...body };
}
