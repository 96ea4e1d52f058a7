// Who a connected proxy is: parsed from its Envoy node id and Istio-style metadata.
import type { Labels } from './labels.js';

export type ProxyType = 'sidecar' | 'router';

export interface Proxy {
  /** The full node id, e.g. `sidecar~10.1.0.5~httpbin-7f9c.default~default.svc.cluster.local`. */
  id: string;
  type: ProxyType;
  ip: string;
  /** `<pod>.<namespace>` part of the id, split. */
  podName: string;
  namespace: string;
  dnsDomain: string;
  labels: Labels;
  serviceAccount: string;
  instanceIps: string[];
  clusterId: string;
  istioVersion: string;
  /** `grpc` for proxyless gRPC clients (Istio's GENERATOR metadata). */
  generator: string;
  metadata: Record<string, unknown>;
  /** Set when the stream proved a workload identity (a service account token). */
  workloadIdentity?: WorkloadIdentity;
  /**
   * Istio's agent (pilot-agent) runs beside this Envoy: it sends PROXY_CONFIG in its node
   * metadata, makes the workload key in the pod and serves it on its own SDS (`sds-grpc`).
   */
  agent: boolean;
  /** Where the proxy's workload certificate comes from, when it has one: it then gets mTLS. */
  certificates?: WorkloadCertificates;
  /** Its stream can take virtual hosts over VHDS (delta ADS, and meshd's `--vhds` on). */
  vhds?: boolean;
}

/**
 * `meshd`: meshd makes the key and sends it over SDS on the ADS stream (a stream that proved
 * its identity). `agent`: Istio's agent makes it in the pod and serves it on `sds-grpc`.
 */
export interface WorkloadCertificates {
  source: 'meshd' | 'agent';
  trustDomain: string;
}

export interface WorkloadIdentity {
  namespace: string;
  serviceAccount: string;
  trustDomain: string;
}

export class NodeIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeIdError';
  }
}

const EXPECTED = 'expected "<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>" with type "sidecar" or "router", as Istio writes it (e.g. sidecar~10.1.0.5~httpbin-1.default~default.svc.cluster.local)';

function stringRecord(v: unknown): Labels {
  const out: Labels = {};
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  }
  return out;
}

/** Parses an Istio node id and its metadata; throws NodeIdError saying what was expected. */
export function parseProxy(nodeId: string, metadata: Record<string, unknown> = {}): Proxy {
  if (!nodeId) throw new NodeIdError(`node id is empty: ${EXPECTED}`);
  const parts = nodeId.split('~');
  if (parts.length !== 4) throw new NodeIdError(`node id "${nodeId}" has ${parts.length} "~"-separated parts, not 4: ${EXPECTED}`);
  const [type, ip, podAndNs, domain] = parts as [string, string, string, string];
  if (type !== 'sidecar' && type !== 'router') throw new NodeIdError(`node id "${nodeId}" has type "${type}": ${EXPECTED}`);
  if (!ip) throw new NodeIdError(`node id "${nodeId}" has no IP: ${EXPECTED}`);
  const dot = podAndNs.lastIndexOf('.');
  if (dot <= 0 || dot === podAndNs.length - 1) throw new NodeIdError(`node id "${nodeId}" has "${podAndNs}" where "<pod>.<namespace>" belongs: ${EXPECTED}`);
  const podName = podAndNs.slice(0, dot);
  const idNamespace = podAndNs.slice(dot + 1);
  const metaNamespace = typeof metadata.NAMESPACE === 'string' ? metadata.NAMESPACE : undefined;
  const instanceIps = typeof metadata.INSTANCE_IPS === 'string' && metadata.INSTANCE_IPS ? metadata.INSTANCE_IPS.split(',').map((s) => s.trim()).filter(Boolean) : [ip];
  return {
    id: nodeId,
    type,
    ip,
    podName,
    namespace: metaNamespace ?? idNamespace,
    dnsDomain: domain,
    labels: stringRecord(metadata.LABELS),
    serviceAccount: typeof metadata.SERVICE_ACCOUNT === 'string' ? metadata.SERVICE_ACCOUNT : 'default',
    instanceIps,
    clusterId: typeof metadata.CLUSTER_ID === 'string' ? metadata.CLUSTER_ID : 'Kubernetes',
    istioVersion: typeof metadata.ISTIO_VERSION === 'string' ? metadata.ISTIO_VERSION : '',
    generator: typeof metadata.GENERATOR === 'string' ? metadata.GENERATOR : '',
    agent: metadata.PROXY_CONFIG !== null && typeof metadata.PROXY_CONFIG === 'object',
    metadata,
  };
}

/** Builds a node id in Istio's format. */
export function formatNodeId(type: ProxyType, ip: string, podName: string, namespace: string, domain = 'cluster.local'): string {
  return `${type}~${ip}~${podName}.${namespace}~${namespace}.svc.${domain}`;
}

/** What a proxy says about itself that its Pod contradicts, e.g. `LABELS.app: "a" (Pod: "b")`. */
export interface IdentityResolution {
  proxy: Proxy;
  /** Empty when no Pod was found or everything agreed. */
  disagreements: string[];
  fromPod: boolean;
}

/**
 * Takes a sidecar's labels, service account and IPs from its Pod when meshd knows it
 * (the Pod wins over metadata, which the proxy could claim freely).
 */
export function resolveIdentity(proxy: Proxy, pod: { metadata: { labels: Labels }; serviceAccountName: string; podIPs: string[] } | undefined): IdentityResolution {
  if (!pod) return { proxy, disagreements: [], fromPod: false };
  const disagreements: string[] = [];
  const claimed = proxy.labels;
  const keys = new Set([...Object.keys(claimed), ...Object.keys(pod.metadata.labels)]);
  if (Object.keys(claimed).length > 0) {
    for (const k of [...keys].sort()) if (claimed[k] !== pod.metadata.labels[k]) disagreements.push(`LABELS.${k}: ${JSON.stringify(claimed[k] ?? null)} (Pod: ${JSON.stringify(pod.metadata.labels[k] ?? null)})`);
  }
  if (typeof proxy.metadata.SERVICE_ACCOUNT === 'string' && proxy.metadata.SERVICE_ACCOUNT !== pod.serviceAccountName) {
    disagreements.push(`SERVICE_ACCOUNT: ${JSON.stringify(proxy.metadata.SERVICE_ACCOUNT)} (Pod: ${JSON.stringify(pod.serviceAccountName)})`);
  }
  if (pod.podIPs.length > 0 && !pod.podIPs.includes(proxy.ip)) disagreements.push(`IP: ${JSON.stringify(proxy.ip)} (Pod: ${JSON.stringify(pod.podIPs.join(','))})`);
  return {
    proxy: {
      ...proxy,
      labels: pod.metadata.labels,
      serviceAccount: pod.serviceAccountName,
      ...(pod.podIPs.length > 0 ? { ip: pod.podIPs[0]!, instanceIps: pod.podIPs } : {}),
    },
    disagreements,
    fromPod: true,
  };
}
