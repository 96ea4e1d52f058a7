// One ADS stream from one proxy: handles its requests (ACK, NACK, subscriptions) and
// sends it what changed, in make-before-break order, in either protocol variant. What the
// proxy subscribed to and holds is its Subscription's; what was sent and acknowledged, its
// Delivery's; this class decides what a push sends.
import type { Proxy } from '../model/proxy.js';
import type { ProxyContext } from '../translate/proxy-context.js';
import { byName, PUSH_ORDER, SHORT_TYPE, TypeUrl } from '../translate/types.js';
import type { CachedResource } from './resource-cache.js';
import type { PushRequest, ProxyResources, ResourceMap } from './generator.js';
import { SetFingerprint } from './sent-state.js';
import { Subscription, sotwSendsWholeSet } from './subscription.js';
import { Delivery, type Nack } from './delivery.js';
import { encodeDeltaDiscoveryResponse, encodeDiscoveryResponse, type DecodedStatus } from './wire.js';
import { newNonce, type SharedResponse } from './shared-responses.js';
import type { StreamSink } from './stream-sink.js';
import { clientText } from '../util/client-text.js';
import { routeOfVirtualHost } from '../translate/virtual-hosts.js';

export type Protocol = 'sotw' | 'delta';
export type { StreamSink };
export { MAX_NACK_MESSAGE } from './delivery.js';

export interface ConnectionHooks {
  onSent(conn: Connection, type: TypeUrl, bytes: number, resources: number): void;
  onAck(conn: Connection, type: TypeUrl, convergenceMs: number | undefined): void;
  /** Called once per rejected nonce; `message` is already bounded. */
  onNack(conn: Connection, type: TypeUrl, message: string): void;
  onStaleNonce(conn: Connection, type: TypeUrl): void;
  /** A credential the proxy asked for was withheld (sent empty): once per connection and name. */
  onSecretRefused(conn: Connection, name: string, reason: SecretRefusal): void;
  /** A push to this proxy finished (whether or not it sent anything). */
  onFlushed?(conn: Connection): void;
}

/** Why a gateway credential was sent empty. */
export type SecretRefusal = 'no-verified-identity' | 'identity-of-other-namespace';

/** What a connection needs of the config generator. */
export interface ProxyConfigSource {
  /** The proxy's context (class), counted until detach(). */
  attach(proxy: Proxy): ProxyContext;
  detach(ctx: ProxyContext): void;
  /** The resources for the proxy's class, by type. */
  resourcesFor(ctx: ProxyContext): ProxyResources;
  /** The class's secrets plus the proxy's own; gateway credentials emptied unless allowed. */
  secretsFor(classSecrets: ResourceMap, own: readonly CachedResource[], credentialsAllowed: boolean): ResourceMap;
  /** An empty resource for a name the proxy asked for that does not exist (RDS, EDS), or undefined. */
  placeholder(type: TypeUrl, name: string): CachedResource | undefined;
  /** An encoded response shared by every stream that sends the same one. */
  sharedResponse(key: string, encode: (nonce: string) => Buffer): SharedResponse;
}

/** One type on one stream: the proxy's subscription and meshd's deliveries. */
export class TypeWatch {
  readonly subscription: Subscription;
  readonly delivery = new Delivery();

  constructor(readonly typeUrl: TypeUrl) {
    this.subscription = new Subscription(typeUrl);
  }

  get nack(): Nack | undefined {
    return this.delivery.nack;
  }

  get lastNonce(): string {
    return this.delivery.lastNonce;
  }

  status(): 'SYNCED' | 'STALE' | 'NOT SENT' {
    return this.delivery.status();
  }
}

interface PendingPush {
  full: boolean;
  types: Set<TypeUrl>;
  edsNames: Set<string>;
  since: number;
}

/** How one type is pushed. */
interface PushOptions {
  /** When the change arrived (ms since epoch), for convergence. */
  since: number;
  /** Only these names may have changed (an endpoints-only push); otherwise all are compared. */
  only?: ReadonlySet<string>;
  /** Removals wait (clusters: until listeners and routes no longer use them). */
  deferRemovals?: boolean;
  /** Names sent again even if the proxy has this version (endpoints of a cluster that changed). */
  resend?: ReadonlySet<string>;
}

