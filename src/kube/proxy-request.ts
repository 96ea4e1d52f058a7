// Requests through the API server's proxy subresources (pods/proxy), as istioctl reaches an
// Envoy's admin port or istiod's debug port: the answer is the pod's own bytes (text or
// JSON), bounded in size.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { KubeConnection } from './client.js';

export interface RawAnswer {
  status: number;
  body: string;
}

/** `GET|POST <path>` on the API server; the body is read up to `maxBytes` (then the request fails). */
export async function kubeRawRequest(conn: KubeConnection, method: string, path: string, o: { timeoutMs?: number; maxBytes?: number } = {}): Promise<RawAnswer> {
  const url = new URL(conn.server + path);
  const timeoutMs = o.timeoutMs ?? 30_000;
  const maxBytes = o.maxBytes ?? 256 * 1024 * 1024;
  const opts: RequestOptions = { method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers: { accept: '*/*' }, timeout: timeoutMs };
  await conn.config.applyToHTTPSOptions(opts);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = send(opts, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return req.destroy(new Error(`${method} ${path}: answer larger than ${maxBytes} bytes`));
        chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
