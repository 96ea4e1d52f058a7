// The Kubernetes source: one resilient informer per watched kind, feeding the store
// with the same typed objects the file source produces. Ready only when every
// informer has synced.
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseMeshObject, type MeshKind, type MeshObject } from '../../model/objects.js';
import type { ConfigStore, Refusal } from '../../model/store.js';
import type { Logger } from '../../util/log.js';
import type { Metrics } from '../../util/metrics.js';
import { preferredVersion, servedResources, type KubeConnection } from '../../kube/client.js';
import { ResilientInformer, DEFAULT_BACKOFF, type BackoffPolicy } from '../../kube/resilient-informer.js';

export interface WatchedKind {
  kind: string;
  group: string;
  version: string;
  plural: string;
  /** Istio config rather than registry (for metric names). */
  config: boolean;
}

export const CORE_KINDS: WatchedKind[] = [
  { kind: 'Service', group: '', version: 'v1', plural: 'services', config: false },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', config: false },
  { kind: 'Pod', group: '', version: 'v1', plural: 'pods', config: false },
  { kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces', config: false },
  { kind: 'Secret', group: '', version: 'v1', plural: 'secrets', config: false },
];

export const ISTIO_NETWORKING_GROUP = 'networking.istio.io';
/** Istio's networking versions meshd accepts, in order of preference. */
export const ISTIO_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'];
export const ISTIO_SECURITY_GROUP = 'security.istio.io';
/** Istio's security versions meshd accepts, in order of preference. */
export const ISTIO_SECURITY_VERSIONS = ['v1', 'v1beta1'];

export const ISTIO_TELEMETRY_GROUP = 'telemetry.istio.io';
/** Istio's telemetry versions meshd accepts, in order of preference. */
export const ISTIO_TELEMETRY_VERSIONS = ['v1', 'v1alpha1'];

/** An Istio API group: its kinds are watched at the version the server prefers, or not at all when its CRDs are missing. */
export interface IstioGroup {
  group: string;
  versions: string[];
  kinds: { kind: string; plural: string }[];
  /** What is not watched when the group is not served, for the log. */
  describe: string;
}

export const ISTIO_GROUPS: IstioGroup[] = [
  {
    group: ISTIO_NETWORKING_GROUP,
    versions: ISTIO_VERSIONS,
    kinds: [
      { kind: 'Gateway', plural: 'gateways' },
      { kind: 'VirtualService', plural: 'virtualservices' },
      { kind: 'DestinationRule', plural: 'destinationrules' },
      { kind: 'Sidecar', plural: 'sidecars' },
      { kind: 'ServiceEntry', plural: 'serviceentries' },
      { kind: 'WorkloadEntry', plural: 'workloadentries' },
    ],
    describe: 'Gateways, VirtualServices, DestinationRules, Sidecars, ServiceEntries and WorkloadEntries',
  },
  {
    group: ISTIO_SECURITY_GROUP,
    versions: ISTIO_SECURITY_VERSIONS,
    kinds: [
      { kind: 'PeerAuthentication', plural: 'peerauthentications' },
      { kind: 'AuthorizationPolicy', plural: 'authorizationpolicies' },
      { kind: 'RequestAuthentication', plural: 'requestauthentications' },
    ],
    describe: 'PeerAuthentications, AuthorizationPolicies and RequestAuthentications',
  },
  {
    group: ISTIO_TELEMETRY_GROUP,
    versions: ISTIO_TELEMETRY_VERSIONS,
    kinds: [{ kind: 'Telemetry', plural: 'telemetries' }],
    describe: 'Telemetries',
  },
];

/** The kinds of `g` the API server serves at `version`, as watched kinds, and those it does not. */
export async function servedIstioKinds(conn: KubeConnection, g: IstioGroup, version: string): Promise<{ served: WatchedKind[]; missing: IstioGroup['kinds'] }> {
  const resources = await servedResources(conn, g.group, version);
  return {
    served: g.kinds.filter((k) => resources.has(k.plural)).map((k) => ({ ...k, group: g.group, version, config: true })),
    missing: g.kinds.filter((k) => !resources.has(k.plural)),
  };
}

export interface KubeSourceOptions {
  conn: KubeConnection;
  store: ConfigStore;
  log: Logger;
  metrics?: Metrics;
  backoff?: BackoffPolicy;
  /** Told every Istio config object as stored (generation, status...), for status writing. */
  observer?: RawObjectObserver;
}

/** Sees the raw Istio config objects the informers bring, valid or not. */
export interface RawObjectObserver {
  upsert(kind: WatchedKind, raw: KubernetesObject): void;
  remove(kind: WatchedKind, raw: KubernetesObject): void;
  resync(kind: WatchedKind, list: readonly KubernetesObject[]): void;
}

export function collectionPath(k: WatchedKind): string {
  return k.group ? `/apis/${k.group}/${k.version}/${k.plural}` : `/api/${k.version}/${k.plural}`;
}

export class KubeSource {
  private readonly informers: ResilientInformer<KubernetesObject>[] = [];
  private kinds: WatchedKind[] = [];

  constructor(private readonly o: KubeSourceOptions) {}

  /** Discovers the Istio API versions and starts every informer. */
  async start(): Promise<void> {
    this.kinds = [...CORE_KINDS];
    for (const g of ISTIO_GROUPS) {
      const version = await this.istioVersion(g);
      if (!version) {
        this.o.log.warn({ group: g.group }, `the ${g.group} CRDs are not installed; ${g.describe} are not watched`);
        continue;
      }
      this.o.log.info({ group: g.group, version }, `watching ${g.group} config`);
      const { served, missing } = await servedIstioKinds(this.o.conn, g, version);
      // CRDs from an older install may lack a kind: the others are still watched.
      for (const k of missing) this.o.log.warn({ group: g.group, kind: k.kind }, `the ${k.plural}.${g.group} CRD is not installed; ${k.kind} objects are not watched`);
      this.kinds.push(...served);
    }
    for (const k of this.kinds) {
      const inf = this.informerFor(k);
      this.informers.push(inf);
      inf.start();
    }
  }

  private async istioVersion(g: IstioGroup): Promise<string | undefined> {
    // Discovery must succeed before informers start; retry while the API server is not reachable.
    let delay = (this.o.backoff ?? DEFAULT_BACKOFF).initialMs;
    for (;;) {
      try {
        const preferred = await preferredVersion(this.o.conn, g.group);
        if (preferred === undefined) return undefined;
        return g.versions.includes(preferred) ? preferred : g.versions[0];
      } catch (err) {
        this.o.log.warn({ err: String(err), retryInMs: delay }, 'API discovery failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, (this.o.backoff ?? DEFAULT_BACKOFF).maxMs);
      }
    }
  }

  private informerFor(k: WatchedKind): ResilientInformer<KubernetesObject> {
    const source = `kube:${k.kind}`;
    const apiVersion = k.group ? `${k.group}/${k.version}` : k.version;
    const log = this.o.log;
    const store = this.o.store;
    const metrics = this.o.metrics;
    // An invalid object is a refusal (the push controller logs and counts it from the snapshot's findings).
    const parse = (raw: KubernetesObject): MeshObject | Refusal | undefined => {
      const r = parseMeshObject(raw, raw.metadata?.namespace ?? '');
      if (r.ok === 'ignored') return undefined;
      if (!r.ok) {
        const generation = raw.metadata?.generation;
        return { kind: k.kind, namespace: raw.metadata?.namespace ?? '', name: raw.metadata?.name ?? '', ...(typeof generation === 'number' ? { generation } : {}), errors: r.errors };
      }
      return r.value;
    };
    const isRefusal = (x: MeshObject | Refusal): x is Refusal => 'errors' in x;
    const eventCounter = k.config ? metrics?.k8sConfigEvents : metrics?.k8sRegistryEvents;
    const observer = k.config ? this.o.observer : undefined;
    const inf = new ResilientInformer<KubernetesObject>(
      this.o.conn,
      collectionPath(k),
      apiVersion,
      k.kind,
      {
        upsert: (raw) => {
          observer?.upsert(k, raw);
          const obj = parse(raw);
          if (obj && isRefusal(obj)) store.refuse(source, obj);
          else if (obj) store.upsert(source, obj);
        },
        remove: (raw) => {
          observer?.remove(k, raw);
          store.delete(source, k.kind as MeshKind, raw.metadata?.namespace ?? '', raw.metadata?.name ?? '');
        },
        resync: (list) => {
          observer?.resync(k, list);
          const objects: MeshObject[] = [];
          const refusals: Refusal[] = [];
          for (const raw of list) {
            const obj = parse(raw);
            if (obj && !isRefusal(obj)) objects.push(obj);
            else if (obj) {
              refusals.push(obj);
              // An invalid object keeps its last good version.
              const old = store.get(k.kind as MeshKind, obj.namespace, obj.name);
              if (old) objects.push(old);
            }
          }
          store.replaceSource(source, objects, refusals);
        },
      },
      log.child({ informer: k.kind }),
      this.o.backoff,
      (event) => {
        if (event === 'error') metrics?.informerRestarts.inc({ kind: k.kind });
        else if (event === 'synced') metrics?.informerSynced.set({ kind: k.kind }, 1);
        else if (event !== 'resync') eventCounter?.inc({ type: k.kind, event });
      },
    );
    metrics?.informerSynced.set({ kind: k.kind }, 0);
    return inf;
  }

  /** True once every informer has listed at least once. */
  get ready(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.stats.synced);
  }

  async synced(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.synced()));
  }

  status(): Record<string, unknown>[] {
    return this.informers.map((i) => ({ path: i.path, ...i.stats }));
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}