interface PushOutcome {
  /** Removals were held back. */
  held: boolean;
  /** Names the proxy held that were sent again with new content. */
  updated: Set<string>;
}

let connectionCounter = 0;

/** How many distinct unknown types one stream may ask for before meshd stops answering them. */
const MAX_UNKNOWN_TYPES = 16;

/** How many own differences a proxy's state collects before it tries to share its class's set again. */
const REBASE_AFTER = 32;

function mergePending(a: PendingPush, b: PendingPush | undefined): PendingPush {
  if (!b) return a;
  return { full: a.full || b.full, types: new Set([...a.types, ...b.types]), edsNames: new Set([...a.edsNames, ...b.edsNames]), since: Math.min(a.since, b.since) };
}

/** The framed bytes of a whole (immutable) resource set and its fingerprint, built once per set. */
const wildcardBlocks = new WeakMap<ResourceMap, { version: string; block: Buffer }>();
function wildcardBlock(all: ResourceMap): { version: string; block: Buffer } {
  let b = wildcardBlocks.get(all);
  if (!b) {
    const fp = new SetFingerprint();
    const sorted = [...all.values()].sort(byName);
    for (const e of sorted) fp.toggle(e);
    b = { version: fp.toString(), block: Buffer.concat(sorted.map((e) => e.sotwFramed())) };
    wildcardBlocks.set(all, b);
  }
  return b;
}

interface SetDiff {
  /** Sorted by name. */
  upserts: CachedResource[];
  removals: string[];
  /** Names in both sets with different content. */
  updated: Set<string>;
}

/** What changes from one whole (immutable) set to the next, computed once for all the proxies that held the first. */
const setDiffs = new WeakMap<ResourceMap, WeakMap<ResourceMap, SetDiff>>();
function setDiff(from: ResourceMap, to: ResourceMap): SetDiff {
  let byTarget = setDiffs.get(from);
  if (!byTarget) setDiffs.set(from, (byTarget = new WeakMap()));
  let d = byTarget.get(to);
  if (!d) {
    d = { upserts: [], removals: [], updated: new Set() };
    for (const [name, entry] of to) {
      const old = from.get(name);
      if (old === entry) continue;
      d.upserts.push(entry);
      if (old) d.updated.add(name);
    }
    for (const name of from.keys()) if (!to.has(name)) d.removals.push(name);
    d.upserts.sort(byName);
    byTarget.set(to, d);
  }
  return d;
}

/** A class's VirtualHost set by route configuration, computed once per (immutable) set. */
const virtualHostsByRoute = new WeakMap<ResourceMap, Map<string, string[]>>();
function byRoute(all: ResourceMap): Map<string, string[]> {
  let m = virtualHostsByRoute.get(all);
  if (!m) {
    m = new Map();
    for (const name of all.keys()) {
      const route = routeOfVirtualHost(name);
      let list = m.get(route);
      if (!list) m.set(route, (list = []));
      list.push(name);
    }
    virtualHostsByRoute.set(all, m);
  }
  return m;
}

/**
 * A class's VirtualHost set without the virtual hosts of `routes`, one map per (set, routes)
 * so the proxies waiting for the same route configurations share it, and the diffs from it.
 */
const withoutRoutesMemo = new WeakMap<ResourceMap, Map<string, ResourceMap>>();
function withoutRoutes(all: ResourceMap, routes: readonly string[]): ResourceMap {
  let memo = withoutRoutesMemo.get(all);
  if (!memo) withoutRoutesMemo.set(all, (memo = new Map()));
  const key = routes.join('\n');
  let out = memo.get(key);
  if (!out) {
    const m = new Map(all);
    const names = byRoute(all);
    for (const r of routes) for (const n of names.get(r) ?? []) m.delete(n);
    memo.set(key, (out = m));
  }
  return out;
}

