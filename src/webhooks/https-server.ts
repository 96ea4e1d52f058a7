// The webhook port (Istio's 15017): HTTPS with meshd's serving certificate (renewed in
// place), admission reviews in and out. Every client may be hostile: bodies are bounded,
// slow requests time out, anything that is not an AdmissionReview gets a 4xx.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServingCertificate } from '../ca/serving-cert.js';
import type { Logger } from '../util/log.js';
import { clientText } from '../util/client-text.js';
import { AdmissionError, admissionReview, parseAdmissionReview, type AdmissionRequest, type AdmissionResponse } from './admission.js';

export type AdmissionHandler = (request: AdmissionRequest) => AdmissionResponse;

export interface WebhookServerOptions {
  host: string;
  port: number;
  servingCert: ServingCertificate;
  /** By path, e.g. `/inject`. */
  handlers: Record<string, AdmissionHandler>;
  log: Logger;
  /** Largest request body (bytes); default 6 MiB (twice what the apiserver stores of one object). */
  maxBodyBytes?: number;
  /** A request (and before it, the TLS handshake) must arrive whole within this (ms); default 10 s. */
  requestTimeoutMs?: number;
}

export interface WebhookServer {
  readonly port: number;
  stop(): Promise<void>;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? `${body}\n` : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

/** The request body, at most `max` bytes; past that, the rest is dropped unread. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return reject(new AdmissionError(`the body is ${declared} bytes; at most ${max} are accepted`, 413));
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        // The rest is read and dropped (within the request timeout), so the 413 reaches the client.
        req.off('data', onData);
        req.resume();
        chunks.length = 0;
        reject(new AdmissionError(`the body is over ${max} bytes`, 413));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const max = o.maxBodyBytes ?? 6 * 1024 * 1024;
  // Renewed certificates go to the server once it exists.
  const renewed: { server?: Server } = {};
  // The certificate and key as issued, and again at each renewal.
  const current = await new Promise<{ certificate: Buffer; privateKey: Buffer }>((resolve) => {
    let first = true;
    o.servingCert.addIdentityCertificateListener((update) => {
      if (!update) return;
      if (first) {
        first = false;
        resolve(update);
      } else renewed.server?.setSecureContext({ cert: update.certificate, key: update.privateKey });
    });
  });
  const server = createServer({ cert: current.certificate, key: current.privateKey, requestTimeout: o.requestTimeoutMs ?? 10_000, headersTimeout: Math.min(o.requestTimeoutMs ?? 10_000, 10_000), handshakeTimeout: Math.min(o.requestTimeoutMs ?? 10_000, 10_000), keepAliveTimeout: 30_000, connectionsCheckingInterval: 1000 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = Object.hasOwn(o.handlers, path) ? o.handlers[path] : undefined;
    if (!handler) return reply(res, 404, `no webhook at ${clientText(path, 128)}; meshd serves ${Object.keys(o.handlers).sort().join(', ')}`);
    if (req.method !== 'POST') return reply(res, 405, 'admission reviews are POSTed');
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) return reply(res, 415, 'admission reviews are application/json');
    readBody(req, max)
      .then((body) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          throw new AdmissionError('the body is not JSON');
        }
        const request = parseAdmissionReview(parsed);
        reply(res, 200, admissionReview(handler(request)));
      })
      .catch((err: unknown) => {
        const status = err instanceof AdmissionError ? err.httpStatus : 500;
        const message = clientText(err instanceof Error ? err.message : String(err), 512);
        if (status >= 500) o.log.error({ path, err: message }, 'webhook failed');
        else o.log.debug({ path, err: message }, 'webhook request refused');
        if (!res.headersSent) reply(res, status, message);
      });
  });
  renewed.server = server;
  server.maxHeadersCount = 100;
  server.on('tlsClientError', () => undefined);
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}
