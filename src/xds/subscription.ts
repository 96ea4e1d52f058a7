// One resource type on one stream, from the proxy's side: what it subscribed to and what it
// holds. This type owns the xDS subscription rules (envoyproxy's "xDS REST and gRPC
// protocol" document); Connection asks it what a push must send.
import { TypeUrl } from '../translate/types.js';
import type { CachedResource } from './resource-cache.js';
import { SentState, SetFingerprint } from './sent-state.js';

/**
 * Types whose subscription may be a wildcard: Listener and Cluster ("LDS and CDS ... are
 * wildcard" when the request names nothing). RDS, EDS and SDS are always by name.
 */
const WILDCARD_TYPES = new Set<string>([TypeUrl.Listener, TypeUrl.Cluster]);

/**
 * Delta adds VirtualHost: Envoy's VHDS watches over ADS never name what they want (they
 * match `<route configuration>/...` on their side), so the stream's subscription is the
 * wildcard and the server sends the virtual hosts of the route configurations it sent.
 */
const DELTA_WILDCARD_TYPES = new Set<string>([...WILDCARD_TYPES, TypeUrl.VirtualHost]);

/** SotW responses of these types carry every resource the proxy holds, not only changes. */
export function sotwSendsWholeSet(type: TypeUrl): boolean {
  return WILDCARD_TYPES.has(type);
}

export type ResourceSet = ReadonlyMap<string, CachedResource>;

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface DeltaSubscribe {
  subscribe: readonly string[];
  unsubscribe: readonly string[];
  /** Only on the first request of a stream: what the proxy already holds (name -> version). */
  initialVersions: Readonly<Record<string, string>>;
}

export class Subscription {
  private wildcard_ = false;
  private readonly names = new Set<string>();
  /** What the proxy holds (delta: or said it holds, on reconnect), by name. */
  private readonly held = new SentState();
  private readonly fingerprint = new SetFingerprint();
  private requested_ = false;
  /** SotW: the resource names of the last request, as sent. */
  private lastNames: readonly string[] = [];
  /** A response is owed even if nothing changed (a new request). */
  private owed = false;

  constructor(readonly typeUrl: TypeUrl) {}

  /** Whether the proxy has asked for this type on this stream. */
  get requested(): boolean {
    return this.requested_;
  }

  get wildcard(): boolean {
    return this.wildcard_;
  }

  /** Nothing is subscribed (no wildcard, no name): e.g. EDS once the proxy's last cluster went. */
  get empty(): boolean {
    return !this.wildcard_ && this.names.size === 0;
  }

  /** Whether `name` is subscribed: by the wildcard or by name. */
  subscribed(name: string): boolean {
    return this.wildcard_ || this.names.has(name);
  }

  /** Whether `name` was asked for by name (so an unknown one gets an empty resource, not silence). */
  named(name: string): boolean {
    return this.names.has(name);
  }

  /**
   * A state-of-the-world request's names. Each SotW request carries the complete list
   * ("the resource_names field ... is the full set"); an empty list (or `*`) on LDS/CDS is
   * the wildcard. Returns whether the subscription changed, so a response is owed; the first
   * request of a stream is always answered.
   */
  applySotw(names: readonly string[]): boolean {
    // Most requests are ACKs repeating the last list of names: compare without allocating.
    if (this.requested_ && sameList(names, this.lastNames)) return false;
    const wildcard = WILDCARD_TYPES.has(this.typeUrl) && (names.length === 0 || names.includes('*'));
    const next = new Set(names.filter((n) => n !== '*'));
    const changed = !this.requested_ || wildcard !== this.wildcard_ || next.size !== this.names.size || [...next].some((n) => !this.names.has(n));
    this.requested_ = true;
    this.lastNames = names;
    if (!changed) return false;
    this.wildcard_ = wildcard;
    this.names.clear();
    for (const n of next) this.names.add(n);
    // Forget what was sent for names no longer watched, so a re-subscription gets them again.
    for (const name of [...this.held.keys()]) if (!this.subscribed(name)) this.record(name, undefined);
    this.owed = true;
    return true;
  }