/** The key under which identical responses are shared between streams. */
function responseKey(protocol: Protocol, type: TypeUrl, version: string, upserts: readonly CachedResource[], removals: readonly string[]): string {
  let key = `${protocol}\n${type}\n${version}\n`;
  for (const e of upserts) key += `${e.name}\0${e.version}\n`;
  key += '\n';
  for (const n of removals) key += `${n}\n`;
  return key;
}

export class Connection {
  readonly id: string;
  readonly watches = new Map<TypeUrl, TypeWatch>();
  readonly connectedAt = Date.now();
  ctx: ProxyContext;
  private pending: PendingPush | undefined;
  /** This proxy's own secrets (SDS `default` and `ROOTCA`), when its stream proved an identity. */
  ownSecrets: readonly CachedResource[] = [];
  closed = false;
  /** Its writes stopped draining: no pushes until they do (or it is closed). */
  stalled = false;
  /** Gateway credentials already reported as withheld. */
  private readonly refusedSecrets = new Set<string>();
  /** Types asked for that meshd does not serve (at most MAX_UNKNOWN_TYPES remembered). */
  private readonly unknownTypes = new Set<string>();
  /** The newest snapshot version this proxy was pushed or had its resources read from. */
  private knownVersion = 0;
  /** While it is not settled: the snapshot version up to which all it was sent is acknowledged. */
  private syncedThrough = 0;
  private flushing = false;

  constructor(
    readonly proxy: Proxy,
    readonly protocol: Protocol,
    private readonly config: ProxyConfigSource,
    private readonly sink: StreamSink,
    private readonly hooks: ConnectionHooks,
    private readonly controlPlaneId: string,
  ) {
    this.id = `${clientText(proxy.id, 256)}-${++connectionCounter}`;
    this.ctx = config.attach(proxy);
  }

  /** Closed or stalled: the push queue skips it. */
  get detached(): boolean {
    return this.closed || this.stalled;
  }

  /** The stream ended: what this proxy held in the generator is released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = undefined;
    this.config.detach(this.ctx);
  }

  /**
   * Whether this proxy may read its gateway's credentials (`credentialName` Secrets): only
   * with an identity its stream proved (a service-account token), of the namespace whose
   * Secrets those are (the gateway proxy's own).
   */
  private credentialAccess(): SecretRefusal | undefined {
    const id = this.proxy.workloadIdentity;
    if (!id) return 'no-verified-identity';
    if (id.namespace !== this.ctx.proxy.namespace) return 'identity-of-other-namespace';
    return undefined;
  }

  private watch(type: TypeUrl): TypeWatch {
    let w = this.watches.get(type);
    if (!w) this.watches.set(type, (w = new TypeWatch(type)));
    return w;
  }

  /** True when there is something to send. */
  get hasPending(): boolean {
    return this.pending !== undefined;
  }

  private pendingPush(since: number, settledThrough = this.knownVersion): PendingPush {
    if (!this.pending && this.settled) this.syncedThrough = Math.max(this.syncedThrough, settledThrough);
    return (this.pending ??= { full: false, types: new Set(), edsNames: new Set(), since });
  }

  // ---- distribution: how far this proxy has acknowledged meshd's snapshots ----

  /** Nothing pending or being sent, and every response sent acknowledged (none rejected). */
  get settled(): boolean {
    if (this.pending || this.flushing) return false;
    for (const w of this.watches.values()) {
      const d = w.delivery;
      // A type the proxy subscribes to nothing of holds nothing to be out of date: Envoy does
      // not acknowledge a response for a type it no longer watches (SotW EDS after its last cluster went).
      if (w.subscription.empty) continue;
      if (d.sentResponses > 0 && d.ackedNonce !== d.lastNonce) return false;
    }
    return true;
  }

  /**
   * The snapshot version up to which everything meshd computed for this proxy is
   * acknowledged, `current` being the newest snapshot: a settled proxy is in sync with it
   * (a snapshot that changes nothing for a proxy pushes nothing to it).
   */
  syncedVersion(current: number): number {
    return this.settled ? current : this.syncedThrough;
  }

