// Per-stream, per-type subscription state: what the proxy asked for, what it was
// sent, and what it acknowledged or rejected.
import { createHash } from 'node:crypto';
import type { TypeUrl } from '../translate/types.js';
import type { CachedResource } from './resource-cache.js';

export interface Nack {
  nonce: string;
  version: string;
  message: string;
  at: number;
}

/** An order-independent fingerprint of a set of (name, version) pairs, updatable one pair at a time. */
export class SetFingerprint {
  private hi = 0;
  private lo = 0;
  private static readonly memo = new WeakMap<CachedResource, [number, number]>();

  static of(entry: CachedResource): [number, number] {
    let fp = SetFingerprint.memo.get(entry);
    if (!fp) {
      const d = createHash('sha1').update(entry.name).update('\0').update(entry.version).digest();
      fp = [d.readUInt32BE(0), d.readUInt32BE(4)];
      SetFingerprint.memo.set(entry, fp);
    }
    return fp;
  }

  toggle(entry: CachedResource): void {
    const [h, l] = SetFingerprint.of(entry);
    this.hi = (this.hi ^ h) >>> 0;
    this.lo = (this.lo ^ l) >>> 0;
  }

  reset(): void {
    this.hi = 0;
    this.lo = 0;
  }

  toString(): string {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}

export class TypeWatch {
  /** Subscribed to everything of this type. */
  wildcard = false;
  /** Explicitly subscribed names. */
  readonly names = new Set<string>();
  /** What the proxy has been sent (delta: or told it has, on reconnect), by name. */
  readonly sent = new Map<string, CachedResource | string>();
  readonly fingerprint = new SetFingerprint();
  /** A response is owed even if nothing changed (a new request). */
  force = false;
  lastNonce = '';
  lastVersion = '';
  lastSentAt = 0;
  sentResponses = 0;
  ackedNonce = '';
  ackedVersion = '';
  ackedAt = 0;
  nack: Nack | undefined;
  /** The change time of the oldest push not yet acknowledged, for convergence metrics. */
  pendingSince = 0;
  requested = false;
  /** SotW: the resource names of the last request, as sent. */
  lastNames: readonly string[] = [];

  constructor(readonly typeUrl: TypeUrl) {}

  subscribed(name: string): boolean {
    return this.wildcard || this.names.has(name);
  }

  sentVersion(name: string): string | undefined {
    const s = this.sent.get(name);
    return typeof s === 'string' ? s : s?.version;
  }

  recordSent(name: string, entry: CachedResource | undefined): void {
    const old = this.sent.get(name);
    if (old && typeof old !== 'string') this.fingerprint.toggle(old);
    if (entry) {
      this.sent.set(name, entry);
      this.fingerprint.toggle(entry);
    } else this.sent.delete(name);
  }

  /** SYNCED, STALE or NOT SENT, as istiod's proxy-status says. */
  status(): 'SYNCED' | 'STALE' | 'NOT SENT' {
    if (this.sentResponses === 0) return 'NOT SENT';
    if (this.ackedNonce === this.lastNonce && !(this.nack && this.nack.nonce === this.lastNonce)) return 'SYNCED';
    return 'STALE';
  }
}