  /**
   * A delta request's changes. On the first request of a stream, an empty subscribe list
   * (or `*`) on LDS/CDS is the wildcard, and `initial_resource_versions` says what the
   * proxy already holds (so only what differs is sent). Later, `*` subscribes to the
   * wildcard and unsubscribing `*` leaves it. Returns whether a response is owed.
   */
  applyDelta(r: DeltaSubscribe): boolean {
    const first = !this.requested_;
    this.requested_ = true;
    let owed = first;
    if (first) {
      this.wildcard_ = DELTA_WILDCARD_TYPES.has(this.typeUrl) && (r.subscribe.length === 0 || r.subscribe.includes('*'));
      for (const [name, version] of Object.entries(r.initialVersions)) this.held.set(name, version);
    } else if (r.subscribe.includes('*') && !this.wildcard_) {
      this.wildcard_ = true;
      owed = true;
    }
    for (const n of r.subscribe) {
      if (n === '*' || this.names.has(n)) continue;
      this.names.add(n);
      owed = true;
    }
    for (const n of r.unsubscribe) {
      if (n === '*') this.wildcard_ = false;
      this.names.delete(n);
      this.record(n, undefined);
    }
    if (owed) this.owed = true;
    return owed;
  }

  /** Marks that the next push of this type must answer even if nothing changed; returns and clears the mark. */
  takeOwed(): boolean {
    const o = this.owed;
    this.owed = false;
    return o;
  }

  /** Whether the next push owes a response whatever changed. */
  get isOwed(): boolean {
    return this.owed;
  }

  // ---- what the proxy holds ----------------------------------------------------

  /** The version of `name` the proxy holds. */
  heldVersion(name: string): string | undefined {
    const s = this.held.get(name);
    return typeof s === 'string' ? s : s?.version;
  }

  /** Records that the proxy now holds `entry` as `name` (or nothing, for undefined). */
  record(name: string, entry: CachedResource | undefined): void {
    const old = this.held.get(name);
    if (old && typeof old !== 'string') this.fingerprint.toggle(old);
    if (entry) {
      this.held.set(name, entry);
      this.fingerprint.toggle(entry);
    } else this.held.delete(name);
  }

  /** The fingerprint of the set held: SotW's version_info, delta's system_version_info. */
  get version(): string {
    return this.fingerprint.toString();
  }

  get heldCount(): number {
    return this.held.size;
  }

  heldNames(): IterableIterator<string> {
    return this.held.keys();
  }

  /** Held entries; a name the proxy reported on reconnect (delta) has only its version. */
  heldEntries(): IterableIterator<[string, CachedResource | string]> {
    return this.held.entries();
  }

  /** True when the proxy holds exactly `set` (shared with its class), nothing to compare. */
  holdsExactly(set: ResourceSet): boolean {
    return this.held.isExactly(set);
  }

  /** The whole set the proxy holds, when it is exactly a set shared with its class. */
  heldSet(): ResourceSet | undefined {
    return this.held.exactBase();
  }

  /** The proxy now holds exactly `set`. */
  holdNow(set: ResourceSet): void {
    this.held.resetTo(set);
  }

  /**
   * After a push: shares `set` as what the proxy holds when it holds exactly that, so a
   * thousand proxies of a class keep one map, not a thousand. `always` tries even with few
   * differences of its own (after a full comparison).
   */
  share(set: ResourceSet, always: boolean, rebaseAfter: number): void {
    if (this.held.ownSize >= rebaseAfter || (always && this.held.ownSize > 0)) this.held.rebase(set);
  }

  /** The names a full comparison must look at: everything subscribed, asked for or held. */
  candidates(all: ResourceSet): Set<string> {
    const out = new Set<string>();
    if (this.wildcard_) for (const n of all.keys()) out.add(n);
    for (const n of this.names) out.add(n);
    for (const n of this.held.keys()) out.add(n);
    return out;
  }
}