  /** It acknowledged at least one response (a proxy still connecting has not). */
  get acknowledgedAny(): boolean {
    for (const w of this.watches.values()) if (w.delivery.ackedNonce) return true;
    return false;
  }

  /** The proxy's rejection (NACK) of the last response of a type, as `TYPE: message`; undefined when none stands. */
  rejection(): string | undefined {
    for (const type of PUSH_ORDER) {
      const d = this.watches.get(type)?.delivery;
      if (d?.nack && d.nack.nonce === d.lastNonce) return `${SHORT_TYPE[type]}: ${d.nack.message}`;
    }
    return undefined;
  }

  /** Marks what a push must bring to this proxy; the push queue calls flush(). */
  schedule(req: PushRequest): void {
    // Settled until this snapshot: in sync with the one before it.
    const p = this.pendingPush(req.since, req.version !== undefined ? req.version - 1 : this.knownVersion);
    if (req.version !== undefined) this.knownVersion = Math.max(this.knownVersion, req.version);
    p.since = Math.min(p.since, req.since);
    if (req.full) {
      p.full = true;
      for (const t of PUSH_ORDER) p.types.add(t);
    }
    // Endpoints are shared by every proxy: even a full push changes only these.
    if (req.edsNames.size) {
      p.types.add(TypeUrl.ClusterLoadAssignment);
      for (const n of req.edsNames) p.edsNames.add(n);
    }
  }

  /** Marks one type for a push (e.g. a renewed certificate), without forcing a response when nothing changed. */
  scheduleType(type: TypeUrl): void {
    this.pendingPush(Date.now()).types.add(type);
  }

  // ---- requests -------------------------------------------------------------

  /**
   * What a request's nonce says about the last response of its type: counted and reported
   * here. Returns false for a stale nonce or a NACK (nothing more to do with the request).
   */
  private reply(w: TypeWatch, nonce: string, version: string, error: DecodedStatus | undefined): boolean {
    const r = w.delivery.reply(nonce, version, error);
    if (r.kind === 'stale') this.hooks.onStaleNonce(this, w.typeUrl);
    else if (r.kind === 'nack') this.hooks.onNack(this, w.typeUrl, r.nack.message);
    else if (r.kind === 'ack') this.hooks.onAck(this, w.typeUrl, r.convergenceMs);
    return r.kind === 'ack';
  }

  /** A state-of-the-world DiscoveryRequest. Returns true when a response is owed. */
  onSotwRequest(type: TypeUrl, names: string[], nonce: string, versionInfo: string, error: DecodedStatus | undefined): boolean {
    const w = this.watch(type);
    // The first request of a type on a stream is answered whatever nonce it carries: a
    // proxy that reconnects (to this meshd or another) still holds its last nonce.
    if (w.subscription.requested && nonce && !this.reply(w, nonce, versionInfo, error)) return false;
    const owed = w.subscription.applySotw(names);
    if (owed) this.pendingPush(Date.now()).types.add(type);
    return owed;
  }

  /** A DeltaDiscoveryRequest. Returns true when a response is owed. */
  onDeltaRequest(
    type: TypeUrl,
    subscribe: string[],
    unsubscribe: string[],
    initialVersions: Record<string, string>,
    nonce: string,
    error: DecodedStatus | undefined,
  ): boolean {
    const w = this.watch(type);
    if (w.subscription.requested && nonce) this.reply(w, nonce, w.delivery.lastVersion, error);
    if (type === TypeUrl.RouteConfiguration) this.forgetVirtualHostsOf(unsubscribe);
    const owed = w.subscription.applyDelta({ subscribe, unsubscribe, initialVersions });
    if (owed) this.pendingPush(Date.now()).types.add(type);
    return owed;
  }

