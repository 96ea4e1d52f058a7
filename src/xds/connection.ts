// One ADS stream from one proxy: handles its requests (ACK, NACK, subscriptions) and
// sends it what changed, in make-before-break order, in either protocol variant.
import type { Proxy } from '../model/proxy.js';
import type { ProxyContext } from '../translate/proxy-context.js';
import { PUSH_ORDER, SHORT_TYPE, TypeUrl } from '../translate/types.js';
import { emptyLoadAssignment } from '../translate/endpoints.js';
import type { CachedResource } from './resource-cache.js';
import type { ConfigGenerator, PushRequest, ResourceMap } from './generator.js';
import { SetFingerprint, TypeWatch } from './watch.js';
import { encodeDeltaDiscoveryResponse, encodeDiscoveryResponse, type DecodedStatus } from './wire.js';
import { newNonce } from './shared-responses.js';
import type { StreamSink } from './stream-sink.js';
import { clientText } from '../util/client-text.js';

export type Protocol = 'sotw' | 'delta';

/** Types where an empty subscription means "everything" (wildcard). */
const WILDCARD_TYPES = new Set<string>([TypeUrl.Listener, TypeUrl.Cluster]);

export type { StreamSink };

export interface ConnectionHooks {
  onSent(conn: Connection, type: TypeUrl, bytes: number, resources: number): void;
  onAck(conn: Connection, type: TypeUrl, convergenceMs: number | undefined): void;
  /** Called once per rejected nonce; `message` is already bounded. */
  onNack(conn: Connection, type: TypeUrl, message: string): void;
  onStaleNonce(conn: Connection, type: TypeUrl): void;
  /** A credential the proxy asked for was withheld (sent empty): once per connection and name. */
  onSecretRefused(conn: Connection, name: string, reason: SecretRefusal): void;
}

/** Why a gateway credential was sent empty. */
export type SecretRefusal = 'no-verified-identity' | 'identity-of-other-namespace';

/** Longest NACK message meshd keeps (and logs) of what a proxy sent. */
export const MAX_NACK_MESSAGE = 1024;

interface PendingPush {
  full: boolean;
  types: Set<TypeUrl>;
  edsNames: Set<string>;
  since: number;
}

let connectionCounter = 0;

/** How many own differences a proxy's state collects before it tries to share its class's set again. */
const REBASE_AFTER = 32;

