// Which Istio config applies where: host names resolved as Istio resolves them,
// VirtualServices by host and gateway, DestinationRules by host and namespace.
import type { IstioConfig } from '../model/mesh.js';
import type { DestinationRuleObject, VirtualServiceObject } from '../model/objects.js';

export { resolveHost } from '../model/istio.js';
import { resolveHost } from '../model/istio.js';
export { MESH_GATEWAY, ROOT_NAMESPACE, resolveGateway, visibleTo } from '../model/istio-scope.js';
import { boundGatewaysOf, MESH_GATEWAY, ROOT_NAMESPACE, visibleTo } from '../model/istio-scope.js';

/** The root namespace of this config: the mesh config's rootNamespace, istio-system by default. */
export function rootNamespaceOf(config: IstioConfig): string {
  return config.rootNamespace ?? ROOT_NAMESPACE;
}

/** Whether `pattern` (possibly "*.example.com" or "*") matches `host`. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return pattern === host;
}

/** The VirtualServices bound to `gateway` ("mesh" or "ns/name") that `clientNamespace` can see, in order. */
export function virtualServicesFor(config: IstioConfig, gateway: string, clientNamespace: string): VirtualServiceObject[] {
  return config.virtualServices.filter((vs) => {
    if (gateway === MESH_GATEWAY && !visibleTo(vs.spec.exportTo, vs.metadata.namespace, clientNamespace)) return false;
    return boundGatewaysOf(vs).includes(gateway);
  });
}

/** DestinationRules that apply to every workload, by the host they resolve to; built once per config. */
const rulesByHost = new WeakMap<IstioConfig, Map<string, DestinationRuleObject[]>>();

function destinationRulesByHost(config: IstioConfig, domain: string): Map<string, DestinationRuleObject[]> {
  let index = rulesByHost.get(config);
  if (!index) {
    index = new Map();
    for (const dr of config.destinationRules) {
      if (dr.spec.workloadSelector) continue;
      const host = resolveHost(dr.spec.host, dr.metadata.namespace, domain);
      const list = index.get(host);
      if (list) list.push(dr);
      else index.set(host, [dr]);
    }
    rulesByHost.set(config, index);
  }
  return index;
}

/**
 * The DestinationRule for `host` as seen from `clientNamespace`: the client's namespace
 * first, then the service's, then the root namespace (Istio's lookup order).
 */
export function destinationRuleFor(config: IstioConfig, host: string, clientNamespace: string, serviceNamespace: string, domain: string): DestinationRuleObject | undefined {
  const matching = (destinationRulesByHost(config, domain).get(host) ?? []).filter((dr) => visibleTo(dr.spec.exportTo, dr.metadata.namespace, clientNamespace));
  for (const ns of [clientNamespace, serviceNamespace, rootNamespaceOf(config)]) {
    const found = matching.find((dr) => dr.metadata.namespace === ns);
    if (found) return found;
  }
  return undefined;
}
