// Label maps and selectors.

export type Labels = Record<string, string>;

/** True when every key/value of `selector` is in `labels`. An empty selector matches nothing here, as for Services. */
export function selectorMatches(selector: Labels | undefined, labels: Labels): boolean {
  if (!selector) return false;
  const keys = Object.keys(selector);
  if (keys.length === 0) return false;
  return keys.every((k) => labels[k] === selector[k]);
}

/** A stable string for a label map, for cache keys. */
export function labelsKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}
