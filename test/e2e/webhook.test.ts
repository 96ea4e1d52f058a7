/**
 * meshd's webhook port (15017) as a client sees it: HTTPS with meshd's certificate for
 * istiod.<ns>.svc, admission reviews in and out, and every hostile request refused with a
 * 4xx without disturbing the next one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { startMeshd, type MeshdProcess } from '../support/meshd.js';
import { metricValue } from '../support/poll.js';

interface Answer {
  status: number;
  body: string;
}

describe('the webhook port', () => {
  let meshd: MeshdProcess;
  let port: number;
  let rootPem: string;
  const post = (path: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }, method = 'POST'): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, servername: 'istiod.istio-system.svc', ca: rootPem, headers, timeout: 10_000 }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const review = (object: unknown, namespace = 'apps', extra: Record<string, unknown> = {}): string =>
    JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace, object, ...extra } });
  const pod = (labels: Record<string, string> = {}): Record<string, unknown> => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'apps', labels: { app: 'web', ...labels } },
    spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 80 }] }] },
  });

  before(async () => {
    meshd = await startMeshd({
      files: {
        'ns.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: apps, labels: {istio-injection: enabled}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n',
      },
    });
    port = Number(String(meshd.records().find((r) => r.msg === 'meshd serving')?.webhooks).split(':').pop());
    rootPem = (JSON.parse((await meshd.monitoring('/debug/caz')).body) as { rootCertPem: string }).rootCertPem;
  });
  after(async () => {
    await meshd?.stop();
  });

  it('injects a Pod of a labelled namespace, as a JSON Patch, over TLS verified against meshd\'s root for istiod.istio-system.svc', async () => {
    const r = await post('/inject', review(pod()));
    assert.equal(r.status, 200, r.body);
    const res = (JSON.parse(r.body) as { response: { uid: string; allowed: boolean; patchType?: string; patch?: string } }).response;
    assert.equal(res.uid, 'u-1');
    assert.equal(res.allowed, true);
    assert.equal(res.patchType, 'JSONPatch');
    const patch = JSON.parse(Buffer.from(res.patch!, 'base64').toString()) as { op: string; path: string; value: unknown }[];
    const containers = patch.find((p) => p.path === '/spec/containers')?.value as { name: string }[];
    assert.deepEqual(containers.map((c) => c.name).sort(), ['istio-proxy', 'web']);
    assert.ok(patch.some((p) => p.path === '/spec/initContainers'));
    assert.ok(patch.some((p) => p.path.startsWith('/metadata/annotations')));
  });

  it('leaves alone a Pod that opts out, and one in an unlabelled namespace', async () => {
    for (const body of [review(pod({ 'sidecar.istio.io/inject': 'false' })), review({ ...pod(), metadata: { name: 'p', namespace: 'plain' } }, 'plain')]) {
      const res = (JSON.parse((await post('/inject', body)).body) as { response: { allowed: boolean; patch?: string } }).response;
      assert.equal(res.allowed, true);
      assert.equal(res.patch, undefined);
    }
  });

  it('refuses garbage, wrong kinds, wrong methods, oversized and unknown paths with a 4xx, and keeps serving', async () => {
    const cases: [string, Promise<Answer>, number][] = [
      ['not JSON', post('/inject', '{{{'), 400],
      ['not a review', post('/inject', JSON.stringify({ hello: 'world' })), 400],
      ['no uid', post('/inject', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' }, operation: 'CREATE' } })), 400],
      ['text/plain', post('/inject', review(pod()), { 'content-type': 'text/plain' }), 415],
      ['GET', post('/inject', '', {}, 'GET'), 405],
      ['unknown path', post('/constructor', review(pod())), 404],
      ['__proto__', post('/__proto__', review(pod())), 404],
      ['7 MiB', post('/inject', Buffer.alloc(7 * 1024 * 1024, 32)), 413],
    ];
    for (const [what, answer, status] of cases) assert.equal((await answer).status, status, what);
    // A Pod object that is not one is refused in the review, not with a crash.
    const bad = JSON.parse((await post('/inject', review({ spec: 'nope' }))).body) as { response: { allowed: boolean; status: { message: string } } };
    assert.equal(bad.response.allowed, false);
    const ok = await post('/inject', review(pod()));
    assert.equal(ok.status, 200);
    const metrics = (await meshd.monitoring('/metrics')).body;
    assert.ok(metricValue(metrics, 'sidecar_injection_success_total') >= 2);
    assert.ok(metricValue(metrics, 'sidecar_injection_failure_total') >= 1);
  });

  it('drops a client that sends its headers too slowly', async () => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'istiod.istio-system.svc', ca: rootPem });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', () => resolve()).once('error', reject));
    socket.write('POST /inject HTTP/1.1\r\nHost: x\r\n');
    const closed = await new Promise<number>((resolve) => {
      const start = Date.now();
      socket.on('data', () => undefined);
      socket.once('close', () => resolve(Date.now() - start));
      socket.on('error', () => undefined);
    });
    assert.ok(closed < 15_000, `closed after ${closed} ms`);
    assert.equal((await post('/inject', review(pod()))).status, 200, 'others are still served');
  });
});
