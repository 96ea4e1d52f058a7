// What one proxy holds of one type: the resources sent to it by name, kept as a shared
// base plus differences, and an order-independent fingerprint of that set.
import { createHash } from 'node:crypto';
import type { CachedResource } from './resource-cache.js';

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

/**
 * What one proxy holds of one type, by name. Most proxies hold exactly the set their
 * class was given, so the state is a shared, immutable base map plus this proxy's own
 * differences; with a thousand proxies that is a thousand small maps, not a thousand
 * copies of every resource name.
 */
export class SentState {
  private base: ReadonlyMap<string, CachedResource> | undefined;
  /** Differences from base: a value, or null for "not held although base has it". */
  private readonly own = new Map<string, CachedResource | string | null>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** How many names this proxy holds differently from the shared base. */
  get ownSize(): number {
    return this.own.size;
  }

  get(name: string): CachedResource | string | undefined {
    const o = this.own.get(name);
    if (o !== undefined) return o === null ? undefined : o;
    return this.base?.get(name);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  set(name: string, value: CachedResource | string): void {
    if (!this.has(name)) this.count++;
    if (this.base?.get(name) === value) this.own.delete(name);
    else this.own.set(name, value);
  }

  delete(name: string): void {
    if (!this.has(name)) return;
    this.count--;
    if (this.base?.has(name)) this.own.set(name, null);
    else this.own.delete(name);
  }

  *entries(): IterableIterator<[string, CachedResource | string]> {
    if (this.base) {
      for (const [k, v] of this.base) {
        const o = this.own.get(k);
        if (o === null) continue;
        yield [k, o ?? v];
      }
    }
    for (const [k, v] of this.own) if (v !== null && !this.base?.has(k)) yield [k, v];
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  [Symbol.iterator](): IterableIterator<[string, CachedResource | string]> {
    return this.entries();
  }

  /** True when this proxy holds exactly `map` (its shared base, with no differences). */
  isExactly(map: ReadonlyMap<string, CachedResource>): boolean {
    return this.base === map && this.own.size === 0;
  }

  /** The shared base, when this proxy holds exactly it. */
  exactBase(): ReadonlyMap<string, CachedResource> | undefined {
    return this.own.size === 0 ? this.base : undefined;
  }

  /** Takes `map` as the base, for a caller that knows this proxy now holds exactly its entries. */
  resetTo(map: ReadonlyMap<string, CachedResource>): void {
    this.base = map;
    this.own.clear();
    this.count = map.size;
  }

  /** Adopts `map` as the shared base when this proxy holds exactly its entries. */
  rebase(map: ReadonlyMap<string, CachedResource>): boolean {
    if (this.base === map && this.own.size === 0) return true;
    if (this.count !== map.size) return false;
    for (const [k, v] of map) if (this.get(k) !== v) return false;
    this.base = map;
    this.own.clear();
    return true;
  }
}
