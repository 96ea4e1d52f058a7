// Resource names as Istio writes them.
import type { MeshService, MeshServicePort, MeshSnapshot } from '../model/mesh.js';

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
export const VIRTUAL_OUTBOUND = 'virtualOutbound';
export const VIRTUAL_INBOUND = 'virtualInbound';
export const VIRTUAL_OUTBOUND_PORT = 15001;
export const VIRTUAL_INBOUND_PORT = 15006;

export function outboundClusterName(port: number, hostname: string, subset = ''): string {
  return `outbound|${port}|${subset}|${hostname}`;
}

export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

export function listenerName(bind: string, port: number): string {
  return `${bind}_${port}`;
}

/** What proxyless gRPC clients dial: `<host>:<port>` for each (non-UDP) service port. */
export function* proxylessTargets(snapshot: MeshSnapshot): Generator<{ svc: MeshService; port: MeshServicePort; name: string }> {
  for (const svc of snapshot.services) {
    // A ServiceEntry host is only for proxyless clients when its endpoints come over EDS.
    if (svc.entry && svc.entry.resolution !== 'STATIC') continue;
    for (const port of svc.ports) if (port.protocol !== 'UDP') yield { svc, port, name: `${svc.hostname}:${port.port}` };
  }
}

/**
 * Where an Envoy resource came from, as Istio records it in `metadata.filter_metadata.istio.config`
 * (read by `proxy-config`'s DESTINATION RULE and VIRTUAL SERVICE columns).
 */
export function istioConfigPath(kind: 'destination-rule' | 'virtual-service', meta: { namespace: string; name: string }): string {
  return `/apis/networking.istio.io/v1/namespaces/${meta.namespace}/${kind}/${meta.name}`;
}