function mergePending(a: PendingPush, b: PendingPush | undefined): PendingPush {
  if (!b) return a;
  return { full: a.full || b.full, types: new Set([...a.types, ...b.types]), edsNames: new Set([...a.edsNames, ...b.edsNames]), since: Math.min(a.since, b.since) };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function byResourceName(a: CachedResource, b: CachedResource): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The framed bytes of a whole (immutable) resource set and its fingerprint, built once per set. */
const wildcardBlocks = new WeakMap<ResourceMap, { version: string; block: Buffer }>();
function wildcardBlock(all: ResourceMap): { version: string; block: Buffer } {
  let b = wildcardBlocks.get(all);
  if (!b) {
    const fp = new SetFingerprint();
    const sorted = [...all.values()].sort(byResourceName);
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
    d.upserts.sort(byResourceName);
    byTarget.set(to, d);
  }
  return d;
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

  constructor(
    readonly proxy: Proxy,
    readonly protocol: Protocol,
    private readonly generator: ConfigGenerator,
    private readonly sink: StreamSink,
    private readonly hooks: ConnectionHooks,
    private readonly controlPlaneId: string,
  ) {
    this.id = `${clientText(proxy.id, 256)}-${++connectionCounter}`;
    this.ctx = generator.attach(proxy);
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
    this.generator.detach(this.ctx);
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

  /** Marks what a push must bring to this proxy; the push queue calls flush(). */
  schedule(req: PushRequest): void {
    const p = (this.pending ??= { full: false, types: new Set(), edsNames: new Set(), since: req.since });
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
    const p = (this.pending ??= { full: false, types: new Set(), edsNames: new Set(), since: Date.now() });
    p.types.add(type);
  }

  private requestType(type: TypeUrl): void {
    const p = (this.pending ??= { full: false, types: new Set(), edsNames: new Set(), since: Date.now() });
    p.types.add(type);
    this.watch(type).force = true;
  }

  // ---- requests -------------------------------------------------------------

  /** A state-of-the-world DiscoveryRequest. Returns true when a response is owed. */
  onSotwRequest(type: TypeUrl, names: string[], nonce: string, versionInfo: string, error: DecodedStatus | undefined): boolean {
    const w = this.watch(type);
    // The first request of a type on a stream is answered whatever nonce it carries: a
    // proxy that reconnects (to this meshd or another) still holds its last nonce.
    if (w.requested) {
      if (nonce && nonce !== w.lastNonce) {
        this.hooks.onStaleNonce(this, type);
        return false;
      }
      if (nonce && error && (error.message || error.code)) {
        this.recordNack(w, type, nonce, error);
        return false;
      }
      if (nonce) this.recordAck(w, type, nonce, versionInfo);
    }
    // Most requests are ACKs repeating the last list of names: compare without allocating.
    if (w.requested && sameList(names, w.lastNames)) return false;
    const wildcard = WILDCARD_TYPES.has(type) && (names.length === 0 || names.includes('*'));
    const next = new Set(names.filter((n) => n !== '*'));
    const changed = !w.requested || wildcard !== w.wildcard || next.size !== w.names.size || [...next].some((n) => !w.names.has(n));
    w.requested = true;
    w.lastNames = names;
    if (!changed) return false;
    w.wildcard = wildcard;
    w.names.clear();
    for (const n of next) w.names.add(n);
    // Forget what was sent for names no longer watched, so a re-subscription gets them again.
    for (const name of [...w.sent.keys()]) if (!w.subscribed(name)) w.recordSent(name, undefined);
    this.requestType(type);
    return true;
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
    const first = !w.requested;
    w.requested = true;
    if (nonce && !first) {
      if (nonce !== w.lastNonce) this.hooks.onStaleNonce(this, type);
      else if (error && (error.message || error.code)) this.recordNack(w, type, nonce, error);
      else this.recordAck(w, type, nonce, w.lastVersion);
    }
    let owed = first;
    if (first) {
      w.wildcard = WILDCARD_TYPES.has(type) && (subscribe.length === 0 || subscribe.includes('*'));
      for (const [name, version] of Object.entries(initialVersions)) w.sent.set(name, version);
    } else if (subscribe.includes('*') && !w.wildcard) {
      w.wildcard = true;
      owed = true;
    }
    for (const n of subscribe) {
      if (n === '*' || w.names.has(n)) continue;
      w.names.add(n);
      owed = true;
    }
    for (const n of unsubscribe) {
      if (n === '*') w.wildcard = false;
      w.names.delete(n);
      w.recordSent(n, undefined);
    }
    if (owed) this.requestType(type);
    return owed;
  }

  private recordAck(w: TypeWatch, type: TypeUrl, nonce: string, versionInfo: string): void {
    w.ackedNonce = nonce;
    w.ackedVersion = versionInfo;
    w.ackedAt = Date.now();
    const convergence = w.pendingSince ? w.ackedAt - w.pendingSince : undefined;
    w.pendingSince = 0;
    this.hooks.onAck(this, type, convergence);
  }

  private recordNack(w: TypeWatch, type: TypeUrl, nonce: string, error: DecodedStatus): void {
    // A proxy repeating a NACK of one response is recorded, logged and counted once.
    if (w.nack?.nonce === nonce) return;
    w.nack = { nonce, version: w.lastVersion, message: clientText(error.message || `code ${error.code}`, MAX_NACK_MESSAGE), at: Date.now() };
    w.pendingSince = 0;
    this.hooks.onNack(this, type, w.nack.message);
  }

  // ---- pushes ---------------------------------------------------------------

  /** Sends everything pending, in make-before-break order. */
  async flush(): Promise<void> {
    while (this.pending && !this.detached) {
      const p = this.pending;
      this.pending = undefined;
      try {
        await this.flushOne(p);
      } catch (err) {
        // Nothing of a failed push is lost: it is pending again, merged with what came since.
        if (!this.closed) this.pending = mergePending(p, this.pending);
        throw err;
      }
    }
  }

  private async flushOne(p: PendingPush): Promise<void> {
    if (p.full) {
      const next = this.generator.attach(this.proxy);
      this.generator.detach(this.ctx);
      this.ctx = next;
    }
    const view = this.generator.resourcesFor(this.ctx);
    const refusal = this.credentialAccess();
    const secrets = this.generator.secretsFor(view.byType[TypeUrl.Secret], this.ownSecrets, refusal === undefined);
    if (refusal) this.reportWithheld(view.byType[TypeUrl.Secret], refusal);
    const resources = secrets === view.byType[TypeUrl.Secret] ? view : { ...view, byType: { ...view.byType, [TypeUrl.Secret]: secrets } };
    let deferredClusterRemoval = false;
    // A cluster that changed is warmed again by Envoy and waits for its endpoints: resend them.
    let updatedClusters: Set<string> | undefined;
    for (const type of PUSH_ORDER) {
      const w = this.watches.get(type);
      if (!w || !w.requested || !(p.types.has(type) || (type === TypeUrl.ClusterLoadAssignment && updatedClusters?.size))) continue;
      const edsOnly = type === TypeUrl.ClusterLoadAssignment && !w.force ? p.edsNames : undefined;
      const forced = type === TypeUrl.ClusterLoadAssignment ? updatedClusters : undefined;
      const r = await this.pushType(w, resources.byType[type], p.since, edsOnly, type === TypeUrl.Cluster, forced);
      if (type === TypeUrl.Cluster) {
        deferredClusterRemoval = r.held;
        updatedClusters = r.updated;
      }
    }
    if (deferredClusterRemoval && !this.closed) {
      // Break after make: clusters go away only after the listeners and routes that used them.
      await this.pushType(this.watch(TypeUrl.Cluster), resources.byType[TypeUrl.Cluster], p.since, undefined, false);
    }
  }

  private reportWithheld(classSecrets: ResourceMap, reason: SecretRefusal): void {
    const w = this.watches.get(TypeUrl.Secret);
    if (!w || classSecrets.size === 0) return;
    for (const name of classSecrets.keys()) {
      if (!w.subscribed(name) || this.refusedSecrets.has(name)) continue;
      this.refusedSecrets.add(name);
      this.hooks.onSecretRefused(this, name, reason);
    }
  }

  private placeholder(type: TypeUrl, name: string): CachedResource | undefined {
    // An unknown route or endpoint name gets an empty resource, not silence.
    if (type === TypeUrl.RouteConfiguration) return this.generator.cache.intern(type, { name, body: { name } });
    if (type === TypeUrl.ClusterLoadAssignment) return this.generator.cache.intern(type, emptyLoadAssignment(name));
    return undefined;
  }

  private desired(w: TypeWatch, all: ResourceMap, name: string): CachedResource | undefined {
    if (!w.subscribed(name)) return undefined;
    return all.get(name) ?? (w.names.has(name) ? this.placeholder(w.typeUrl, name) : undefined);
  }

  /**
   * Pushes one type. Returns whether removals were held back, and which names that
   * the proxy already had were sent again with new content.
   */
  private async pushType(
    w: TypeWatch,
    all: ResourceMap,
    since: number,
    onlyNames: ReadonlySet<string> | undefined,
    deferRemovals: boolean,
    forceNames?: ReadonlySet<string>,
  ): Promise<{ held: boolean; updated: Set<string> }> {
    const force = w.force;
    w.force = false;
    const updated = new Set<string>();
    if (!force && !onlyNames && !forceNames?.size) {
      // Already holding exactly this set (shared with its class): nothing to compare.
      if (w.sent.isExactly(all)) return { held: false, updated };
      // Holding exactly the class's previous set: the class's diff, computed once, applies.
      const base = w.wildcard ? w.sent.exactBase() : undefined;
      if (base) return this.pushSetDiff(w, all, setDiff(base, all), since, deferRemovals);
    }
    // Which names to look at: the changed ones, or everything we know or were asked about.
    const candidates = new Set<string>(onlyNames ?? []);
    for (const n of forceNames ?? []) candidates.add(n);
    if (!onlyNames) {
      if (w.wildcard) for (const n of all.keys()) candidates.add(n);
      for (const n of w.names) candidates.add(n);
      for (const n of w.sent.keys()) candidates.add(n);
    }
    const upserts: CachedResource[] = [];
    const removals: string[] = [];
    for (const name of candidates) {
      const want = this.desired(w, all, name);
      const have = w.sentVersion(name);
      if (want) {
        if (want.version !== have || forceNames?.has(name)) {
          upserts.push(want);
          if (have !== undefined) updated.add(name);
        }
      } else if (have !== undefined) removals.push(name);
    }
    const held = deferRemovals && removals.length > 0;
    if (upserts.length === 0 && removals.length === 0 && !force) return { held: false, updated };
    if (upserts.length === 0 && held && !force) return { held: true, updated };
    upserts.sort(byResourceName);
    if (this.protocol === 'delta') await this.sendDelta(w, upserts, held ? [] : removals, since);
    else await this.sendSotw(w, all, upserts, held ? [] : removals, since);
    // Share the class's set as this proxy's state when it holds exactly that set.
    if (w.sent.ownSize >= REBASE_AFTER || (!onlyNames && w.sent.ownSize > 0)) w.sent.rebase(all);
    return { held, updated };
  }

  private async pushSetDiff(w: TypeWatch, all: ResourceMap, d: SetDiff, since: number, deferRemovals: boolean): Promise<{ held: boolean; updated: Set<string> }> {
    const held = deferRemovals && d.removals.length > 0;
    if (d.upserts.length === 0 && (held || d.removals.length === 0)) {
      if (d.removals.length === 0) w.sent.resetTo(all);
      return { held, updated: new Set() };
    }
    if (this.protocol === 'delta') await this.sendDelta(w, d.upserts, held ? [] : d.removals, since);
    else await this.sendSotw(w, all, d.upserts, held ? [] : d.removals, since);
    if (!held) w.sent.resetTo(all);
    return { held, updated: d.updated };
  }

  private async sendSotw(w: TypeWatch, all: ResourceMap, upserts: CachedResource[], removals: string[], since: number): Promise<void> {
    for (const e of upserts) w.recordSent(e.name, e);
    for (const n of removals) w.recordSent(n, undefined);
    const version = w.fingerprint.toString();
    if (w.nack && w.nack.version === version && upserts.length > 0) return; // the proxy rejected exactly this; do not loop
    let framed: Buffer[];
    let count: number;
    let key: string | undefined;
    if (WILDCARD_TYPES.has(w.typeUrl)) {
      // Listeners and clusters: every response carries the whole set. Proxies of one
      // class usually hold exactly their class's set, whose bytes are built once.
      const shared = wildcardBlock(all);
      if (w.sent.size === all.size && shared.version === version) {
        framed = [shared.block];
        count = all.size;
        key = `sotw\n${w.typeUrl}\n${version}\n*`;
      } else {
        const body: CachedResource[] = [];
        for (const [name, entry] of w.sent) {
          const e = typeof entry !== 'string' ? entry : all.get(name);
          if (e) body.push(e);
        }
        body.sort(byResourceName);
        framed = body.map((e) => e.sotwFramed());
        count = body.length;
      }
    } else {
      framed = upserts.map((e) => e.sotwFramed());
      count = upserts.length;
      key = responseKey('sotw', w.typeUrl, version, upserts, []);
    }
    const encode = (nonce: string): Buffer => encodeDiscoveryResponse({ versionInfo: version, typeUrl: w.typeUrl, nonce, framedResources: framed, controlPlane: this.controlPlaneId });
    const { nonce, bytes } = key === undefined ? this.unshared(encode) : this.generator.responses.get(key, encode);
    this.noteSent(w, nonce, version, since);
    this.hooks.onSent(this, w.typeUrl, bytes.length, count);
    await this.sink.write(bytes);
  }

  private async sendDelta(w: TypeWatch, upserts: CachedResource[], removals: string[], since: number): Promise<void> {
    for (const e of upserts) w.recordSent(e.name, e);
    for (const n of removals) w.recordSent(n, undefined);
    const version = w.fingerprint.toString();
    const encode = (nonce: string): Buffer =>
      encodeDeltaDiscoveryResponse({
        systemVersionInfo: version,
        typeUrl: w.typeUrl,
        nonce,
        framedResources: upserts.map((e) => e.deltaFramed()),
        removed: removals,
        controlPlane: this.controlPlaneId,
      });
    const { nonce, bytes } = this.generator.responses.get(responseKey('delta', w.typeUrl, version, upserts, removals), encode);
    this.noteSent(w, nonce, version, since);
    this.hooks.onSent(this, w.typeUrl, bytes.length, upserts.length);
    await this.sink.write(bytes);
  }

  private unshared(encode: (nonce: string) => Buffer): { nonce: string; bytes: Buffer } {
    const nonce = newNonce();
    return { nonce, bytes: encode(nonce) };
  }

  private noteSent(w: TypeWatch, nonce: string, version: string, since: number): void {
    w.lastNonce = nonce;
    w.lastVersion = version;
    w.lastSentAt = Date.now();
    w.sentResponses++;
    if (!w.pendingSince) w.pendingSince = since;
  }

  /** For debug output: per type, what was sent and acknowledged. */
  syncStatus(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const type of PUSH_ORDER) {
      const w = this.watches.get(type);
      if (!w) continue;
      out[SHORT_TYPE[type]] = {
        status: w.status(),
        sent: w.lastVersion || undefined,
        sentNonce: w.lastNonce || undefined,
        acked: w.ackedVersion || undefined,
        ackedNonce: w.ackedNonce || undefined,
        resources: w.sent.size,
        wildcard: w.wildcard,
        ...(w.nack ? { lastNack: { error: w.nack.message, version: w.nack.version, nonce: w.nack.nonce, at: new Date(w.nack.at).toISOString() } } : {}),
      };
    }
    return out;
  }
}
