// Istio's order among competing objects of one kind: the oldest wins. An object without a
// creationTimestamp (one read from a YAML file) sorts first, as Go's zero time does in Istio.

export interface Created {
  metadata: { namespace: string; name: string; creationTimestamp?: string };
}

function creationTime(o: Created): number {
  const t = o.metadata.creationTimestamp ? Date.parse(o.metadata.creationTimestamp) : Number.NEGATIVE_INFINITY;
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

/** Oldest first; equal times by name, then namespace. */
export function olderFirst(a: Created, b: Created): number {
  const ta = creationTime(a);
  const tb = creationTime(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a.metadata.name !== b.metadata.name) return a.metadata.name < b.metadata.name ? -1 : 1;
  return a.metadata.namespace < b.metadata.namespace ? -1 : a.metadata.namespace > b.metadata.namespace ? 1 : 0;
}
