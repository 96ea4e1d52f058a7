// The monitoring port: /metrics, /ready and the /debug endpoints.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Metrics } from '../util/metrics.js';
import type { Logger } from '../util/log.js';

export type DebugHandler = (query: URLSearchParams) => { status?: number; body: unknown };

export interface MonitoringServerOptions {
  metrics: Metrics;
  log: Logger;
  ready: () => boolean;
  debug: Record<string, DebugHandler>;
}

function send(res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export function createMonitoringServer(o: MonitoringServerOptions): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    void (async () => {
      try {
        if (path === '/metrics' || path === '/stats/prometheus') {
          return send(res, 200, await o.metrics.registry.metrics(), o.metrics.registry.contentType);
        }
        if (path === '/ready' || path === '/healthz/ready') {
          const ok = o.ready();
          return send(res, ok ? 200 : 503, ok ? 'ready\n' : 'not ready\n', 'text/plain');
        }
        if (path === '/debug' || path === '/debug/') {
          return send(res, 200, JSON.stringify({ endpoints: Object.keys(o.debug).map((k) => `/debug/${k}`).sort() }, null, 2) + '\n', 'application/json');
        }
        // Only the handlers' own names: not `constructor`, `__proto__` and the like.
        const name = path.startsWith('/debug/') ? path.slice('/debug/'.length) : undefined;
        const handler = name !== undefined && Object.hasOwn(o.debug, name) ? o.debug[name] : undefined;
        if (handler) {
          const r = handler(url.searchParams);
          return send(res, r.status ?? 200, JSON.stringify(r.body, null, 2) + '\n', 'application/json');
        }
        send(res, 404, `no such endpoint: ${path}\n`, 'text/plain');
      } catch (err) {
        o.log.error({ path, err: String(err) }, 'monitoring request failed');
        send(res, 500, `${String(err)}\n`, 'text/plain');
      }
    })();
  });
}
