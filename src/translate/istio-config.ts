// Which Istio config applies where: host names resolved as Istio resolves them,
// VirtualServices by host and gateway, DestinationRules by host and namespace.
import type { IstioConfig } from '../model/mesh.js';
import type { DestinationRuleObject, VirtualServiceObject } from '../model/objects.js';

/** Istio's root namespace: DestinationRules there apply mesh-wide. */
export const ROOT_NAMESPACE = 'istio-system';

export const MESH_GATEWAY = 'mesh';

export { resolveHost } from '../model/istio.js';
import { resolveHost } from '../model/istio.js';

/** The root namespace of this config: the mesh config's rootNamespace, istio-system by default. */
export function rootNamespaceOf(config: IstioConfig): string {
  return config.rootNamespace ?? ROOT_NAMESPACE;
}

/** A gateway reference ("name" or "ns/name") as "ns/name"; "mesh" stays "mesh". */
export function resolveGateway(ref: string, namespace: string): string {
  if (ref === MESH_GATEWAY) return ref;
  const slash = ref.indexOf('/');
  if (slash >= 0) return ref;
  const dot = ref.indexOf('.');
  // Istio also accepts "name.namespace.svc.cluster.local"-style references.
  if (dot > 0) return `${ref.slice(dot + 1).split('.')[0]}/${ref.slice(0, dot)}`;
  return `${namespace}/${ref}`;
}

export function visibleTo(exportTo: readonly string[] | undefined, objectNamespace: string, clientNamespace: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || (e === '.' ? objectNamespace === clientNamespace : e === clientNamespace));
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
    const gws = vs.spec.gateways?.length ? vs.spec.gateways : [MESH_GATEWAY];
    return gws.some((g) => resolveGateway(g, vs.metadata.namespace) === gateway);
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
