// A plain HTTP GET made by the application inside a pod (so a capturing sidecar sees it as
// the app's outbound traffic): status and the backend's `x-backend` header, or the error.
import assert from 'node:assert/strict';
import type { Pod } from './netns.js';

const APP_GET = `
const http = require('node:http');
const [url, host] = process.argv.slice(1);
const req = http.get(url, { headers: host ? { host } : {}, timeout: 5000 }, (res) => {
  res.resume(); res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, backend: res.headers['x-backend'] || null })));
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => console.log(JSON.stringify({ error: String(e) })));
`;

export interface AppGetResult {
  status?: number;
  backend?: string | null;
  error?: string;
}

/** GET `url` from inside `pod`, with `host` as the Host header when given. */
export async function appGet(pod: Pod, url: string, host?: string): Promise<AppGetResult> {
  const r = await pod.exec([process.execPath, '-e', APP_GET, url, ...(host ? [host] : [])], { timeoutMs: 15_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as AppGetResult;
}
