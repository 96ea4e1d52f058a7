// Plain node:http backends for e2e tests, to put behind a real Envoy.
import http, { type IncomingMessage, type ServerResponse, type IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';

export interface RecordedRequest {
  method: string;
  /** Path including the query string, as received. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Date.now() when the request arrived. */
  at: number;
}

export type BackendHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** http://host:port (IPv6 hosts bracketed). */
  readonly url: string;
  /** Every request received so far, oldest first. */
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

export interface BackendOptions {
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port to listen on; default 0 (any free port). */
  port?: number;
  /** Replaces the default handler; requests are still recorded. */
  handler?: BackendHandler;
}

function defaultHandler(name: string): BackendHandler {
  return (req, res) => {
    // Drain any request body before answering so keep-alive connections stay usable.
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ backend: name, method: req.method, path: req.url, headers: req.headers });
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-backend': name,
      });
      res.end(body);
    });
  };
}

/**
 * Starts an HTTP server that by default answers every request with 200 and the JSON
 * `{ backend, method, path, headers }` plus the header `x-backend: <name>`.
 */
export async function startHttpBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  const host = opts.host ?? '127.0.0.1';
  const handler = opts.handler ?? defaultHandler(name);
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, at: Date.now() });
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    name,
    host,
    port,
    url: `http://${urlHost}:${port}`,
    requests,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Envoy keeps upstream connections open; drop them so close() does not hang.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Ports handed out by freePort in this process, so two calls never give the same one. */
const handedOut = new Set<number>();

/** The kernel's ephemeral range: what `listen(0)` and outgoing connections take ports from. */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // not Linux: the IANA range
  }
  return [49152, 65535];
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A TCP port that was free on `host` (default 127.0.0.1) a moment ago, from below the
 * ephemeral range: a port that a process binding port 0 (meshd, an Envoy admin) or an
 * outgoing connection takes meanwhile is never one of these. Never the same port twice.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const high = Math.min(ephemeralLow, 65536) - 1;
  const low = Math.max(1024, high - 12_000);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port)) continue;
    if (await bindable(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port on ${host} between ${low} and ${high}`);
}

/**
 * Connects to host:port, writes `payload` and resolves with as many bytes (latin1) as it sent,
 * as an echo server returns them; rejects after `timeoutMs`.
 */
export function tcpRoundTrip(port: number, host: string, payload: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host, () => s.write(payload, 'latin1'));
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => {
      data += c;
      if (data.length >= payload.length) {
        s.end();
        resolve(data);
      }
    });
    s.on('error', reject);
    // A peer that closes early (or a wrong peer that answers something else) fails it, never hangs it.
    s.on('close', () => reject(new Error(`connection closed after ${data.length} of ${payload.length} bytes: ${JSON.stringify(data.slice(0, 80))}`)));
    s.setTimeout(timeoutMs, () => s.destroy(new Error('timeout')));
  });
}
