// The port a gateway proxy listens on for a Gateway server port, as Istio decides it.
//
// Gateways name the port clients reach (the Service's `port`, e.g. 80); the gateway pod
// receives that traffic on the Service's `targetPort` (e.g. 8080, which a non-root Envoy can
// bind). Istio (model.resolvePorts, label-selected Gateways) looks through the Services of the
// gateway pod (same namespace, selector matching the pod's labels) for one with a port equal
// to the server port, and binds the listener on the first one's targetPort; when none has it,
// the listener is bound on the server port itself. Services labelled
// `experimental.istio.io/disable-gateway-port-translation` are passed over.
import type { MeshService } from './service.js';
import { labelsKey, selectorMatches, type Labels } from './labels.js';

export const DISABLE_GATEWAY_PORT_TRANSLATION_LABEL = 'experimental.istio.io/disable-gateway-port-translation';

/** Service port -> the targetPort the gateway pod receives it on. */
type PortMap = ReadonlyMap<number, number>;

/** Per service list (one per snapshot): the port maps by gateway namespace and labels (a class key's parts). */
const memo = new WeakMap<readonly MeshService[], Map<string, PortMap>>();

/**
 * A numeric targetPort, or undefined for a named one: meshd's Pods carry no container ports
 * to resolve the name against, so that Service is passed over as Istio passes over a Service
 * whose named port the pod does not declare.
 */
function numericTarget(targetPort: number | string): number | undefined {
  return typeof targetPort === 'number' ? targetPort : undefined;
}

function portMap(services: readonly MeshService[], namespace: string, labels: Labels): PortMap {
  let byProxy = memo.get(services);
  if (!byProxy) memo.set(services, (byProxy = new Map()));
  const key = `${namespace}|${labelsKey(labels)}`;
  let map = byProxy.get(key);
  if (map) return map;
  const out = new Map<number, number>();
  // Services are sorted by hostname (`<name>.<namespace>.svc...`): by name within the namespace.
  for (const svc of services) {
    if (svc.namespace !== namespace || !selectorMatches(svc.selector, labels)) continue;
    if (DISABLE_GATEWAY_PORT_TRANSLATION_LABEL in svc.labels) continue;
    for (const p of svc.ports) {
      const target = numericTarget(p.targetPort);
      if (target === undefined || out.has(p.port)) continue;
      out.set(p.port, target);
    }
  }
  byProxy.set(key, (map = out));
  return map;
}

/** The port the gateway proxy (namespace, labels) binds for a Gateway server port, given the mesh's services (sorted by hostname). */
export function gatewayListenPort(snapshot: { readonly services: readonly MeshService[] }, proxy: { namespace: string; labels: Labels }, serverPort: number): number {
  return portMap(snapshot.services, proxy.namespace, proxy.labels).get(serverPort) ?? serverPort;
}
