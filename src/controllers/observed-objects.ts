// What the API server holds of each Istio object meshd reads, as far as status needs it:
// generation, current status and where its status subresource is. Fed by the kube source's
// informers (the same events, no extra watch), so the status writer can tell whether the
// status it would write is already there.
import type { KubernetesObject } from '@kubernetes/client-node';

/** The kind of a watched collection (the kube source's WatchedKind). */
export interface ObservedKind {
  kind: string;
  group: string;
  version: string;
  plural: string;
}

export interface ObservedObject {
  kind: string;
  namespace: string;
  name: string;
  /** metadata.generation (spec changes only; status writes leave it). */
  generation: number | undefined;
  /** The object's status as stored (TOO_LARGE when it is beyond what meshd keeps). */
  status: unknown;
  /** The status subresource's path. */
  statusPath: string;
}

/** A status larger than this (as JSON) is not kept: it never equals what meshd computes. */
export const MAX_KEPT_STATUS_BYTES = 64 * 1024;
export const TOO_LARGE = Symbol('status too large to keep');

export function observedKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

function statusOf(raw: KubernetesObject): unknown {
  const status = (raw as { status?: unknown }).status;
  if (status === undefined) return undefined;
  return JSON.stringify(status).length > MAX_KEPT_STATUS_BYTES ? TOO_LARGE : status;
}

export class ObservedObjects {
  private readonly objects = new Map<string, ObservedObject>();
  private readonly listeners = new Set<() => void>();

  /** Calls `listener` after any change (cheap: it should only note it). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(key: string): ObservedObject | undefined {
    return this.objects.get(key);
  }

  values(): IterableIterator<ObservedObject> {
    return this.objects.values();
  }

  get size(): number {
    return this.objects.size;
  }

  upsert(k: ObservedKind, raw: KubernetesObject): void {
    const o = this.toObserved(k, raw);
    if (o) this.objects.set(observedKey(o.kind, o.namespace, o.name), o);
    this.changed();
  }

  remove(k: ObservedKind, raw: KubernetesObject): void {
    this.objects.delete(observedKey(k.kind, raw.metadata?.namespace ?? '', raw.metadata?.name ?? ''));
    this.changed();
  }

  resync(k: ObservedKind, list: readonly KubernetesObject[]): void {
    for (const [key, o] of this.objects) if (o.kind === k.kind) this.objects.delete(key);
    for (const raw of list) {
      const o = this.toObserved(k, raw);
      if (o) this.objects.set(observedKey(o.kind, o.namespace, o.name), o);
    }
    this.changed();
  }

  /** meshd wrote this status (the API server's answer): kept until the watch brings the same. */
  written(key: string, status: unknown): void {
    const o = this.objects.get(key);
    if (o) this.objects.set(key, { ...o, status });
  }

  private toObserved(k: ObservedKind, raw: KubernetesObject): ObservedObject | undefined {
    const namespace = raw.metadata?.namespace;
    const name = raw.metadata?.name;
    if (!namespace || !name) return undefined;
    const base = k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`;
    return {
      kind: k.kind,
      namespace,
      name,
      generation: raw.metadata?.generation,
      status: statusOf(raw),
      statusPath: `${base}/namespaces/${encodeURIComponent(namespace)}/${k.plural}/${encodeURIComponent(name)}/status`,
    };
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
