// The config store: validated objects by kind/namespace/name, with change events.
// Sources write into it; the push controller listens and builds snapshots.
import { isDeepStrictEqual } from 'node:util';
import { keyOf, objectKey, type MeshKind, type MeshObject } from './objects.js';

export interface ConfigChange {
  kind: MeshKind;
  namespace: string;
  name: string;
  op: 'add' | 'update' | 'delete';
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

  /** Adds or replaces one object; emits a change only when it differs. */
  upsert(source: string, obj: MeshObject): void {
    const c = this.put(source, obj);
    if (c) this.emit([c]);
  }

  delete(source: string, kind: MeshKind, namespace: string, name: string): void {
    const key = keyOf(kind, namespace, name);
    const old = this.objects.get(key);
    if (!old) return;
    this.objects.delete(key);
    this.bySource.get(source)?.delete(key);
    this.emit([describe(old, 'delete')]);
  }

  /** Replaces everything a source owns with `objects` (a full resync), emitting one batch of changes. */
  replaceSource(source: string, objects: MeshObject[]): ConfigChange[] {
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
    if (changes.length) this.emit(changes);
    return changes;
  }

  private put(source: string, obj: MeshObject): ConfigChange | undefined {
    const key = objectKey(obj);
    let owned = this.bySource.get(source);
    if (!owned) this.bySource.set(source, (owned = new Set()));
    owned.add(key);
    const old = this.objects.get(key);
    if (old === obj) return undefined;
    this.objects.set(key, obj);
    if (old && isDeepStrictEqual(comparable(old), comparable(obj))) return undefined;
    return describe(obj, old ? 'update' : 'add');
  }

  private emit(changes: ConfigChange[]): void {
    for (const l of this.listeners) l(changes);
  }
}
