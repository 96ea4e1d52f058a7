// Turns mesh snapshots into per-proxy resource sets, encoded through the shared
// cache. Proxies of one class (same role, namespace, capture mode and workload ports)
// share one translation; endpoints are shared by all and rebuilt only where they changed.
import { endpointKey, type MeshSnapshot, type SnapshotDelta } from '../model/mesh.js';
import { resolveIdentity, type IdentityResolution, type Proxy } from '../model/proxy.js';
import { labelsKey } from '../model/labels.js';
import type { PodObject } from '../model/objects.js';
import { outboundClusters } from '../translate/clusters.js';
import { emptyLoadAssignment, serviceLoadAssignments, subsetsByHost } from '../translate/endpoints.js';
import { translateContext, proxyContext, TranslationMemo, type ProxyContext } from '../translate/index.js';
import { byName, PUSH_ORDER, TypeUrl, type EnvoyResource } from '../translate/types.js';
import { ResourceCache, type CachedResource } from './resource-cache.js';
import { SharedResponses, type SharedResponse } from './shared-responses.js';

export type ResourceMap = ReadonlyMap<string, CachedResource>;

export interface ProxyResources {
  readonly classKey: string;
  readonly configVersion: number;
  /** The snapshot (MeshSnapshot.version) these resources were read from. */
  readonly snapshotVersion?: number;
  readonly byType: Readonly<Record<TypeUrl, ResourceMap>>;
}

export interface PushRequest {
  /** Everything may have changed (not only endpoints). */
  full: boolean;
  /** Cluster names whose load assignments changed. */
  edsNames: ReadonlySet<string>;
  /** When the triggering change arrived (ms since epoch), for convergence metrics. */
  since: number;
  reason: string;
  /** The snapshot (MeshSnapshot.version) this push brings. */
  version?: number;
}

/**
 * Whether a service's load assignments are the same in both snapshots without computing
 * them: the same ports, the same endpoint lists (snapshots reuse unchanged ones) and the
 * same subsets.
 */
function sameLoadAssignmentInputs(prev: MeshSnapshot, next: MeshSnapshot, host: string): boolean {
  const a = prev.serviceByHost.get(host);
  const b = next.serviceByHost.get(host);
  if (!a || !b || a.ports.length !== b.ports.length) return false;
  for (let i = 0; i < a.ports.length; i++) {
    const p = a.ports[i]!;
    const q = b.ports[i]!;
    if (p.port !== q.port || p.protocol !== q.protocol || p.name !== q.name) return false;
    if (prev.endpoints.get(endpointKey(host, p.port)) !== next.endpoints.get(endpointKey(host, q.port))) return false;
  }
  const s = subsetsByHost(prev).get(host);
  const t = subsetsByHost(next).get(host);
  if (s === t) return true;
  return JSON.stringify(s ? [...s] : []) === JSON.stringify(t ? [...t] : []);
}

/**
 * Whether every load assignment is the same in both snapshots, on sight: the same services
 * and endpoints (a snapshot after an edit of Istio config keeps them) and the same
 * DestinationRules (their subsets select endpoints).
 */
function sameServicesEndpointsAndRules(prev: MeshSnapshot, next: MeshSnapshot): boolean {
  if (prev.services !== next.services || prev.endpoints !== next.endpoints) return false;
  const a = prev.config.destinationRules;
  const b = next.config.destinationRules;
  return a.length === b.length && a.every((dr, i) => dr === b[i]);
}

/** Whether outbound clusters (translate/clusters.ts `outboundClusters`) come out the same for both snapshots, on sight. */
function sameOutboundClusterInputs(prev: MeshSnapshot, next: MeshSnapshot): boolean {
  return prev.domain === next.domain && prev.meshConfig === next.meshConfig && sameServicesEndpointsAndRules(prev, next);
}

function sameEntries(a: ResourceMap, b: ResourceMap): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

