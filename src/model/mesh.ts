// The mesh model: an immutable snapshot of services and their endpoints, indexed for
// translation. Built from the store; endpoint-only changes reuse everything else.
import type { AuthorizationPolicyObject, RequestAuthenticationObject, ServiceEntryObject, SidecarObject, TelemetryObject, WorkloadEntryObject, DestinationRuleObject, EndpointSliceObject, GatewayObject, PeerAuthenticationObject, PodObject, SecretObject, ServiceObject, VirtualServiceObject } from './objects.js';
import type { ConfigStore } from './store.js';
import { portProtocol } from './protocol.js';
import type { Labels } from './labels.js';
import { defaultMeshConfig, type MeshConfig } from './mesh-config.js';
import { sortFindings, type Finding } from './finding.js';
import type { MeshService } from './service.js';
import { ROOT_NAMESPACE } from './istio-scope.js';
import { refusalFindings, validateConfig } from './validation/index.js';
import { serviceEntryEndpoints, serviceEntryServices, workloadEndpoint, type EntryService } from './service-entries.js';
import { selectorMatches } from './labels.js';
import type { PeerAuthenticationDecisions } from './validation/peer-authentications.js';

export type { MeshEndpoint, MeshService, MeshServicePort } from './service.js';
import type { MeshEndpoint } from './service.js';


/** Endpoints of one service port, keyed by `<hostname>|<port>`. */
export type EndpointIndex = ReadonlyMap<string, readonly MeshEndpoint[]>;

export interface MeshSnapshot {
  /** Increases with every snapshot. */
  readonly version: number;
  readonly domain: string;
  /** Sorted by hostname. */
  readonly services: readonly MeshService[];
  readonly serviceByHost: ReadonlyMap<string, MeshService>;
  readonly endpoints: EndpointIndex;
  /** Per service hostname, a version that changes when its endpoints change. */
  readonly endpointVersions: ReadonlyMap<string, number>;
  /** Pods by `namespace/name`: workload identity and endpoint labels. */
  readonly pods: ReadonlyMap<string, PodObject>;
  /** Istio config, sorted by namespace/name. */
  readonly config: IstioConfig;
  /** The mesh config (ConfigMap istio, key mesh; or --mesh-config). */
  readonly meshConfig: MeshConfig;
  /**
   * What validation found (model/validation/): the config's findings and the store's
   * refusals, sorted. A change of refusals alone makes a new snapshot with the same config
   * (`updateFindings`), which pushes nothing.
   */
  readonly findings: readonly Finding[];
}

export interface IstioConfig {
  /** Valid VirtualServices (those with errors that need other objects to see are left out, see `findings`). */
  readonly virtualServices: readonly VirtualServiceObject[];
  readonly destinationRules: readonly DestinationRuleObject[];
  readonly gateways: readonly GatewayObject[];
  /** Every valid PeerAuthentication, sorted by namespace/name. Several may claim one scope: see `peerAuthenticationDecisions`. */
  readonly peerAuthentications: readonly PeerAuthenticationObject[];
  /** Which PeerAuthentications apply (the oldest of several, as Istio decides): the validation stage's decision. */
  readonly peerAuthenticationDecisions: PeerAuthenticationDecisions;
  /** Every valid AuthorizationPolicy, sorted by namespace/name (translate/authorization.ts applies them). */
  readonly authorizationPolicies?: readonly AuthorizationPolicyObject[];
  /** Every valid RequestAuthentication, sorted by namespace/name (translate/request-authentication.ts applies them). */
  readonly requestAuthentications?: readonly RequestAuthenticationObject[];
  /** Every valid Sidecar, sorted by namespace/name (model/sidecar.ts resolves which applies to a workload). */
  readonly sidecars?: readonly SidecarObject[];
  /** Every valid ServiceEntry, sorted by namespace/name (their hosts are in the snapshot's services). */
  readonly serviceEntries?: readonly ServiceEntryObject[];
  /** Every valid WorkloadEntry, sorted by namespace/name (endpoints of the ServiceEntries selecting them). */
  readonly workloadEntries?: readonly WorkloadEntryObject[];
  /** Every valid Telemetry, sorted by namespace/name (model/telemetry.ts resolves which apply to a proxy). */
  readonly telemetries?: readonly TelemetryObject[];
  /** TLS secrets by `namespace/name`, for gateways' credentialName. */
  readonly secrets: ReadonlyMap<string, SecretObject>;
  /** The validation stage's findings about this config (objects or parts left out or ignored), sorted; refusals are not here. */
  readonly findings: readonly Finding[];
  /** The mesh config's rootNamespace (mesh-wide policies, DestinationRule fallback); istio-system when unset. */
  readonly rootNamespace?: string;
}

