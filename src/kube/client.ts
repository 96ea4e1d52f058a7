// Access to the Kubernetes API: configuration (kubeconfig or in-cluster) and plain
// JSON requests, authenticated the way the client library sets up.
import { KubeConfig } from '@kubernetes/client-node';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';

export interface KubeConnection {
  config: KubeConfig;
  server: string;
}

/** Loads a kubeconfig file, or the in-cluster service-account config when `kubeconfig` is "in-cluster". */
export function loadKubeConfig(kubeconfig: string | 'in-cluster'): KubeConnection {
  const kc = new KubeConfig();
  if (kubeconfig === 'in-cluster') kc.loadFromCluster();
  else kc.loadFromFile(kubeconfig);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`kubeconfig ${kubeconfig}: no current cluster`);
  return { config: kc, server: cluster.server.replace(/\/$/, '') };
}

export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly path: string,
    message: string,
  ) {
    super(`${path}: HTTP ${statusCode}: ${message}`);
    this.name = 'KubeApiError';
  }
}

/** One JSON request to the API server. */
export async function kubeRequest<T>(conn: KubeConnection, method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<T> {
  const url = new URL(conn.server + path);
  const opts: RequestOptions = {
    method,
    hostname: url.hostname,
    port: url.port,
    path: url.pathname + url.search,
    headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': contentType } : {}) },
    timeout: timeoutMs,
  };
  await conn.config.applyToHTTPSOptions(opts);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise<T>((resolve, reject) => {
    const req = send(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          let message = text.slice(0, 500);
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? message;
          } catch {
            /* not JSON */
          }
          return reject(new KubeApiError(status, path, message));
        }
        try {
          resolve((text ? JSON.parse(text) : {}) as T);
        } catch (err) {
          reject(new Error(`${path}: invalid JSON: ${String(err)}`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

/** The resources (plural names) an API group version serves; empty when it is not served. */
export async function servedResources(conn: KubeConnection, group: string, version: string): Promise<Set<string>> {
  try {
    const r = await kubeRequest<{ resources?: { name: string }[] }>(conn, 'GET', `/apis/${group}/${version}`);
    return new Set((r.resources ?? []).map((x) => x.name));
  } catch (err) {
    if (err instanceof KubeApiError && err.statusCode === 404) return new Set();
    throw err;
  }
}

/** The version of an API group the server prefers, e.g. "v1" for networking.istio.io; undefined when it is not served. */
export async function preferredVersion(conn: KubeConnection, group: string): Promise<string | undefined> {
  try {
    const g = await kubeRequest<{ preferredVersion?: { version?: string }; versions?: { version: string }[] }>(conn, 'GET', `/apis/${group}`);
    return g.preferredVersion?.version ?? g.versions?.[0]?.version;
  } catch (err) {
    if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
    throw err;
  }
}
