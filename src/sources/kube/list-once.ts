// One read of the cluster, for commands (`meshd analyze`) rather than the control plane:
// each kind the Kubernetes source watches (Secrets aside: no key material is read) is listed
// once, page by page, and converted as the source converts it.
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseMeshObject, type MeshObject, type ObjectError } from '../../model/objects.js';
import { kubeRequest, preferredVersion, type KubeConnection } from '../../kube/client.js';
import { CORE_KINDS, ISTIO_GROUPS, collectionPath, servedIstioKinds, type WatchedKind } from './kube-source.js';

/** Objects asked for per request. */
const PAGE_SIZE = 500;
/** The most objects of one kind read; a larger cluster is refused rather than held in memory. */
export const MAX_OBJECTS_PER_KIND = 100_000;

export interface ClusterListing {
  objects: MeshObject[];
  /** Objects the API server holds that meshd would refuse, with the field at fault. */
  invalid: ObjectError[];
  /** What could not be read and why (an Istio API group whose CRDs are not installed). */
  notes: string[];
}

interface ListPage {
  metadata?: { continue?: string };
  items?: KubernetesObject[];
}

async function listKind(conn: KubeConnection, k: WatchedKind, out: ClusterListing): Promise<void> {
  const apiVersion = k.group ? `${k.group}/${k.version}` : k.version;
  let token: string | undefined;
  let count = 0;
  do {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (token) query.set('continue', token);
    const page = await kubeRequest<ListPage>(conn, 'GET', `${collectionPath(k)}?${query}`);
    for (const item of page.items ?? []) {
      if (++count > MAX_OBJECTS_PER_KIND) throw new Error(`the cluster holds more than ${MAX_OBJECTS_PER_KIND} ${k.plural}; meshd analyzes at most that many of one kind`);
      // List items carry no apiVersion and kind: the list's are theirs.
      const r = parseMeshObject({ ...item, apiVersion, kind: k.kind }, item.metadata?.namespace ?? '');
      if (r.ok === 'ignored') continue;
      if (r.ok) out.objects.push(r.value);
      else out.invalid.push(...r.errors);
    }
    token = page.metadata?.continue || undefined;
  } while (token);
}

/** Lists Services, EndpointSlices, Pods, Namespaces and the Istio kinds (at the version the server prefers) in every namespace. */
export async function listCluster(conn: KubeConnection): Promise<ClusterListing> {
  const out: ClusterListing = { objects: [], invalid: [], notes: [] };
  const kinds = CORE_KINDS.filter((k) => k.kind !== 'Secret');
  for (const g of ISTIO_GROUPS) {
    const preferred = await preferredVersion(conn, g.group);
    if (preferred === undefined) {
      out.notes.push(`the ${g.group} CRDs are not installed; ${g.describe} are not read`);
      continue;
    }
    const version = g.versions.includes(preferred) ? preferred : g.versions[0]!;
    const { served, missing } = await servedIstioKinds(conn, g, version);
    for (const k of missing) out.notes.push(`the ${k.plural}.${g.group} CRD is not installed; ${k.kind} objects are not read`);
    kinds.push(...served);
  }
  for (const k of kinds) await listKind(conn, k, out);
  return out;
}
