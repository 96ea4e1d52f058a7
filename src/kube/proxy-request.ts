// Requests through the API server's proxy subresources (pods/proxy), as istioctl reaches an
// Envoy's admin port or istiod's debug port: the answer is the pod's own bytes (text or
// JSON), bounded in size and time.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { KubeConnection } from './client.js';

export interface RawAnswer {
  status: number;
  body: string;
}

export interface Bounds {
  timeoutMs?: number;
  maxBytes?: number;
}

/** One HTTP(S) request whose answer is read as text, failing past `maxBytes` or `timeoutMs`. */
export function boundedRequest(opts: RequestOptions, https: boolean, what: string, b: Bounds = {}): Promise<RawAnswer> {
  const timeoutMs = b.timeoutMs ?? 30_000;
  const maxBytes = b.maxBytes ?? 256 * 1024 * 1024;
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)({ ...opts, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return req.destroy(new Error(`${what}: answer larger than ${maxBytes} bytes`));
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${what} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** `GET|POST <path>` on the API server, authenticated as the kubeconfig says. */
export async function kubeRawRequest(conn: KubeConnection, method: string, path: string, b: Bounds = {}): Promise<RawAnswer> {
  const url = new URL(conn.server + path);
  const opts: RequestOptions = { method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers: { accept: '*/*' } };
  await conn.config.applyToHTTPSOptions(opts);
  return boundedRequest(opts, url.protocol !== 'http:', `${method} ${path}`, b);
}