function byNamespacedName<T extends { metadata: { namespace: string; name: string } }>(a: T, b: T): number {
  const x = `${a.metadata.namespace}/${a.metadata.name}`;
  const y = `${b.metadata.namespace}/${b.metadata.name}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Secrets holding meshd's CA key (Istio's names for them). */
const CA_SECRET_NAMES = new Set(['istio-ca-secret', 'cacerts']);

/**
 * The Istio config served from the store, as the validation stage (model/validation/)
 * decides it, with its findings. `services` (the snapshot's) default to the store's.
 */
export function istioConfig(store: ConfigStore, domain: string, rootNamespace?: string, services?: readonly MeshService[], meshConfig?: MeshConfig): IstioConfig {
  const gateways = store.list('Gateway').sort(byNamespacedName);
  const destinationRules = store.list('DestinationRule').sort(byNamespacedName);
  const peerAuthentications = store.list('PeerAuthentication').sort(byNamespacedName);
  const sidecars = store.list('Sidecar').sort(byNamespacedName);
  const authorizationPolicies = store.list('AuthorizationPolicy').sort(byNamespacedName);
  const requestAuthentications = store.list('RequestAuthentication').sort(byNamespacedName);
  const serviceEntries = store.list('ServiceEntry').sort(byNamespacedName);
  const workloadEntries = store.list('WorkloadEntry').sort(byNamespacedName);
  const telemetries = store.list('Telemetry').sort(byNamespacedName);
  const v = validateConfig({
    telemetries,
    serviceEntries,
    virtualServices: store.list('VirtualService').sort(byNamespacedName),
    destinationRules,
    gateways,
    peerAuthentications,
    sidecars,
    authorizationPolicies,
    requestAuthentications,
    // Listed only if a policy needs them (one using an HTTP-only field).
    pods: { [Symbol.iterator]: () => store.list('Pod')[Symbol.iterator]() },
    services: services ?? meshServices(store, domain),
    domain,
    rootNamespace: rootNamespace ?? ROOT_NAMESPACE,
    extensionProviders: meshConfig?.extensionProviders ?? [],
  });
  return {
    virtualServices: v.virtualServices,
    destinationRules,
    findings: v.findings,
    ...(rootNamespace !== undefined ? { rootNamespace } : {}),
    gateways,
    peerAuthentications,
    peerAuthenticationDecisions: v.peerAuthenticationDecisions,
    authorizationPolicies,
    requestAuthentications,
    sidecars,
    serviceEntries,
    workloadEntries,
    telemetries,
    // The CA's own key material is never a gateway credential.
    secrets: new Map(store.list('Secret').filter((x) => !CA_SECRET_NAMES.has(x.metadata.name)).map((x) => [`${x.metadata.namespace}/${x.metadata.name}`, x])),
  };
}

/** The config's findings and the store's refusals, sorted. */
function snapshotFindings(store: ConfigStore, config: IstioConfig): readonly Finding[] {
  const refused = refusalFindings(store.refusals());
  return refused.length === 0 ? config.findings : sortFindings([...config.findings, ...refused]);
}

const NO_LABELS: Labels = Object.freeze({});

export function serviceHostname(name: string, namespace: string, domain: string): string {
  return `${name}.${namespace}.svc.${domain}`;
}

export function endpointKey(hostname: string, port: number): string {
  return `${hostname}|${port}`;
}

/** Each Service's mesh form, made once per Service object (a snapshot keeps unchanged ones, and translation can tell). */
const meshServiceOf = new WeakMap<ServiceObject, MeshService>();

function toMeshService(s: ServiceObject, domain: string): MeshService {
  const known = meshServiceOf.get(s);
  if (known && known.hostname === serviceHostname(s.metadata.name, s.metadata.namespace, domain)) return known;
  const svc = newMeshService(s, domain);
  meshServiceOf.set(s, svc);
  return svc;
}

function newMeshService(s: ServiceObject, domain: string): MeshService {
  const ip = s.spec.clusterIP;
  return {
    hostname: serviceHostname(s.metadata.name, s.metadata.namespace, domain),
    name: s.metadata.name,
    namespace: s.metadata.namespace,
    clusterIP: ip && ip !== 'None' ? ip : undefined,
    ports: s.spec.ports
      .filter((p) => p.protocol !== 'SCTP')
      .map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: portProtocol(p) }))
      .sort((a, b) => a.port - b.port),
    selector: s.spec.selector,
    labels: s.metadata.labels,
  };
}

/**
 * Ready endpoints of `svc`, per service port, from its EndpointSlices (ports matched by
 * name; labels come from their Pods), and the WorkloadEntries of its namespace its selector
 * matches (as Istio adds them to Services).
 */
/** Endpoints of `port` of a Service from the WorkloadEntries its selector matches. */
function selectedWorkloadEntries(svc: MeshService, port: MeshService['ports'][number], workloadEntries: readonly WorkloadEntryObject[], seen: Set<string>): MeshEndpoint[] {
  const out: MeshEndpoint[] = [];
  const selector = svc.selector;
  if (!selector || Object.keys(selector).length === 0) return out;
  for (const we of workloadEntries) {
    if (we.metadata.namespace !== svc.namespace || !selectorMatches(selector, we.spec.labels ?? NO_LABELS)) continue;
    const ep = workloadEndpoint(we.spec, port, we.metadata.namespace);
    if (!ep || seen.has(`${ep.address}:${ep.port}`)) continue;
    seen.add(`${ep.address}:${ep.port}`);
    out.push(ep);
  }
  return out;
}

export function serviceEndpoints(svc: MeshService, slices: readonly EndpointSliceObject[], pods?: ReadonlyMap<string, PodObject>, workloadEntries?: readonly WorkloadEntryObject[]): Map<string, MeshEndpoint[]> {
  const out = new Map<string, MeshEndpoint[]>();
  for (const port of svc.ports) {
    const seen = new Set<string>();
    const eps: MeshEndpoint[] = [];
    for (const slice of slices) {
      if (slice.addressType === 'FQDN') continue;
      const slicePort = slice.ports.find((p) => p.name === port.name);
      if (!slicePort) continue;
      for (const e of slice.endpoints) {
        if (!e.ready) continue;
        for (const address of e.addresses) {
          const key = `${address}:${slicePort.port}`;
          if (seen.has(key)) continue;
          seen.add(key);
          const ep: MeshEndpoint = { address, port: slicePort.port, labels: NO_LABELS };
          if (e.targetRef?.kind === 'Pod' && e.targetRef.name) {
            ep.podName = e.targetRef.name;
            const pod = pods?.get(`${e.targetRef.namespace ?? slice.metadata.namespace}/${e.targetRef.name}`);
            if (pod) {
              ep.labels = pod.metadata.labels;
              ep.serviceAccount = `${pod.metadata.namespace}/${pod.serviceAccountName}`;
            }
          }
          if (e.zone) ep.zone = e.zone;
          eps.push(ep);
        }
      }
    }
    if (workloadEntries?.length) eps.push(...selectedWorkloadEntries(svc, port, workloadEntries, seen));
    eps.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
    out.set(endpointKey(svc.hostname, port.port), eps);
  }
  return out;
}

function slicesByService(store: ConfigStore): Map<string, EndpointSliceObject[]> {
  const out = new Map<string, EndpointSliceObject[]>();
  for (const s of store.list('EndpointSlice')) {
    const key = `${s.metadata.namespace}/${s.serviceName}`;
    let list = out.get(key);
    if (!list) out.set(key, (list = []));
    list.push(s);
  }
  for (const list of out.values()) list.sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  return out;
}

function sameLabels(a: Labels, b: Labels): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}

function sameEndpoints(a: readonly MeshEndpoint[] | undefined, b: readonly MeshEndpoint[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.address !== y.address || x.port !== y.port || x.podName !== y.podName || x.zone !== y.zone || x.serviceAccount !== y.serviceAccount || x.region !== y.region || x.subZone !== y.subZone || x.weight !== y.weight || x.network !== y.network || !sameLabels(x.labels, y.labels)) return false;
  }
  return true;
}

export interface SnapshotDelta {
  snapshot: MeshSnapshot;
  /** Hostnames whose endpoints differ from the previous snapshot. */
  changedEndpoints: Set<string>;
  /** True when anything other than endpoints may have changed. */
  full: boolean;
}

/**
 * Builds a whole new snapshot from the store. Endpoint lists equal to the previous ones are
 * reused. The mesh config is the previous snapshot's unless one is given (Istio's defaults at first).
 */
function byHostname(a: MeshService, b: MeshService): number {
  return a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0;
}

/** The store's Services (not ExternalName ones) and ServiceEntry hosts (model/service-entries.ts), sorted by hostname. */
function registry(store: ConfigStore, domain: string): { services: MeshService[]; entries: EntryService[] } {
  const kube = store
    .list('Service')
    .filter((s) => s.spec.type !== 'ExternalName')
    .map((s) => toMeshService(s, domain));
  const entries = serviceEntryServices(store.list('ServiceEntry'), new Set(kube.map((s) => s.hostname)));
  return { services: [...kube, ...entries.map((e) => e.svc)].sort(byHostname), entries };
}

function meshServices(store: ConfigStore, domain: string): MeshService[] {
  return registry(store, domain).services;
}

/** Kinds the service registry and its endpoints are made of: a change to any other kind leaves them as they were. */
export const REGISTRY_KINDS: ReadonlySet<string> = new Set(['Service', 'ServiceEntry', 'EndpointSlice', 'Pod', 'WorkloadEntry']);

/**
 * Builds a new snapshot. With `changedKinds` (the kinds changed since `prev`) naming no kind
 * of the registry, services, pods and endpoints are `prev`'s (an edit of Istio config does not
 * recompute 1000 services' endpoints); the Istio config and findings are always rebuilt.
 */
export function buildSnapshot(store: ConfigStore, domain: string, prev?: MeshSnapshot, meshConfig: MeshConfig = prev?.meshConfig ?? defaultMeshConfig(), changedKinds?: ReadonlySet<string>): SnapshotDelta {
  if (prev && changedKinds && prev.domain === domain && ![...changedKinds].some((k) => REGISTRY_KINDS.has(k))) {
    const config = istioConfig(store, domain, meshConfig.rootNamespace, prev.services, meshConfig);
    const snapshot: MeshSnapshot = { ...prev, version: prev.version + 1, config, meshConfig, findings: snapshotFindings(store, config) };
    return { snapshot, changedEndpoints: new Set(), full: true };
  }
  return rebuildSnapshot(store, domain, prev, meshConfig);
}

function rebuildSnapshot(store: ConfigStore, domain: string, prev: MeshSnapshot | undefined, meshConfig: MeshConfig): SnapshotDelta {
  const { services, entries } = registry(store, domain);
  const entryByHost = new Map(entries.map((e) => [e.svc.hostname, e]));
  const workloads = { pods: store.list('Pod'), workloadEntries: store.list('WorkloadEntry') };
  const serviceByHost = new Map(services.map((s) => [s.hostname, s]));
  const slices = slicesByService(store);
  const pods = new Map(store.list('Pod').map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
  const endpoints = new Map<string, readonly MeshEndpoint[]>();
  const endpointVersions = new Map<string, number>();
  const changedEndpoints = new Set<string>();
  const version = (prev?.version ?? 0) + 1;
  for (const svc of services) {
    let changed = false;
    const entry = svc.entry ? entryByHost.get(svc.hostname) : undefined;
    const found = entry
      ? new Map([...serviceEntryEndpoints(entry, workloads)].map(([port, eps]) => [endpointKey(svc.hostname, port), eps]))
      : serviceEndpoints(svc, slices.get(`${svc.namespace}/${svc.name}`) ?? [], pods, workloads.workloadEntries);
    for (const [key, eps] of found) {
      const old = prev?.endpoints.get(key);
      if (old && sameEndpoints(old, eps)) endpoints.set(key, old);
      else {
        endpoints.set(key, eps);
        changed = true;
      }
    }
    if (prev && !changed) {
      // Ports removed from a service also change its endpoints.
      const prevSvc = prev.serviceByHost.get(svc.hostname);
      if (!prevSvc || prevSvc.ports.length !== svc.ports.length || prevSvc.entry?.resolution !== svc.entry?.resolution) changed = true;
    }
    if (changed || !prev) changedEndpoints.add(svc.hostname);
    endpointVersions.set(svc.hostname, changed || !prev ? version : (prev.endpointVersions.get(svc.hostname) ?? version));
  }
  if (prev) for (const s of prev.services) if (!serviceByHost.has(s.hostname)) changedEndpoints.add(s.hostname);
  const config = istioConfig(store, domain, meshConfig.rootNamespace, services, meshConfig);
  return { snapshot: { version, domain, services, serviceByHost, endpoints, endpointVersions, pods, config, meshConfig, findings: snapshotFindings(store, config) }, changedEndpoints, full: true };
}

/**
 * The cheapest path: only refusals changed (a source refused a new version of an object
 * whose last good version, if any, still serves). The config is the previous snapshot's,
 * so nothing is translated or pushed; only the findings are new.
 */
export function updateFindings(store: ConfigStore, prev: MeshSnapshot): SnapshotDelta {
  return { snapshot: { ...prev, version: prev.version + 1, findings: snapshotFindings(store, prev.config) }, changedEndpoints: new Set(), full: false };
}

/** The service accounts (`namespace/name`) behind a service's endpoints, sorted. */
export function serviceAccountsOf(endpoints: EndpointIndex, svc: MeshService): string[] {
  const out = new Set<string>();
  for (const p of svc.ports) for (const e of endpoints.get(endpointKey(svc.hostname, p.port)) ?? []) if (e.serviceAccount) out.add(e.serviceAccount);
  return [...out].sort();
}

function serviceAccountsKey(endpoints: EndpointIndex, svc: MeshService): string {
  return serviceAccountsOf(endpoints, svc).join(',');
}

/** The cheap path: only the endpoints of `serviceKeys` (namespace/name) changed. */
export function updateEndpoints(store: ConfigStore, prev: MeshSnapshot, serviceKeys: Iterable<string>): SnapshotDelta {
  const version = prev.version + 1;
  const endpoints = new Map(prev.endpoints);
  const endpointVersions = new Map(prev.endpointVersions);
  const changedEndpoints = new Set<string>();
  const wanted = new Set(serviceKeys);
  const workloadEntries = store.list('WorkloadEntry');
  let identitiesChanged = false;
  const slices = new Map<string, EndpointSliceObject[]>();
  for (const s of store.list('EndpointSlice')) {
    const key = `${s.metadata.namespace}/${s.serviceName}`;
    if (!wanted.has(key)) continue;
    let list = slices.get(key);
    if (!list) slices.set(key, (list = []));
    list.push(s);
  }
  for (const key of wanted) {
    const [namespace, name] = key.split('/') as [string, string];
    const svc = prev.serviceByHost.get(serviceHostname(name, namespace, prev.domain));
    if (!svc) continue;
    const list = (slices.get(key) ?? []).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    let changed = false;
    for (const [k, eps] of serviceEndpoints(svc, list, prev.pods, workloadEntries)) {
      if (sameEndpoints(prev.endpoints.get(k), eps)) continue;
      endpoints.set(k, eps);
      changed = true;
    }
    if (changed) {
      changedEndpoints.add(svc.hostname);
      endpointVersions.set(svc.hostname, version);
      // Clusters verify the service's identities: new ones need the clusters translated again.
      if (serviceAccountsKey(endpoints, svc) !== serviceAccountsKey(prev.endpoints, svc)) identitiesChanged = true;
    }
  }
  if (identitiesChanged) return { ...buildSnapshot(store, prev.domain, prev), full: true };
  return {
    snapshot: { version, domain: prev.domain, services: prev.services, serviceByHost: prev.serviceByHost, endpoints, endpointVersions, pods: prev.pods, config: prev.config, meshConfig: prev.meshConfig, findings: snapshotFindings(store, prev.config) },
    changedEndpoints,
    full: false,
  };
}