export class ConfigGenerator {
  readonly cache = new ResourceCache();
  /** Virtual hosts and clusters of the last config versions, reused where their inputs did not change. */
  readonly memo = new TranslationMemo();
  /** Encoded responses that several streams send identically. */
  readonly responses = new SharedResponses();
  private snapshot_: MeshSnapshot | undefined;
  private configVersion = 0;
  /** Outbound clusters by client namespace (DestinationRule lookup depends on it), mTLS and Sidecar scope, while their inputs last. */
  private readonly sharedClusters = new Map<string, EnvoyResource[]>();
  /** All load assignments; replaced (never changed in place) on every update, so proxies can share it. */
  private eds: ReadonlyMap<string, CachedResource> = new Map();
  /** Load assignment names by service hostname. */
  private readonly edsByHost = new Map<string, Set<string>>();
  private readonly views = new Map<string, ProxyResources>();
  private readonly secretSets = new WeakMap<ResourceMap, Map<string, ResourceMap>>();
  /** The views of the previous config version: a new view reuses their sets where nothing changed. */
  private previousViews = new Map<string, ProxyResources>();
  /** Proxy contexts by everything they depend on, until the next full update or until no proxy uses them. */
  private readonly contexts = new Map<string, ProxyContext>();
  /** Each proxy's resolved form and context key, with the Pod they were worked out from. */
  private readonly contextKeys_ = new WeakMap<Proxy, { pod: unknown; p: Proxy; key: string }>();
  /** The context key of each context handed out by attach(). */
  private readonly contextKeys = new WeakMap<ProxyContext, string>();
  /** How many connected proxies use each context key and each class: what no proxy uses is released. */
  private readonly contextUsers = new Map<string, number>();
  private readonly classUsers = new Map<string, number>();
  /** Empty stand-ins for a class's gateway credentials, for proxies that may not read them. */
  private readonly withheldSets = new WeakMap<ResourceMap, ResourceMap>();

  get snapshot(): MeshSnapshot | undefined {
    return this.snapshot_;
  }

  /** Applies a new snapshot and says what a push must carry. */
  update(delta: SnapshotDelta, since = Date.now(), reason = 'config'): PushRequest {
    const s = delta.snapshot;
    const edsNames = new Set<string>();
    const eds = new Map(this.eds);
    // A full update may change subsets (DestinationRules) or pod labels: recompute all
    // load assignments; unchanged ones intern to the same entries and are not pushed.
    const prev = this.snapshot_;
    const hosts =
      prev === undefined || (delta.full && !sameServicesEndpointsAndRules(prev, s)) ? [...new Set([...s.services.map((x) => x.hostname), ...delta.changedEndpoints])] : [...delta.changedEndpoints];
    for (const host of hosts) {
      // A full update (a VirtualService edit...) leaves most services' endpoints as they were.
      if (prev && !delta.changedEndpoints.has(host) && sameLoadAssignmentInputs(prev, s, host)) continue;
      const svc = s.serviceByHost.get(host);
      const fresh = new Set<string>();
      if (svc) {
        for (const r of serviceLoadAssignments(s, svc)) {
          fresh.add(r.name);
          const entry = this.cache.intern(TypeUrl.ClusterLoadAssignment, r);
          if (eds.get(r.name) !== entry) {
            eds.set(r.name, entry);
            edsNames.add(r.name);
          }
        }
      }
      // Ports, subsets or services that went away.
      for (const name of this.edsByHost.get(host) ?? []) {
        if (!fresh.has(name)) {
          eds.delete(name);
          edsNames.add(name);
        }
      }
      if (fresh.size > 0) this.edsByHost.set(host, fresh);
      else this.edsByHost.delete(host);
    }
    if (edsNames.size > 0) this.eds = eds;
    this.snapshot_ = s;
    if (delta.full) {
      this.configVersion++;
      // Outbound clusters read services, endpoints, DestinationRules and the mesh config only:
      // an edit of anything else (a VirtualService...) keeps the lists already built.
      if (!prev || !sameOutboundClusterInputs(prev, s)) this.sharedClusters.clear();
      // Keep a class's last view for a few versions, until a proxy of that class asks again.
      for (const [k, v] of this.previousViews) if (v.configVersion < this.configVersion - 3) this.previousViews.delete(k);
      for (const [k, v] of this.views) this.previousViews.set(k, v);
      this.views.clear();
      this.contexts.clear();
      this.memo.advance();
    }
    return { full: delta.full, edsNames, since, reason, version: s.version };
  }

  /** The proxy as meshd believes it: labels, service account and IPs from its Pod when known. */
  identify(proxy: Proxy): IdentityResolution {
    return resolveIdentity(proxy, this.podOf(proxy));
  }

  /** The Pod a sidecar or gateway runs in, when the snapshot has it. */
  private podOf(proxy: Proxy): PodObject | undefined {
    return proxy.type === 'sidecar' || proxy.type === 'router' ? this.snapshot_?.pods.get(`${proxy.namespace}/${proxy.podName}`) : undefined;
  }