  /**
   * A request for a type meshd does not serve (Istio's agent asks for its DNS name table,
   * for one): the stream goes on. The first request of each such type is answered with an
   * empty response (no resources), so the proxy does not wait for one; later ones (its ACKs)
   * are ignored. Returns true the first time, for the caller to log.
   */
  onUnknownType(typeUrl: string): boolean {
    if (this.unknownTypes.has(typeUrl) || this.unknownTypes.size >= MAX_UNKNOWN_TYPES) return false;
    this.unknownTypes.add(typeUrl);
    const nonce = newNonce();
    const bytes =
      this.protocol === 'delta'
        ? encodeDeltaDiscoveryResponse({ systemVersionInfo: '', typeUrl, nonce, framedResources: [], removed: [], controlPlane: this.controlPlaneId })
        : encodeDiscoveryResponse({ versionInfo: '', typeUrl, nonce, framedResources: [], controlPlane: this.controlPlaneId });
    this.sink.write(bytes).catch(() => undefined);
    return true;
  }

  // ---- pushes ---------------------------------------------------------------

  /** Sends everything pending, in make-before-break order. */
  async flush(): Promise<void> {
    let flushed = false;
    while (this.pending && !this.detached) {
      const p = this.pending;
      this.pending = undefined;
      this.flushing = true;
      try {
        await this.flushOne(p);
        flushed = true;
      } catch (err) {
        // Nothing of a failed push is lost: it is pending again, merged with what came since.
        if (!this.closed) this.pending = mergePending(p, this.pending);
        throw err;
      } finally {
        this.flushing = false;
      }
    }
    if (flushed) this.hooks.onFlushed?.(this);
  }

  private async flushOne(p: PendingPush): Promise<void> {
    if (p.full) {
      const next = this.config.attach(this.proxy);
      this.config.detach(this.ctx);
      this.ctx = next;
    }
    const view = this.config.resourcesFor(this.ctx);
    if (view.snapshotVersion !== undefined) this.knownVersion = Math.max(this.knownVersion, view.snapshotVersion);
    const refusal = this.credentialAccess();
    const secrets = this.config.secretsFor(view.byType[TypeUrl.Secret], this.ownSecrets, refusal === undefined);
    if (refusal) this.reportWithheld(view.byType[TypeUrl.Secret], refusal);
    const resources = secrets === view.byType[TypeUrl.Secret] ? view.byType : { ...view.byType, [TypeUrl.Secret]: secrets };
    let deferredClusterRemoval = false;
    // A cluster that changed is warmed again by Envoy and waits for its endpoints: resend them.
    let updatedClusters: Set<string> | undefined;
    for (const type of PUSH_ORDER) {
      const w = this.watches.get(type);
      const eds = type === TypeUrl.ClusterLoadAssignment;
      // Route configurations sent may let virtual hosts through (virtualHostsOfSentRoutes).
      const vhds = type === TypeUrl.VirtualHost && p.types.has(TypeUrl.RouteConfiguration);
      if (!w || !w.subscription.requested || !(p.types.has(type) || (eds && updatedClusters?.size) || vhds)) continue;
      const all = type === TypeUrl.VirtualHost ? this.virtualHostsOfSentRoutes(resources[type]) : resources[type];
      const r = await this.pushType(w, all, {
        since: p.since,
        only: eds && !w.subscription.isOwed ? p.edsNames : undefined,
        deferRemovals: type === TypeUrl.Cluster,
        resend: eds ? updatedClusters : undefined,
      });
      if (type === TypeUrl.Cluster) {
        deferredClusterRemoval = r.held;
        updatedClusters = r.updated;
      }
    }
    if (deferredClusterRemoval && !this.closed) {
      // Break after make: clusters go away only after the listeners and routes that used them.
      await this.pushType(this.watch(TypeUrl.Cluster), resources[TypeUrl.Cluster], { since: p.since });
    }
  }

  /**
   * The VHDS virtual hosts this proxy may be sent: those of the route configurations it was
   * sent. Envoy drops a virtual host that arrives before its route configuration (no VHDS
   * watch for it yet) and never asks again (a VHDS watch over ADS names nothing), so a virtual
   * host waits for its route configuration, which the same push sends first.
   */
  private virtualHostsOfSentRoutes(all: ResourceMap): ResourceMap {
    const rds = this.watches.get(TypeUrl.RouteConfiguration)?.subscription;
    const missing: string[] = [];
    for (const route of byRoute(all).keys()) if (rds?.heldVersion(route) === undefined) missing.push(route);
    return missing.length === 0 ? all : withoutRoutes(all, missing);
  }

