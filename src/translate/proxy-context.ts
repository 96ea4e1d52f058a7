// What translation needs to know about one proxy, and the key under which proxies
// that would get identical config share one translation.
import { endpointKey, type MeshSnapshot } from '../model/mesh.js';
import type { Proxy, WorkloadCertificates } from '../model/proxy.js';
import { labelsKey, selectorMatches } from '../model/labels.js';
import type { Protocol } from '../model/protocol.js';
import { sidecarScope, type SidecarScope } from './sidecar-scope.js';

export type InterceptionMode = 'REDIRECT' | 'NONE';

export interface InboundPort {
  /** The workload (target) port traffic arrives on. */
  targetPort: number;
  protocol: Protocol;
  /** From a Sidecar's ingress listener: where the port's traffic goes (unset: its original destination). */
  endpoint?: string;
}

export interface ProxyContext {
  proxy: Proxy;
  /** A proxyless gRPC client: API listeners by name, no capture. */
  proxyless: boolean;
  interception: InterceptionMode;
  /** The proxy's own workload ports (services selecting it), sorted. */
  inboundPorts: InboundPort[];
  /** Set when the proxy has a workload certificate (from meshd or its agent): mesh traffic uses mTLS. */
  mtls: WorkloadCertificates | undefined;
  /** What its Sidecar resource imports, when one applies (sidecar-scope.ts). */
  scope?: SidecarScope | undefined;
  /** Its service virtual hosts go over VHDS (a sidecar on delta ADS, unless turned off): virtual-hosts.ts. */
  vhds: boolean;
  /** Proxies with the same key get the same resources. */
  classKey: string;
}

type Service = MeshSnapshot['services'][number];
/** Per service list: the services selecting a workload, by namespace and labels (proxies of one deployment share them). */
const selectingServices = new WeakMap<MeshSnapshot['services'], Map<string, Service[]>>();

function servicesSelecting(snapshot: MeshSnapshot, proxy: Proxy): readonly Service[] {
  let memo = selectingServices.get(snapshot.services);
  if (!memo) selectingServices.set(snapshot.services, (memo = new Map()));
  const key = `${proxy.namespace}|${labelsKey(proxy.labels)}`;
  let found = memo.get(key);
  if (!found) {
    found = snapshot.services.filter((svc) => svc.namespace === proxy.namespace && selectorMatches(svc.selector, proxy.labels));
    memo.set(key, found);
  }
  return found;
}

function inboundPortsOf(snapshot: MeshSnapshot, proxy: Proxy): InboundPort[] {
  if (proxy.type !== 'sidecar') return [];
  const byPort = new Map<number, InboundPort>();
  for (const svc of servicesSelecting(snapshot, proxy)) {
    for (const p of svc.ports) {
      if (p.protocol === 'UDP') continue;
      // A named targetPort is resolved from the endpoints of this proxy's IP.
      let target = typeof p.targetPort === 'number' ? p.targetPort : undefined;
      if (target === undefined) {
        const eps = snapshot.endpoints.get(endpointKey(svc.hostname, p.port)) ?? [];
        target = eps.find((e) => proxy.instanceIps.includes(e.address))?.port;
      }
      if (target === undefined || byPort.has(target)) continue;
      byPort.set(target, { targetPort: target, protocol: p.protocol });
    }
  }
  return [...byPort.values()].sort((a, b) => a.targetPort - b.targetPort);
}

export function proxyContext(snapshot: MeshSnapshot, proxy: Proxy): ProxyContext {
  const proxyless = proxy.generator === 'grpc';
  const mode = String(proxy.metadata.INTERCEPTION_MODE ?? 'REDIRECT').toUpperCase();
  const interception: InterceptionMode = mode === 'NONE' ? 'NONE' : 'REDIRECT';
  const mtls = !proxyless ? proxy.certificates : undefined;
  const scope = proxyless ? undefined : sidecarScope(snapshot, proxy);
  // Gateways and proxyless gRPC clients keep whole route configurations (gRPC has no VHDS).
  const vhds = proxy.vhds === true && !proxyless && proxy.type === 'sidecar';
  // A Sidecar's ingress listeners replace the ports of the services selecting the workload.
  const inboundPorts = proxyless
    ? []
    : scope?.ingress.length
      ? scope.ingress.map((g): InboundPort => ({ targetPort: g.port, protocol: g.protocol, ...(g.defaultEndpoint ? { endpoint: g.defaultEndpoint } : {}) }))
      : inboundPortsOf(snapshot, proxy);
  const classKey = [
    proxyless ? 'grpc' : proxy.type,
    proxy.namespace,
    interception,
    inboundPorts.map((p) => `${p.targetPort}/${p.protocol}${p.endpoint ? `>${p.endpoint}` : ''}`).join(','),
    // VirtualService matches on sourceLabels make routes depend on the client's labels.
    labelsKey(proxy.labels),
    mtls ? `mtls:${mtls.source}:${mtls.trustDomain}` : 'plaintext',
    // What its Sidecar imports: proxies importing the same service ports share one translation.
    scope ? `sidecar:${scope.key}` : 'all',
    vhds ? 'vhds' : 'rds',
  ].join('|');
  return { proxy, proxyless, interception, inboundPorts, mtls, scope, vhds, classKey };
}
