// Pieces of translation kept from one config version to the next, so that an edit
// re-translates only what it touched: a virtual host or a cluster is rebuilt when one of the
// inputs it was built from is a different object (or value) than last time, and otherwise is
// the very same object, which the resource cache recognises without encoding or hashing it.
//
// The caller names every input of a piece (its dependencies); a piece is a pure function of
// them. Tests freeze each piece (util/freeze.ts), so changing one after the fact fails.
// Entries live two config versions: what a version did not use is dropped by the next, so
// the memo holds no more than what connected proxies use.
import { freezeShared } from '../util/freeze.js';

interface Entry {
  readonly deps: readonly unknown[];
  readonly value: unknown;
}

function sameDeps(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class TranslationMemo {
  private current = new Map<string, Entry>();
  private previous = new Map<string, Entry>();
  /** Pieces reused and pieces built, since the start. */
  readonly stats = { hits: 0, misses: 0 };

  /** A new config version: pieces the last version did not use are dropped now. */
  advance(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  /** The piece under `key` if built from the same `deps` (compared with ===), else `build()`'s. */
  get<V>(key: string, deps: readonly unknown[], build: () => V): V {
    let e = this.current.get(key);
    if (e === undefined) {
      e = this.previous.get(key);
      if (e !== undefined) this.current.set(key, e);
    }
    if (e !== undefined && sameDeps(e.deps, deps)) {
      this.stats.hits++;
      return e.value as V;
    }
    const value = build();
    freezeShared(value);
    this.current.set(key, { deps, value });
    this.stats.misses++;
    return value;
  }

  get size(): number {
    return this.current.size;
  }
}

/** Runs `build` through `memo` when there is one (meshd's generator); translates afresh otherwise. */
export function memoized<V>(memo: TranslationMemo | undefined, key: string, deps: readonly unknown[], build: () => V): V {
  return memo ? memo.get(key, deps, build) : build();
}
