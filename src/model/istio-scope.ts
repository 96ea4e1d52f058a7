// Where Istio config applies: gateway references as Istio resolves them, and exportTo
// visibility. Shared by the validation stage (model/validation/) and the translator.

export const MESH_GATEWAY = 'mesh';

/** Istio's root namespace by default (the mesh config's rootNamespace): mesh-wide policies and DestinationRules live there. */
export const ROOT_NAMESPACE = 'istio-system';

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

/** The gateways a VirtualService binds to, resolved ("mesh" when it lists none). */
export function boundGatewaysOf(vs: { metadata: { namespace: string }; spec: { gateways?: readonly string[] | undefined } }): string[] {
  return (vs.spec.gateways?.length ? vs.spec.gateways : [MESH_GATEWAY]).map((g) => resolveGateway(g, vs.metadata.namespace));
}
