// What every analyzer reads: the objects, indexed once, and the mesh snapshot meshd would
// serve from them (so checks that depend on translation, such as Gateway conflicts, see
// exactly what the translator sees).
import { buildSnapshot, serviceHostname, type MeshSnapshot } from '../model/mesh.js';
import { ConfigStore, type Refusal } from '../model/store.js';
import type { MeshConfig } from '../model/mesh-config.js';
import { keyOf } from '../model/objects.js';
import type {
  DestinationRuleObject,
  GatewayObject,
  MeshObject,
  NamespaceObject,
  ObjectError,
  PeerAuthenticationObject,
  PodObject,
  ServiceObject,
  VirtualServiceObject,
} from '../model/objects.js';
import type { FindingOrigin } from './finding.js';

export interface AnalysisInput {
  /** The objects that passed validation on their own. */
  objects: readonly MeshObject[];
  /** Validation errors of the objects that did not (reported as IST0106). */
  invalid?: readonly ObjectError[];
  /** Default `cluster.local`. */
  domain?: string;
  /**
   * Whether the input holds the cluster's workloads (Pods, Namespaces): true for a live
   * cluster; for files, when they list Pods. Checks that look for pods (a Gateway whose
   * selector matches none, a subset that selects none, injection) run only then, so files
   * holding only Istio config are not told that no pod exists.
   */
  workloadsKnown?: boolean;
  /** Where objects read from files are defined, by `kind/namespace/name`: findings about them say so. */
  origins?: ReadonlyMap<string, FindingOrigin>;
  /** The mesh config the objects are served with (extension providers...); Istio's defaults when unset. */
  meshConfig?: MeshConfig;
}

export interface AnalysisContext {
  readonly domain: string;
  readonly snapshot: MeshSnapshot;
  readonly workloadsKnown: boolean;
  readonly invalid: readonly ObjectError[];
  /** Each kind sorted by namespace/name. */
  readonly virtualServices: readonly VirtualServiceObject[];
  readonly destinationRules: readonly DestinationRuleObject[];
  readonly gateways: readonly GatewayObject[];
  readonly peerAuthentications: readonly PeerAuthenticationObject[];
  readonly pods: readonly PodObject[];
  readonly podsByNamespace: ReadonlyMap<string, readonly PodObject[]>;
  readonly namespaces: readonly NamespaceObject[];
  /** Every Service (ExternalName ones too) by `<name>.<namespace>.svc.<domain>`. */
  readonly serviceByHost: ReadonlyMap<string, ServiceObject>;
}

function refusalsOf(errors: readonly ObjectError[]): Refusal[] {
  const byKey = new Map<string, Refusal & { errors: ObjectError[] }>();
  for (const e of errors) {
    const key = keyOf(e.kind, e.namespace, e.name);
    const r = byKey.get(key);
    if (r) r.errors.push(e);
    else byKey.set(key, { kind: e.kind, namespace: e.namespace, name: e.name, errors: [e] });
  }
  return [...byKey.values()];
}

function byNamespacedName<T extends MeshObject>(list: T[]): T[] {
  const key = (o: T): string => `${o.metadata.namespace}/${o.metadata.name}`;
  return list.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export function analysisContext(input: AnalysisInput): AnalysisContext {
  const domain = input.domain ?? 'cluster.local';
  const store = new ConfigStore();
  // Objects that failed their own validation are refusals, as a source records them: the snapshot reports them (IST0106).
  store.replaceSource('analysis', [...input.objects], refusalsOf(input.invalid ?? []));
  const list = <K extends MeshObject['kind']>(kind: K): Extract<MeshObject, { kind: K }>[] => byNamespacedName(store.list(kind));
  const pods = list('Pod');
  const podsByNamespace = new Map<string, PodObject[]>();
  for (const p of pods) {
    const inNs = podsByNamespace.get(p.metadata.namespace);
    if (inNs) inNs.push(p);
    else podsByNamespace.set(p.metadata.namespace, [p]);
  }
  return {
    domain,
    snapshot: buildSnapshot(store, domain, undefined, input.meshConfig).snapshot,
    workloadsKnown: input.workloadsKnown ?? false,
    invalid: input.invalid ?? [],
    virtualServices: list('VirtualService'),
    destinationRules: list('DestinationRule'),
    gateways: list('Gateway'),
    peerAuthentications: list('PeerAuthentication'),
    pods,
    podsByNamespace,
    namespaces: list('Namespace'),
    serviceByHost: new Map(list('Service').map((s) => [serviceHostname(s.metadata.name, s.metadata.namespace, domain), s])),
  };
}

/** Pods of `namespace` whose labels include all of `labels` (every pod of it for an empty map). */
export function podsWithLabels(ctx: AnalysisContext, namespace: string | undefined, labels: Readonly<Record<string, string>>): PodObject[] {
  const wanted = Object.entries(labels);
  const candidates = namespace === undefined ? ctx.pods : (ctx.podsByNamespace.get(namespace) ?? []);
  return candidates.filter((p) => wanted.every(([k, v]) => p.metadata.labels[k] === v));
}

/** A label map as Kubernetes prints a selector: `app=reviews,version=v1`, keys sorted. */
export function selectorText(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/**
 * The ports of the registry's service for `host`: a Service's, or a ServiceEntry's whose
 * host is it (or a `*.suffix` host covering it); undefined when none serves it.
 */
export function registryPorts(ctx: AnalysisContext, host: string): number[] | undefined {
  const svc = ctx.serviceByHost.get(host);
  if (svc) return svc.spec.ports.map((p) => p.port);
  const entry = ctx.snapshot.serviceByHost.get(host) ?? ctx.snapshot.services.find((s) => s.entry && s.hostname.startsWith('*.') && host.endsWith(s.hostname.slice(1)));
  return entry?.entry ? entry.ports.map((p) => p.port) : undefined;
}
