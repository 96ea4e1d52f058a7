/**
 * The webhook port (/validate) against hostile clients: garbage, the wrong content type or
 * AdmissionReview version, bodies over the bound (declared or streamed), clients that
 * trickle their headers or body or never finish the TLS handshake, and an object with a
 * great many errors. Each is answered with a 4xx or cut off, and a good review sent while
 * they hang on is answered.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { generateSelfSignedRoot, loadRootOfTrust } from '../../src/ca/root-of-trust.js';
import { CertificateAuthority } from '../../src/ca/ca.js';
import { ServingCertificate } from '../../src/ca/serving-cert.js';
import { startWebhookServer, type WebhookServer } from '../../src/webhooks/https-server.js';
import { validateWebhook } from '../../src/webhooks/validate.js';
import { MAX_MESSAGE_CHARS } from '../../src/webhooks/admission.js';
import { silentLogger } from '../../src/util/log.js';

const MAX_BODY = 64 * 1024;
const SERVERNAME = 'istiod.istio-system.svc';

const review = (object: unknown, apiVersion = 'admission.k8s.io/v1'): Record<string, unknown> => ({
  apiVersion,
  kind: 'AdmissionReview',
  request: { uid: 'u1', kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }, namespace: 'apps', operation: 'CREATE', object },
});
const virtualService = (http: unknown[]): Record<string, unknown> => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'apps' }, spec: { hosts: ['reviews'], http } });
const GOOD = JSON.stringify(review(virtualService([{ route: [{ destination: { host: 'reviews' } }] }])));

describe('the webhook port against hostile clients', () => {
  let server: WebhookServer;
  let cert: ServingCertificate;
  let rootPem: string;

  const post = (body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }, method = 'POST', path = '/validate'): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: server.port, path, method, servername: SERVERNAME, ca: rootPem, headers, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });

  /** A good review is answered (allowed) right now. */
  const stillServes = async (): Promise<void> => {
    const r = await post(GOOD);
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { response: { allowed: boolean } }).response.allowed, true);
  };

  const tls = (): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: server.port, servername: SERVERNAME, ca: rootPem }, () => resolve(s));
      s.on('error', reject);
    });

  /** Resolves with what the server sent once it closes the connection. */
  const closed = (s: Socket): Promise<string> =>
    new Promise((resolve) => {
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.on('error', () => undefined);
      s.on('close', () => resolve(got));
    });

  /** Writes `text` one byte every 100 ms until the socket closes. */
  const trickle = (s: Socket, text: string): void => {
    let i = 0;
    const timer = setInterval(() => {
      if (s.destroyed || s.writableEnded) return clearInterval(timer);
      s.write(text[i++ % text.length]!);
    }, 100);
    s.on('close', () => clearInterval(timer));
  };

  before(async () => {
    const ca = new CertificateAuthority({ rootOfTrust: loadRootOfTrust(generateSelfSignedRoot({ keyType: 'ec-p256', trustDomain: 'cluster.local' }), 'test'), trustDomain: 'cluster.local', source: 'test' });
    rootPem = ca.rootCertPem;
    cert = new ServingCertificate({ ca, dnsNames: [SERVERNAME], ipAddresses: ['127.0.0.1'], ttlSeconds: 3600, log: silentLogger });
    await cert.start();
    server = await startWebhookServer({ host: '127.0.0.1', port: 0, servingCert: cert, handlers: { '/validate': validateWebhook({ log: silentLogger }) }, log: silentLogger, maxBodyBytes: MAX_BODY, requestTimeoutMs: 1500 });
  });

  after(async () => {
    await server?.stop();
    cert?.stop();
  });

  it('answers garbage bodies with 400 naming what is wrong', async () => {
    const nested = '['.repeat(30_000) + ']'.repeat(30_000);
    for (const body of ['{{{', '', 'null', '[]', '"text"', '42', nested, Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x7b])]) {
      const r = await post(body);
      assert.equal(r.status, 400, `${String(body).slice(0, 20)}: ${r.body}`);
      assert.match(r.body, /not JSON|not a JSON object|expected apiVersion/);
    }
    for (const body of [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'x'.repeat(1000), kind: { kind: 'VirtualService' }, operation: 'CREATE' } }]) {
      assert.equal((await post(JSON.stringify(body))).status, 400);
    }
    await stillServes();
  });

  it('refuses the wrong content type (415), method (405), path (404) and AdmissionReview version (400)', async () => {
    assert.equal((await post(GOOD, { 'content-type': 'text/plain' })).status, 415);
    assert.equal((await post(GOOD, {})).status, 415);
    assert.equal((await post('', {}, 'GET')).status, 405);
    const nowhere = await post(GOOD, { 'content-type': 'application/json' }, 'POST', `/${'x'.repeat(5000)}`);
    assert.equal(nowhere.status, 404);
    assert.ok(nowhere.body.length < 400, 'the path is not echoed whole');
    const beta = await post(JSON.stringify(review(virtualService([]), 'admission.k8s.io/v1beta1')));
    assert.equal(beta.status, 400);
    assert.match(beta.body, /expected apiVersion admission\.k8s\.io\/v1.*got "admission\.k8s\.io\/v1beta1"/);
  });

  it('refuses a body over the bound, declared (413 before reading) or streamed without a length (413 at the bound; a body never finished is cut at the request timeout)', async () => {
    const declared = await post(Buffer.alloc(MAX_BODY + 1, 32));
    assert.equal(declared.status, 413);
    const s = await tls();
    const done = closed(s);
    s.write('POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = Buffer.alloc(16 * 1024, 32);
    for (let i = 0; i < 8; i++) s.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
    const got = await done;
    assert.match(got, /^HTTP\/1\.1 413 /);
    assert.match(got, /over 65536 bytes/);
    await stillServes();
  });

  it('cuts off clients that trickle their headers, trickle their body, or never finish the TLS handshake; a good review is answered meanwhile', async () => {
    const headers = await tls();
    const headersClosed = closed(headers);
    headers.write('POST /validate HTTP/1.1\r\nHost: x\r\n');
    trickle(headers, 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n');
    const body = await tls();
    const bodyClosed = closed(body);
    body.write(`POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${GOOD.length}\r\n\r\n`);
    trickle(body, GOOD);
    const raw = tcpConnect({ host: '127.0.0.1', port: server.port });
    const rawClosed = closed(raw);
    // While all three hang on, the port serves others.
    await stillServes();
    const [h, b] = await Promise.all([headersClosed, bodyClosed, rawClosed]);
    assert.doesNotMatch(h, /HTTP\/1\.1 200/);
    assert.doesNotMatch(b, /HTTP\/1\.1 200/);
    await stillServes();
  });

  it('bounds the refusal of an object with a great many long errors, and answers it whole', async () => {
    // Each regex is quoted back in its error; 40 of them, 1000 characters each.
    const http = Array.from({ length: 40 }, (_, i) => ({ match: [{ uri: { regex: `${'('.repeat(1000)}${i}` } }], route: [{ destination: { host: 'reviews' } }] }));
    const r = await post(JSON.stringify(review(virtualService(http))));
    assert.equal(r.status, 200);
    const response = (JSON.parse(r.body) as { response: { allowed: boolean; status: { message: string } } }).response;
    assert.equal(response.allowed, false);
    assert.ok(response.status.message.length <= MAX_MESSAGE_CHARS + 100, `message of ${response.status.message.length} characters`);
    assert.match(response.status.message, /spec\.http\[0\]\.match\[0\]\.uri\.regex/);
    assert.match(response.status.message, /more characters\]$/);
    await stillServes();
  });
});
