// apiVersion + kind -> REST path, from the API server's discovery (as kubectl's REST mapper
// does), so objects of any kind, CRDs included, can be read, applied and deleted by URL.
import { KubeApiError, kubeRequest, type KubeConnection } from './client.js';

export interface ApiResource {
  /** The plural resource name, e.g. "deployments". */
  plural: string;
  kind: string;
  namespaced: boolean;
  /** "/apis/apps/v1" or "/api/v1". */
  base: string;
}

interface ResourceList {
  resources?: { name: string; kind: string; namespaced: boolean }[];
}

export class RestMapper {
  private readonly lists = new Map<string, ApiResource[]>();

  constructor(private readonly conn: KubeConnection) {}

  private async list(apiVersion: string, refresh: boolean): Promise<ApiResource[]> {
    const cached = this.lists.get(apiVersion);
    if (cached !== undefined && !refresh) return cached;
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let found: ApiResource[] = [];
    try {
      const r = await kubeRequest<ResourceList>(this.conn, 'GET', base);
      found = (r.resources ?? []).filter((x) => !x.name.includes('/')).map((x) => ({ plural: x.name, kind: x.kind, namespaced: x.namespaced, base }));
    } catch (err) {
      if (!(err instanceof KubeApiError && err.statusCode === 404)) throw err;
    }
    this.lists.set(apiVersion, found);
    return found;
  }

  /** The resource serving `kind` at `apiVersion`, or undefined when the server does not serve it (discovery is re-read once on a miss). */
  async find(apiVersion: string, kind: string): Promise<ApiResource | undefined> {
    return (await this.list(apiVersion, false)).find((r) => r.kind === kind) ?? (await this.list(apiVersion, true)).find((r) => r.kind === kind);
  }

  /** Like find(), but throws an error naming the kind and version when the server does not serve it. */
  async resource(apiVersion: string, kind: string): Promise<ApiResource> {
    const r = await this.find(apiVersion, kind);
    if (r === undefined) throw new Error(`the API server does not serve ${kind} at ${apiVersion}`);
    return r;
  }

  /** The URL of a collection (namespace ignored for cluster-scoped kinds; all namespaces when undefined). */
  static collectionPath(r: ApiResource, namespace?: string): string {
    return r.namespaced && namespace !== undefined ? `${r.base}/namespaces/${encodeURIComponent(namespace)}/${r.plural}` : `${r.base}/${r.plural}`;
  }

  /** The URL of one object. */
  static objectPath(r: ApiResource, name: string, namespace?: string): string {
    if (r.namespaced && namespace === undefined) throw new Error(`${r.kind} ${name} is namespaced but has no namespace`);
    return `${RestMapper.collectionPath(r, namespace)}/${encodeURIComponent(name)}`;
  }
}
