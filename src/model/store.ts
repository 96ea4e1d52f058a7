// The config store: validated objects by kind/namespace/name, with change events.
// Sources write into it; the push controller listens and builds snapshots. It also holds
// the refusals: the versions sources read but validation refused (the last good version, if
// any, stays), until a valid version arrives or the object is deleted.
import { isDeepStrictEqual } from 'node:util';
import { keyOf, objectKey, type MeshKind, type MeshObject, type ObjectError } from './objects.js';
import type { FindingOrigin } from './finding.js';

/** A version of an object that validation refused: it is not served (its last good version, if any, is). */
export interface Refusal {
  kind: string;
  namespace: string;
  name: string;
  /** metadata.generation of the refused version, when it has one. */
  generation?: number;
  errors: readonly ObjectError[];
  /** Where it was read from, for a file. */
  origin?: FindingOrigin;
}

export interface ConfigChange {
  kind: MeshKind;
  namespace: string;
  name: string;
  /** `refusal`: only the object's refusal changed (recorded or cleared); no served config did. */
  op: 'add' | 'update' | 'delete' | 'refusal';
  /** For EndpointSlices: the Service (namespace/name) they belong to. */
  service?: string;
}

export type ChangeListener = (changes: ConfigChange[]) => void;

type Comparable = Omit<MeshObject, 'metadata'> & { metadata: Omit<MeshObject['metadata'], 'resourceVersion'> };

function comparable(o: MeshObject): Comparable {
  const { resourceVersion: _rv, ...meta } = o.metadata;
  return { ...o, metadata: meta } as Comparable;
}

function describe(o: MeshObject, op: ConfigChange['op']): ConfigChange {
  const c: ConfigChange = { kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name, op };
  if (o.kind === 'EndpointSlice') c.service = `${o.metadata.namespace}/${o.serviceName}`;
  return c;
}

export class ConfigStore {
  private readonly objects = new Map<string, MeshObject>();
  private readonly listeners = new Set<ChangeListener>();
  /** Object keys grouped by the source that owns them (a file directory, a kube informer...). */
  private readonly bySource = new Map<string, Set<string>>();
  /** Refusals by object key, and the source that recorded each. */
  private readonly refused = new Map<string, { source: string; refusal: Refusal }>();

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get<K extends MeshKind>(kind: K, namespace: string, name: string): Extract<MeshObject, { kind: K }> | undefined {
    return this.objects.get(keyOf(kind, namespace, name)) as Extract<MeshObject, { kind: K }> | undefined;
  }

  list<K extends MeshKind>(kind: K): Extract<MeshObject, { kind: K }>[] {
    const out: Extract<MeshObject, { kind: K }>[] = [];
    for (const o of this.objects.values()) if (o.kind === kind) out.push(o as Extract<MeshObject, { kind: K }>);
    return out;
  }

  get size(): number {
    return this.objects.size;
  }

  /** The refusals now, sorted by kind/namespace/name. */
  refusals(): Refusal[] {
    return [...this.refused.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, r]) => r.refusal);
  }

  /** Adds or replaces one object (clearing its refusal); emits a change only when something differs. */
  upsert(source: string, obj: MeshObject): void {
    const cleared = this.clearRefusal(objectKey(obj), obj.kind, obj.metadata.namespace, obj.metadata.name);
    const c = this.put(source, obj) ?? cleared;
    if (c) this.emit([c]);
  }

  /** Records that validation refused a version of an object; what the store serves for it stays. */
  refuse(source: string, refusal: Refusal): void {
    const c = this.setRefusal(source, refusal);
    if (c) this.emit([c]);
  }

  /** Removes an object and its refusal. */
  delete(source: string, kind: MeshKind, namespace: string, name: string): void {
    const key = keyOf(kind, namespace, name);
    const cleared = this.clearRefusal(key, kind, namespace, name);
    const old = this.objects.get(key);
    if (!old) {
      if (cleared) this.emit([cleared]);
      return;
    }
    this.objects.delete(key);
    this.bySource.get(source)?.delete(key);
    this.emit([describe(old, 'delete')]);
  }

  /**
   * Replaces everything a source owns with `objects` and its refusals with `refusals` (a full
   * resync), emitting one batch of changes.
   */
  replaceSource(source: string, objects: MeshObject[], refusals: readonly Refusal[] = []): ConfigChange[] {
    const owned = this.bySource.get(source) ?? new Set<string>();
    const next = new Set(objects.map(objectKey));
    const changes: ConfigChange[] = [];
    for (const key of owned) {
      if (next.has(key)) continue;
      const old = this.objects.get(key);
      if (old) {
        this.objects.delete(key);
        changes.push(describe(old, 'delete'));
      }
    }
    this.bySource.set(source, new Set());
    for (const o of objects) {
      const c = this.put(source, o);
      if (c) changes.push(c);
    }
    const refusedNext = new Set(refusals.map((r) => keyOf(r.kind, r.namespace, r.name)));
    for (const [key, { source: s, refusal: r }] of [...this.refused]) {
      if (s !== source || refusedNext.has(key)) continue;
      const c = this.clearRefusal(key, r.kind as MeshKind, r.namespace, r.name);
      if (c) changes.push(c);
    }
    for (const r of refusals) {
      const c = this.setRefusal(source, r);
      if (c) changes.push(c);
    }
    if (changes.length) this.emit(changes);
    return changes;
  }

  private setRefusal(source: string, refusal: Refusal): ConfigChange | undefined {
    const key = keyOf(refusal.kind, refusal.namespace, refusal.name);
    const old = this.refused.get(key);
    this.refused.set(key, { source, refusal });
    if (old && isDeepStrictEqual(old.refusal, refusal)) return undefined;
    return { kind: refusal.kind as MeshKind, namespace: refusal.namespace, name: refusal.name, op: 'refusal' };
  }

  private clearRefusal(key: string, kind: MeshKind, namespace: string, name: string): ConfigChange | undefined {
    if (!this.refused.delete(key)) return undefined;
    return { kind, namespace, name, op: 'refusal' };
  }

  private put(source: string, obj: MeshObject): ConfigChange | undefined {
    const key = objectKey(obj);
    let owned = this.bySource.get(source);
    if (!owned) this.bySource.set(source, (owned = new Set()));
    owned.add(key);
    const old = this.objects.get(key);
    if (old === obj) return undefined;
    // An equal object (a file re-read, a resync, only the resourceVersion moved on) leaves the
    // stored one in place: translation recognises unchanged objects by identity (translate/memo.ts).
    if (old && isDeepStrictEqual(comparable(old), comparable(obj))) return undefined;
    this.objects.set(key, obj);
    return describe(obj, old ? 'update' : 'add');
  }

  private emit(changes: ConfigChange[]): void {
    for (const l of this.listeners) l(changes);
  }
}
