// The installer's calls to the API server, by object: read, server-side apply, delete, list by
// label, and the checks made on the way (CRD established, Deployment available). Every error
// names the object it was about.
import { KubeApiError, kubeRequest, type KubeConnection } from '../kube/client.js';
import { RestMapper, type ApiResource } from '../kube/rest-mapper.js';
import { describeObject, field, type KubeObject } from './objects.js';

/** Enough of an object to find it. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

/** The field manager of `meshd install`'s server-side applies. */
export const FIELD_MANAGER = 'meshd-install';
/** The label every object of the manifests carries; uninstall and precheck find meshd's objects by it. */
export const MESHD_LABEL = 'app.kubernetes.io/name';
export const MESHD_LABEL_VALUE = 'meshd';

export const isMeshd = (o: { metadata?: { labels?: Record<string, string> } }): boolean => o.metadata?.labels?.[MESHD_LABEL] === MESHD_LABEL_VALUE;

export class InstallCluster {
  readonly mapper: RestMapper;

  constructor(readonly conn: KubeConnection) {
    this.mapper = new RestMapper(conn);
  }

  private async resource(o: ObjectRef): Promise<ApiResource> {
    const r = await this.mapper.find(o.apiVersion, o.kind);
    if (r === undefined) throw new Error(`${describeObject(o as KubeObject)}: the API server does not serve ${o.kind} at ${o.apiVersion}`);
    return r;
  }

  private async pathOf(o: ObjectRef): Promise<string> {
    return RestMapper.objectPath(await this.resource(o), o.metadata.name, o.metadata.namespace);
  }

  request<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    return kubeRequest<T>(this.conn, method, path, body, contentType);
  }

  /** The object as stored, or undefined when it does not exist (or its kind is not served). */
  async get(o: ObjectRef): Promise<KubeObject | undefined> {
    const r = await this.mapper.find(o.apiVersion, o.kind);
    if (r === undefined) return undefined;
    try {
      return await this.request<KubeObject>('GET', RestMapper.objectPath(r, o.metadata.name, o.metadata.namespace));
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
      throw new Error(`reading ${describeObject(o as KubeObject)}: ${apiMessage(err)}`, { cause: err });
    }
  }

  /** Server-side apply as FIELD_MANAGER, taking over fields other managers own (as istioctl does). */
  async apply(o: KubeObject): Promise<KubeObject> {
    const path = await this.pathOf(o);
    try {
      return await this.request<KubeObject>('PATCH', `${path}?fieldManager=${FIELD_MANAGER}&force=true`, JSON.stringify(o), 'application/apply-patch+yaml');
    } catch (err) {
      throw new Error(`applying ${describeObject(o)} (${o.apiVersion}): ${apiMessage(err)}`, { cause: err });
    }
  }

  /** Deletes an object (dependents are left to the garbage collector); false when it was already gone. */
  async delete(o: ObjectRef): Promise<boolean> {
    const path = await this.pathOf(o);
    try {
      await this.request('DELETE', path, { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return false;
      throw new Error(`deleting ${describeObject(o as KubeObject)}: ${apiMessage(err)}`, { cause: err });
    }
  }

  /** Every object of a kind with a label selector, in all namespaces; empty when the kind is not served. */
  async list(apiVersion: string, kind: string, labelSelector: string): Promise<KubeObject[]> {
    const r = await this.mapper.find(apiVersion, kind);
    if (r === undefined) return [];
    const l = await this.request<{ items?: KubeObject[] }>('GET', `${RestMapper.collectionPath(r)}?labelSelector=${encodeURIComponent(labelSelector)}&limit=500`);
    // A list's items carry no apiVersion/kind.
    return (l.items ?? []).map((i) => ({ ...i, apiVersion, kind }));
  }
}

/** The API server's own message (it names the field for invalid objects). */
export function apiMessage(err: unknown): string {
  if (err instanceof KubeApiError) return `HTTP ${err.statusCode}: ${err.message.replace(/^.*?: HTTP \d+: /, '')}`;
  return err instanceof Error ? err.message : String(err);
}

/** Whether a CRD is Established, and why not. */
export function crdEstablished(crd: KubeObject): { ok: boolean; why: string } {
  const conds = (field(crd, 'status', 'conditions') ?? []) as { type?: string; status?: string; reason?: string; message?: string }[];
  const est = conds.find((c) => c.type === 'Established');
  if (est?.status === 'True') return { ok: true, why: 'established' };
  const names = conds.find((c) => c.type === 'NamesAccepted' && c.status === 'False');
  return { ok: false, why: names ? `names not accepted: ${names.message ?? names.reason}` : `not Established${est?.message ? `: ${est.message}` : ' yet'}` };
}

/** Whether a Deployment's rollout is complete and its replicas available, as `kubectl rollout status` judges it. */
export function deploymentAvailable(d: KubeObject): { ok: boolean; why: string } {
  const want = (field(d, 'spec', 'replicas') as number | undefined) ?? 1;
  const generation = (field(d, 'metadata', 'generation') as number | undefined) ?? 0;
  const observed = (field(d, 'status', 'observedGeneration') as number | undefined) ?? 0;
  const updated = (field(d, 'status', 'updatedReplicas') as number | undefined) ?? 0;
  const total = (field(d, 'status', 'replicas') as number | undefined) ?? 0;
  const available = (field(d, 'status', 'availableReplicas') as number | undefined) ?? 0;
  const conds = (field(d, 'status', 'conditions') ?? []) as { type?: string; status?: string; reason?: string; message?: string }[];
  const progressing = conds.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') return { ok: false, why: `rollout failed: ${progressing.message ?? 'progress deadline exceeded'}` };
  if (observed < generation) return { ok: false, why: `the Deployment controller has not seen generation ${generation} yet (is kube-controller-manager running?)` };
  if (updated < want) return { ok: false, why: `${updated} of ${want} replicas updated, ${available} available` };
  if (total > updated) return { ok: false, why: `${total - updated} old replicas are pending termination` };
  if (available < want) {
    const cond = conds.find((c) => c.type === 'Available' && c.status !== 'True');
    return { ok: false, why: `${available} of ${want} replicas available${cond?.message ? ` (${cond.message})` : ''}` };
  }
  return { ok: true, why: `${available} of ${want} replicas available` };
}