  context(proxy: Proxy): ProxyContext {
    if (!this.snapshot_) throw new Error('no snapshot yet');
    const { p, key } = this.contextKey(proxy);
    let ctx = this.contexts.get(key);
    if (!ctx) {
      ctx = proxyContext(this.snapshot_, p);
      this.contexts.set(key, ctx);
    }
    const out = ctx.proxy === p ? ctx : { ...ctx, proxy: p };
    this.contextKeys.set(out, key);
    return out;
  }

  /**
   * The proxy as meshd believes it and the key of its context, worked out again only when its
   * Pod changed (a stream's proxy does not change once connected; 1000 of them are looked up
   * on every full push).
   */
  private contextKey(proxy: Proxy): { pod: unknown; p: Proxy; key: string } {
    const pod = this.podOf(proxy);
    const known = this.contextKeys_.get(proxy);
    if (known && known.pod === pod) return known;
    const p = resolveIdentity(proxy, pod).proxy;
    // Contexts depend on the proxy's role, namespace, labels, IPs and metadata, and on services.
    const key = [p.type, p.namespace, p.generator, String(p.metadata.INTERCEPTION_MODE ?? ''), labelsKey(p.labels), p.instanceIps.join(','), p.certificates ? `${p.certificates.source}:${p.certificates.trustDomain}` : '', p.vhds ? 'vhds' : ''].join('|');
    const out = { pod, p, key };
    this.contextKeys_.set(proxy, out);
    return out;
  }

  /** The context of a proxy that connects (or is pushed a full update): counted until detach(). */
  attach(proxy: Proxy): ProxyContext {
    const ctx = this.context(proxy);
    const key = this.contextKeys.get(ctx)!;
    this.contextUsers.set(key, (this.contextUsers.get(key) ?? 0) + 1);
    this.classUsers.set(ctx.classKey, (this.classUsers.get(ctx.classKey) ?? 0) + 1);
    return ctx;
  }

  /**
   * A proxy stopped using `ctx` (its stream ended, or it moved to a new context): when no
   * other proxy uses that context or class, their translation and metadata are dropped now,
   * not at the next full update.
   */
  detach(ctx: ProxyContext): void {
    const key = this.contextKeys.get(ctx);
    if (key === undefined) return;
    this.contextKeys.delete(ctx);
    const users = (this.contextUsers.get(key) ?? 1) - 1;
    if (users > 0) this.contextUsers.set(key, users);
    else {
      this.contextUsers.delete(key);
      this.contexts.delete(key);
    }
    const classUsers = (this.classUsers.get(ctx.classKey) ?? 1) - 1;
    if (classUsers > 0) this.classUsers.set(ctx.classKey, classUsers);
    else {
      this.classUsers.delete(ctx.classKey);
      this.views.delete(ctx.classKey);
      this.previousViews.delete(ctx.classKey);
    }
  }

  /** Contexts and classes held for connected proxies (for tests and /debug). */
  held(): { contexts: number; classes: number; views: number } {
    return { contexts: this.contexts.size, classes: this.classUsers.size, views: this.views.size + this.previousViews.size };
  }

