// Kubernetes objects as the installer handles them: plain JSON values with an apiVersion, a
// kind and metadata, named the way kubectl names them in messages.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface KubeObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: JsonObject & { name: string; namespace?: string; labels?: { [key: string]: string } };
}

export const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** "Deployment istio-system/istiod", "CustomResourceDefinition gateways.networking.istio.io". */
export function describeObject(o: KubeObject): string {
  return `${o.kind} ${o.metadata.namespace !== undefined ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

/** A key that is unique per object: group, kind, namespace and name (the version does not matter). */
export function objectKey(o: KubeObject): string {
  return `${groupOf(o.apiVersion)}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** "apps" of "apps/v1", "" of "v1". */
export function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** Checks that a parsed document is an object with apiVersion, kind and metadata.name; `where` names it in errors. */
export function asKubeObject(v: unknown, where: string): KubeObject {
  if (!isJsonObject(v)) throw new Error(`${where}: expected a Kubernetes object (a map), got ${Array.isArray(v) ? 'a list' : typeof v}`);
  for (const field of ['apiVersion', 'kind'] as const) {
    if (typeof v[field] !== 'string' || v[field] === '') throw new Error(`${where}: field "${field}" must be a non-empty string`);
  }
  const m = v.metadata;
  if (!isJsonObject(m) || typeof m.name !== 'string' || m.name === '') throw new Error(`${where}: ${String(v.kind)} has no metadata.name`);
  if (m.namespace !== undefined && typeof m.namespace !== 'string') throw new Error(`${where}: ${String(v.kind)} ${m.name}: metadata.namespace must be a string`);
  return v as KubeObject;
}

/** A deep copy (objects here are plain JSON). */
export const cloneJson = <T extends Json>(v: T): T => structuredClone(v);

/** Reads a nested field, e.g. field(o, 'spec', 'template', 'spec', 'containers', 0, 'image'). */
export function field(o: unknown, ...path: (string | number)[]): unknown {
  let cur: unknown = o;
  for (const p of path) {
    if (typeof p === 'number') cur = Array.isArray(cur) ? cur[p] : undefined;
    else cur = isJsonObject(cur) ? cur[p] : undefined;
  }
  return cur;
}

// Kustomize's "legacy" output order (what `kubectl kustomize` prints): these kinds first, in
// this order, then every other kind, then the webhook configurations; ties by group and
// version, then by name and namespace. It is also a safe apply order: namespaces and
// definitions before what lives in them, webhooks after the servers they call.
const ORDER_FIRST = [
  'Namespace',
  'ResourceQuota',
  'StorageClass',
  'CustomResourceDefinition',
  'ServiceAccount',
  'PodSecurityPolicy',
  'Role',
  'ClusterRole',
  'RoleBinding',
  'ClusterRoleBinding',
  'ConfigMap',
  'Secret',
  'Endpoints',
  'Service',
  'LimitRange',
  'PriorityClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'Deployment',
  'StatefulSet',
  'CronJob',
  'PodDisruptionBudget',
];
const ORDER_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

function kindRank(kind: string): number {
  const first = ORDER_FIRST.indexOf(kind);
  if (first >= 0) return first - ORDER_FIRST.length;
  const last = ORDER_LAST.indexOf(kind);
  return last >= 0 ? last + 1 : 0;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Sorts objects in kustomize's legacy order (a stable copy). */
export function sortForApply(objects: readonly KubeObject[]): KubeObject[] {
  return [...objects].sort(
    (a, b) =>
      kindRank(a.kind) - kindRank(b.kind) ||
      cmp(a.apiVersion, b.apiVersion) ||
      cmp(a.kind, b.kind) ||
      cmp(a.metadata.name, b.metadata.name) ||
      cmp(a.metadata.namespace ?? '', b.metadata.namespace ?? ''),
  );
}
