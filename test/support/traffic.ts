// Traffic through a real Envoy while something fails: a request loop that counts failures,
// and a count of which backend answered.
import { httpGet } from './envoy.js';

export interface Loop {
  stop(): Promise<{ ok: number; failed: number; errors: string[]; byBackend: Map<string, number> }>;
}

/** Sends requests back to back until stopped, counting failures. */
export function trafficLoop(port: number, host: string): Loop {
  let running = true;
  const byBackend = new Map<string, number>();
  const errors: string[] = [];
  let ok = 0;
  let failed = 0;
  const done = (async () => {
    while (running) {
      try {
        const r = await httpGet(`http://127.0.0.1:${port}/loop`, { headers: { host }, timeoutMs: 5000 });
        if (r.status === 200) {
          ok++;
          const b = r.headers['x-backend'] ?? '?';
          byBackend.set(b, (byBackend.get(b) ?? 0) + 1);
        } else {
          failed++;
          errors.push(`HTTP ${r.status}`);
        }
      } catch (err) {
        failed++;
        errors.push(String(err));
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { ok, failed, errors: errors.slice(0, 10), byBackend };
    },
  };
}

/** Sends `n` requests and counts the answers by backend (x-backend), failures as fail-<status>. */
export async function spread(port: number, host: string, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await httpGet(`http://127.0.0.1:${port}/`, { headers: { host }, timeoutMs: 5000 }).catch(() => undefined);
    const who = r?.status === 200 ? (r.headers['x-backend'] ?? '?') : `fail-${r?.status ?? 'error'}`;
    seen.set(who, (seen.get(who) ?? 0) + 1);
  }
  return seen;
}