  /**
   * Route configurations the proxy no longer watches take their VHDS watches with them: what
   * it held of their virtual hosts is forgotten (not removed: it has nothing to remove), so a
   * new watch of the same name gets them all again.
   */
  private forgetVirtualHostsOf(routes: readonly string[]): void {
    const sub = this.watches.get(TypeUrl.VirtualHost)?.subscription;
    if (!sub || routes.length === 0) return;
    const gone = new Set(routes);
    for (const name of [...sub.heldNames()]) if (gone.has(routeOfVirtualHost(name))) sub.record(name, undefined);
  }

  private reportWithheld(classSecrets: ResourceMap, reason: SecretRefusal): void {
    const w = this.watches.get(TypeUrl.Secret);
    if (!w || classSecrets.size === 0) return;
    for (const name of classSecrets.keys()) {
      if (!w.subscription.subscribed(name) || this.refusedSecrets.has(name)) continue;
      this.refusedSecrets.add(name);
      this.hooks.onSecretRefused(this, name, reason);
    }
  }

  /** What the proxy should hold as `name`: the resource, an empty one for an unknown name it asked for, or nothing. */
  private desired(sub: Subscription, all: ResourceMap, name: string): CachedResource | undefined {
    if (!sub.subscribed(name)) return undefined;
    return all.get(name) ?? (sub.named(name) ? this.config.placeholder(sub.typeUrl, name) : undefined);
  }

  /** Pushes one type: what differs between what the proxy holds and `all`. */
  private async pushType(w: TypeWatch, all: ResourceMap, o: PushOptions): Promise<PushOutcome> {
    const sub = w.subscription;
    const owed = sub.takeOwed();
    const updated = new Set<string>();
    if (!owed && !o.only && !o.resend?.size) {
      // Already holding exactly this set (shared with its class): nothing to compare.
      if (sub.holdsExactly(all)) return { held: false, updated };
      // Holding exactly the class's previous set: the class's diff, computed once, applies.
      const base = sub.wildcard ? sub.heldSet() : undefined;
      if (base) return this.pushSetDiff(w, all, setDiff(base, all), o);
    }
    // Which names to look at: the changed ones, or everything we know or were asked about.
    const candidates = o.only ? new Set(o.only) : sub.candidates(all);
    for (const n of o.resend ?? []) candidates.add(n);
    const upserts: CachedResource[] = [];
    const removals: string[] = [];
    for (const name of candidates) {
      const want = this.desired(sub, all, name);
      const have = sub.heldVersion(name);
      if (want) {
        if (want.version !== have || o.resend?.has(name)) {
          upserts.push(want);
          if (have !== undefined) updated.add(name);
        }
      } else if (have !== undefined) removals.push(name);
    }
    const held = o.deferRemovals === true && removals.length > 0;
    if (upserts.length === 0 && removals.length === 0 && !owed) return { held: false, updated };
    if (upserts.length === 0 && held && !owed) return { held: true, updated };
    upserts.sort(byName);
    await this.send(w, all, upserts, held ? [] : removals, o.since);
    // Share the class's set as this proxy's state when it holds exactly that set.
    sub.share(all, !o.only, REBASE_AFTER);
    return { held, updated };
  }

  private async pushSetDiff(w: TypeWatch, all: ResourceMap, d: SetDiff, o: PushOptions): Promise<PushOutcome> {
    const held = o.deferRemovals === true && d.removals.length > 0;
    if (d.upserts.length === 0 && (held || d.removals.length === 0)) {
      if (d.removals.length === 0) w.subscription.holdNow(all);
      return { held, updated: new Set() };
    }
    await this.send(w, all, d.upserts, held ? [] : d.removals, o.since);
    if (!held) w.subscription.holdNow(all);
    return { held, updated: d.updated };
  }

