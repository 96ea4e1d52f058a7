// CDS: outbound clusters per service port, inbound clusters for the proxy's own
// workload ports, and the passthrough and blackhole clusters.
import type { MeshSnapshot } from '../model/mesh.js';
import { isHttp2Protocol } from '../model/protocol.js';
import type { ProxyContext } from './proxy-context.js';
import { ADS_CONFIG_SOURCE } from './filters.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, inboundClusterName, outboundClusterName } from './names.js';
import { anyOf, byName, type EnvoyResource, type Json } from './types.js';

const CONNECT_TIMEOUT = '10s';
const MAX = 4294967295;

/** Istio's default circuit-breaker thresholds: effectively unlimited. */
const DEFAULT_CIRCUIT_BREAKERS: Json = {
  thresholds: [{ max_connections: MAX, max_pending_requests: MAX, max_requests: MAX, max_retries: MAX, track_remaining: true }],
};

function http2Options(): Json {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': anyOf('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
      explicit_http_config: { http2_protocol_options: {} },
    }),
  };
}

export function outboundClusters(snapshot: MeshSnapshot): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const svc of snapshot.services) {
    for (const port of svc.ports) {
      if (port.protocol === 'UDP') continue;
      const name = outboundClusterName(port.port, svc.hostname);
      out.push({
        name,
        body: {
          name,
          type: 'EDS',
          eds_cluster_config: { eds_config: ADS_CONFIG_SOURCE, service_name: name },
          connect_timeout: CONNECT_TIMEOUT,
          lb_policy: 'ROUND_ROBIN',
          circuit_breakers: DEFAULT_CIRCUIT_BREAKERS,
          common_lb_config: {},
          ...(isHttp2Protocol(port.protocol) ? { typed_extension_protocol_options: http2Options() } : {}),
          metadata: {
            filter_metadata: {
              istio: { services: [{ host: svc.hostname, name: svc.name, namespace: svc.namespace }] },
            },
          },
        },
      });
    }
  }
  return out;
}

function originalDstCluster(name: string): EnvoyResource {
  return {
    name,
    body: { name, type: 'ORIGINAL_DST', connect_timeout: CONNECT_TIMEOUT, lb_policy: 'CLUSTER_PROVIDED', circuit_breakers: DEFAULT_CIRCUIT_BREAKERS },
  };
}

export function builtinClusters(): EnvoyResource[] {
  return [
    originalDstCluster(PASSTHROUGH_CLUSTER),
    originalDstCluster(INBOUND_PASSTHROUGH_CLUSTER),
    { name: BLACKHOLE_CLUSTER, body: { name: BLACKHOLE_CLUSTER, type: 'STATIC', connect_timeout: CONNECT_TIMEOUT } },
  ];
}

export function inboundClusters(ctx: ProxyContext): EnvoyResource[] {
  return ctx.inboundPorts.map((p) => {
    const res = originalDstCluster(inboundClusterName(p.targetPort));
    if (isHttp2Protocol(p.protocol)) res.body.typed_extension_protocol_options = http2Options();
    return res;
  });
}

/** Every cluster a proxy gets, sorted by name. */
export function clustersFor(snapshot: MeshSnapshot, ctx: ProxyContext, shared: readonly EnvoyResource[] = outboundClusters(snapshot)): EnvoyResource[] {
  if (ctx.proxyless) return [...shared].sort(byName);
  const all = [...shared, ...builtinClusters(), ...(ctx.proxy.type === 'sidecar' ? inboundClusters(ctx) : [])];
  return all.sort(byName);
}