  /** The resources for a proxy of this context's class, translated once per class and config version. */
  resourcesFor(ctx: ProxyContext): ProxyResources {
    const s = this.snapshot_;
    if (!s) throw new Error('no snapshot yet');
    let view = this.views.get(ctx.classKey);
    if (!view || view.configVersion !== this.configVersion) {
      const clusterKey = `${ctx.proxy.namespace}|${ctx.mtls ? `${ctx.mtls.source}:${ctx.mtls.trustDomain}` : ''}|${ctx.scope?.key ?? ''}`;
      let clusters = this.sharedClusters.get(clusterKey);
      if (!clusters) this.sharedClusters.set(clusterKey, (clusters = outboundClusters(s, ctx.proxy.namespace, { mtls: ctx.mtls, scope: ctx.scope, memo: this.memo })));
      const translated = translateContext(s, ctx, { clusters, endpoints: [], memo: this.memo });
      const previous = this.previousViews.get(ctx.classKey);
      this.previousViews.delete(ctx.classKey);
      const intern = (t: TypeUrl): ResourceMap => {
        const fresh = new Map(translated[t].map((r) => [r.name, this.cache.intern(t, r)]));
        // An unchanged set stays the same object, so proxies holding it have nothing to compare.
        const old = previous?.byType[t];
        return old && sameEntries(old, fresh) ? old : fresh;
      };
      view = {
        classKey: ctx.classKey,
        configVersion: this.configVersion,
        byType: {
          [TypeUrl.Cluster]: intern(TypeUrl.Cluster),
          [TypeUrl.ClusterLoadAssignment]: new Map(),
          [TypeUrl.Listener]: intern(TypeUrl.Listener),
          [TypeUrl.RouteConfiguration]: intern(TypeUrl.RouteConfiguration),
          [TypeUrl.VirtualHost]: intern(TypeUrl.VirtualHost),
          [TypeUrl.Secret]: intern(TypeUrl.Secret),
        },
      };
      this.views.set(ctx.classKey, view);
    }
    // Endpoints are shared by every class and move on without a new translation; the view
    // with them is made once per endpoint set and snapshot, not once per proxy.
    let served = this.servedViews.get(view);
    if (!served || served.snapshotVersion !== s.version || served.byType[TypeUrl.ClusterLoadAssignment] !== this.eds) {
      served = { ...view, snapshotVersion: s.version, byType: { ...view.byType, [TypeUrl.ClusterLoadAssignment]: this.eds } };
      this.servedViews.set(view, served);
    }
    return served;
  }

  /** Each class view with the current endpoints, as resourcesFor hands it out. */
  private readonly servedViews = new WeakMap<ProxyResources, ProxyResources>();

  /**
   * A class's secrets plus a workload's own (`default`, `ROOTCA`), as one set shared by the
   * proxies of that identity until either side changes. Without `credentialsAllowed`, the
   * class's secrets (a gateway's `credentialName` keys) are replaced by empty ones.
   */
  secretsFor(classSecrets: ResourceMap, own: readonly CachedResource[], credentialsAllowed: boolean): ResourceMap {
    if (!credentialsAllowed && classSecrets.size > 0) classSecrets = this.withheld(classSecrets);
    if (own.length === 0) return classSecrets;
    let byOwn = this.secretSets.get(classSecrets);
    if (!byOwn) this.secretSets.set(classSecrets, (byOwn = new Map()));
    const key = own.map((e) => `${e.name}\0${e.version}`).join('\n');
    let set = byOwn.get(key);
    if (!set) {
      const merged = new Map(classSecrets);
      for (const e of own) merged.set(e.name, e);
      byOwn.set(key, (set = merged));
    }
    return set;
  }

  /**
   * Everything a proxy is sent (its own SDS certificates aside), by type, sorted by name:
   * the production path, as golden tests and the property test check it.
   */
  resourcesForProxy(proxy: Proxy): Record<TypeUrl, CachedResource[]> {
    const view = this.resourcesFor(this.context(proxy));
    const out = {} as Record<TypeUrl, CachedResource[]>;
    for (const t of PUSH_ORDER) out[t] = [...view.byType[t].values()].sort(byName);
    return out;
  }

  /** An empty resource for a route or endpoint name a proxy asked for that does not exist (an answer, not silence). */
  placeholder(type: TypeUrl, name: string): CachedResource | undefined {
    if (type === TypeUrl.RouteConfiguration) return this.cache.intern(type, { name, body: { name } });
    if (type === TypeUrl.ClusterLoadAssignment) return this.cache.intern(type, emptyLoadAssignment(name));
    return undefined;
  }

  /** An encoded response shared by every stream that sends the same one. */
  sharedResponse(key: string, encode: (nonce: string) => Buffer): SharedResponse {
    return this.responses.get(key, encode);
  }

  private withheld(classSecrets: ResourceMap): ResourceMap {
    let set = this.withheldSets.get(classSecrets);
    if (!set) {
      set = new Map([...classSecrets.keys()].map((name) => [name, this.cache.intern(TypeUrl.Secret, { name, body: { name } })]));
      this.withheldSets.set(classSecrets, set);
    }
    return set;
  }

  /** Drops encoded resources that no current view uses. */
  sweep(): number {
    const live = new Set<CachedResource>(this.eds.values());
    for (const v of [...this.views.values(), ...this.previousViews.values()]) for (const m of Object.values(v.byType)) for (const e of m.values()) live.add(e);
    return this.cache.sweep(live);
  }
}