  private send(w: TypeWatch, all: ResourceMap, upserts: CachedResource[], removals: string[], since: number): Promise<void> {
    for (const e of upserts) w.subscription.record(e.name, e);
    for (const n of removals) w.subscription.record(n, undefined);
    return this.protocol === 'delta' ? this.sendDelta(w, upserts, removals, since) : this.sendSotw(w, all, upserts, since);
  }

  private async sendSotw(w: TypeWatch, all: ResourceMap, upserts: CachedResource[], since: number): Promise<void> {
    const sub = w.subscription;
    const version = sub.version;
    if (w.delivery.rejected(version) && upserts.length > 0) return; // the proxy rejected exactly this; do not loop
    let framed: Buffer[];
    let count: number;
    let key: string | undefined;
    if (sotwSendsWholeSet(w.typeUrl)) {
      // Listeners and clusters: every response carries the whole set. Proxies of one
      // class usually hold exactly their class's set, whose bytes are built once.
      const shared = wildcardBlock(all);
      if (sub.heldCount === all.size && shared.version === version) {
        framed = [shared.block];
        count = all.size;
        key = `sotw\n${w.typeUrl}\n${version}\n*`;
      } else {
        const body: CachedResource[] = [];
        for (const [name, entry] of sub.heldEntries()) {
          const e = typeof entry !== 'string' ? entry : all.get(name);
          if (e) body.push(e);
        }
        body.sort(byName);
        framed = body.map((e) => e.sotwFramed());
        count = body.length;
      }
    } else {
      framed = upserts.map((e) => e.sotwFramed());
      count = upserts.length;
      key = responseKey('sotw', w.typeUrl, version, upserts, []);
    }
    const encode = (nonce: string): Buffer => encodeDiscoveryResponse({ versionInfo: version, typeUrl: w.typeUrl, nonce, framedResources: framed, controlPlane: this.controlPlaneId });
    const { nonce, bytes } = key === undefined ? unshared(encode) : this.config.sharedResponse(key, encode);
    await this.write(w, nonce, version, since, bytes, count);
  }

  private async sendDelta(w: TypeWatch, upserts: CachedResource[], removals: string[], since: number): Promise<void> {
    const version = w.subscription.version;
    const encode = (nonce: string): Buffer =>
      encodeDeltaDiscoveryResponse({
        systemVersionInfo: version,
        typeUrl: w.typeUrl,
        nonce,
        framedResources: upserts.map((e) => e.deltaFramed()),
        removed: removals,
        controlPlane: this.controlPlaneId,
      });
    const { nonce, bytes } = this.config.sharedResponse(responseKey('delta', w.typeUrl, version, upserts, removals), encode);
    await this.write(w, nonce, version, since, bytes, upserts.length);
  }

  private async write(w: TypeWatch, nonce: string, version: string, since: number, bytes: Buffer, count: number): Promise<void> {
    w.delivery.sent(nonce, version, since);
    this.hooks.onSent(this, w.typeUrl, bytes.length, count);
    await this.sink.write(bytes);
  }

  /** For debug output: per type, what was sent and acknowledged. */
  syncStatus(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const type of PUSH_ORDER) {
      const w = this.watches.get(type);
      if (!w) continue;
      const d = w.delivery;
      out[SHORT_TYPE[type]] = {
        status: d.status(),
        sent: d.lastVersion || undefined,
        sentNonce: d.lastNonce || undefined,
        acked: d.ackedVersion || undefined,
        ackedNonce: d.ackedNonce || undefined,
        resources: w.subscription.heldCount,
        wildcard: w.subscription.wildcard,
        ...(d.nack ? { lastNack: { error: d.nack.message, version: d.nack.version, nonce: d.nack.nonce, at: new Date(d.nack.at).toISOString() } } : {}),
      };
    }
    return out;
  }
}

function unshared(encode: (nonce: string) => Buffer): { nonce: string; bytes: Buffer } {
  const nonce = newNonce();
  return { nonce, bytes: encode(nonce) };
}
