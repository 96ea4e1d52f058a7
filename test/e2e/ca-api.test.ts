// Istio's CA API end to end: meshd on a real kube-apiserver with the manifests'
// least-privilege RBAC, callers authenticated with real service-account tokens from the
// TokenRequest API (audience istio-ca), CSRs made by openssl, over plaintext 15010 and over
// TLS 15012 (meshd's certificate verified against the mesh root). Refusals, the root kept
// in Secret istio-ca-secret across restarts, the root ConfigMap in every namespace, a
// plugged-in `cacerts` Secret, and no key material in /debug.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startKube, type KubeCluster, KubeApiError } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { startMeshd, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { opensslCsr, opensslIntermediateCa, opensslVerify } from '../support/openssl.js';
import { connectAds, istioNode, TypeUrl } from '../support/ads-client.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { loadKubeRoot } from '../../src/ca/kube-ca-store.js';
import { TokenReviewAuthenticator } from '../../src/ca/token-review.js';
import { AuthenticationError } from '../../src/ca/authenticate.js';
import { silentLogger } from '../../src/util/log.js';

const NS = 'apps';
const idOf = (ns: string, sa: string): string => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

// ---- an Istio CA client, from the .proto with @grpc/proto-loader (not meshd's codec) -------

const packageDefinition = protoLoader.loadSync(join(REPO_ROOT, 'protos', 'istio-ca.proto'), { keepCase: true, longs: Number, defaults: true });
const CaClient = (grpc.loadPackageDefinition(packageDefinition) as unknown as { istio: { v1: { auth: { IstioCertificateService: grpc.ServiceClientConstructor } } } }).istio.v1.auth.IstioCertificateService;

type CaResult = { ok: true; chain: string[] } | { ok: false; code: grpc.status; details: string };

interface CaTarget {
  address: string;
  credentials: grpc.ChannelCredentials;
  options?: grpc.ChannelOptions;
}

async function createCertificate(t: CaTarget, token: string | undefined, req: { csr: string; validity_duration?: number; metadata?: unknown }): Promise<CaResult> {
  const client = new CaClient(t.address, t.credentials, t.options);
  try {
    const md = new grpc.Metadata();
    if (token !== undefined) md.set('authorization', `Bearer ${token}`);
    return await new Promise<CaResult>((resolve) => {
      const call = client.CreateCertificate as (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { cert_chain: string[] }) => void) => void;
      call.call(client, req, md, { deadline: Date.now() + 15_000 }, (err, res) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, chain: res!.cert_chain }));
    });
  } finally {
    client.close();
  }
}

function expectRefused(r: CaResult, code: grpc.status, details?: RegExp): void {
  assert.equal(r.ok, false, `expected ${grpc.status[code]}, got a certificate`);
  if (r.ok) return;
  assert.equal(r.code, code, `expected ${grpc.status[code]}, got ${grpc.status[r.code]}: ${r.details}`);
  if (details) assert.match(r.details, details);
}

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A JWT with the same header and claims as `token` (optionally changed), signed with a key the apiserver never saw. */
function forgeJwt(token: string, claims: (c: Record<string, unknown>) => Record<string, unknown> = (c) => c): string {
  const [h, p] = token.split('.') as [string, string];
  const payload = Buffer.from(JSON.stringify(claims(JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>))).toString('base64url');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return `${h}.${payload}.${cryptoSign('sha256', Buffer.from(`${h}.${payload}`), privateKey).toString('base64url')}`;
}

interface Secret {
  data?: Record<string, string>;
}

describe('Istio CA API on a real kube-apiserver', () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let rootPem: string;
  let caKeyPem: string;

  const token = async (ns: string, sa: string, audiences = ['istio-ca']): Promise<string> =>
    (await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences, expirationSeconds: 600 } })).status.token;
  const createSa = (ns: string, name: string): Promise<unknown> => kube.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } });
  const plain = (): CaTarget => ({ address: `127.0.0.1:${meshd.grpcPort}`, credentials: grpc.credentials.createInsecure() });
  const tls = (root = rootPem, options?: grpc.ChannelOptions): CaTarget => ({ address: `127.0.0.1:${meshd.secureGrpcPort}`, credentials: grpc.credentials.createSsl(Buffer.from(root)), options });
  const startMeshdOnKube = (extraArgs: string[] = [], env: Record<string, string> = {}): Promise<MeshdProcess> =>
    startMeshd({ extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), ...extraArgs], env });
  const csrFor = (ns: string, sa: string, alg: 'ec-p256' | 'rsa-2048' = 'ec-p256'): string => opensslCsr({ alg, sans: [`URI:${idOf(ns, sa)}`] }).csrPem;

  before(async () => {
    kube = await startKube();
    const manifests = readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml'));
    await applyAll(kube, manifests);
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io']);
    await kube.createNamespace(NS);
    await createSa(NS, 'sleep');
    await createSa(NS, 'httpbin');
    meshd = await startMeshdOnKube();
    const secret = await kube.request<Secret>('GET', '/api/v1/namespaces/istio-system/secrets/istio-ca-secret');
    rootPem = Buffer.from(secret.data!['ca-cert.pem']!, 'base64').toString('utf8');
    caKeyPem = Buffer.from(secret.data!['ca-key.pem']!, 'base64').toString('utf8');
  });

  after(async () => {
    await meshd?.stop();
    await kube?.stop();
  });

  it('created its self-signed root in Secret istio-system/istio-ca-secret (EC P-256, O=cluster.local)', async () => {
    const root = new X509Certificate(rootPem);
    assert.equal(root.subject, 'O=cluster.local');
    assert.equal(root.ca, true);
    assert.ok(root.checkPrivateKey((await import('node:crypto')).createPrivateKey(caKeyPem)));
    assert.equal((await import('node:crypto')).createPrivateKey(caKeyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const metrics = (await meshd.monitoring('/metrics')).body;
    assert.match(metrics, new RegExp(`citadel_server_root_cert_expiry_timestamp ${Math.floor(new Date(root.validTo).getTime() / 1000)}\\b`));
  });

  it('over 15010: a good CSR is signed; the chain verifies to the root with the caller\'s SPIFFE ID', async () => {
    for (const alg of ['ec-p256', 'rsa-2048'] as const) {
      const r = await createCertificate(plain(), await token(NS, 'sleep'), { csr: csrFor(NS, 'sleep', alg), validity_duration: 3600 });
      assert.ok(r.ok, r.ok ? '' : `${grpc.status[r.code]}: ${r.details}`);
      assert.equal(r.chain.length, 2);
      assert.equal(r.chain[1], rootPem, 'the root last');
      const leaf = new X509Certificate(r.chain[0]!);
      assert.equal(leaf.subjectAltName, `URI:${idOf(NS, 'sleep')}`);
      const v = opensslVerify(rootPem, r.chain[0]!);
      assert.ok(v.ok, v.output);
      const life = (new Date(leaf.validTo).getTime() - Date.now()) / 1000;
      assert.ok(life > 3500 && life <= 3600, `1 h as asked, got ${life} s`);
    }
  });

  it('over 15012 (TLS, meshd\'s certificate checked against the root): CA and ADS', async () => {
    // By IP (the certificate names 127.0.0.1) and by istiod's service name.
    for (const options of [undefined, { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc', 'grpc.default_authority': 'istiod.istio-system.svc' }]) {
      const r = await createCertificate(tls(rootPem, options), await token(NS, 'httpbin'), { csr: csrFor(NS, 'httpbin') });
      assert.ok(r.ok, r.ok ? '' : `${grpc.status[r.code]}: ${r.details}`);
      assert.equal(new X509Certificate(r.chain[0]!).subjectAltName, `URI:${idOf(NS, 'httpbin')}`);
      assert.ok(opensslVerify(rootPem, r.chain[0]!).ok);
      // No lifetime asked: the 24 h default.
      const life = (new Date(new X509Certificate(r.chain[0]!).validTo).getTime() - Date.now()) / 1000;
      assert.ok(life > 86_300 && life <= 86_400, `24 h, got ${life} s`);
    }
    // A client trusting another root refuses meshd's certificate.
    const otherRoot = opensslIntermediateCa().rootCertPem;
    expectRefused(await createCertificate(tls(otherRoot), await token(NS, 'httpbin'), { csr: csrFor(NS, 'httpbin') }), grpc.status.UNAVAILABLE);
    // ADS is served on the same TLS port.
    const stream = connectAds(`127.0.0.1:${meshd.secureGrpcPort}`, { credentials: grpc.credentials.createSsl(Buffer.from(rootPem)) });
    try {
      stream.send({ node: istioNode({ namespace: NS }), type_url: TypeUrl.Cluster });
      const res = await stream.next(10_000);
      assert.ok(res.resources.some((x) => x.name === 'PassthroughCluster'), 'CDS over TLS');
    } finally {
      await stream.close();
    }
  });

  it('a lifetime beyond the maximum is cut to 90 days', async () => {
    const r = await createCertificate(plain(), await token(NS, 'sleep'), { csr: csrFor(NS, 'sleep'), validity_duration: 1000 * 86_400 });
    assert.ok(r.ok);
    const life = (new Date(new X509Certificate(r.chain[0]!).validTo).getTime() - Date.now()) / 1000;
    assert.ok(life > 90 * 86_400 - 100 && life <= 90 * 86_400, `90 days, got ${life / 86_400} days`);
  });

  it('a CSR for another identity: PERMISSION_DENIED', async () => {
    const t = await token(NS, 'sleep');
    expectRefused(await createCertificate(plain(), t, { csr: csrFor(NS, 'httpbin') }), grpc.status.PERMISSION_DENIED, /spiffe:\/\/cluster\.local\/ns\/apps\/sa\/httpbin; the caller may only request spiffe:\/\/cluster\.local\/ns\/apps\/sa\/sleep/);
    expectRefused(await createCertificate(plain(), t, { csr: csrFor('istio-system', 'istiod') }), grpc.status.PERMISSION_DENIED);
    expectRefused(await createCertificate(plain(), t, { csr: opensslCsr({ sans: [`URI:${idOf(NS, 'sleep')}`, `URI:${idOf(NS, 'httpbin')}`] }).csrPem }), grpc.status.PERMISSION_DENIED);
  });

  it('tokens that do not prove an identity for istio-ca: UNAUTHENTICATED', async () => {
    const csr = csrFor(NS, 'sleep');
    const good = await token(NS, 'sleep');
    // The apiserver's own audience, not istio-ca.
    expectRefused(await createCertificate(plain(), await token(NS, 'sleep', ['https://kubernetes.default.svc.cluster.local']), { csr }), grpc.status.UNAUTHENTICATED, /not accepted|audience/);
    // Signed by a key the apiserver does not know.
    expectRefused(await createCertificate(plain(), forgeJwt(good), { csr }), grpc.status.UNAUTHENTICATED, /not accepted/);
    // Expired (and forged: TokenRequest will not mint tokens shorter than 10 minutes).
    expectRefused(await createCertificate(plain(), forgeJwt(good, (c) => ({ ...c, exp: Math.floor(Date.now() / 1000) - 60 })), { csr }), grpc.status.UNAUTHENTICATED, /expired/);
    // A token whose service account was deleted since.
    await createSa(NS, 'doomed');
    const doomed = await token(NS, 'doomed');
    await kube.request('DELETE', `/api/v1/namespaces/${NS}/serviceaccounts/doomed`);
    expectRefused(await createCertificate(plain(), doomed, { csr: csrFor(NS, 'doomed') }), grpc.status.UNAUTHENTICATED, /not accepted/);
    // No token, not a bearer token, garbage.
    expectRefused(await createCertificate(plain(), undefined, { csr }), grpc.status.UNAUTHENTICATED, /no authorization header/);
    expectRefused(await createCertificate(plain(), 'not-a-jwt', { csr }), grpc.status.UNAUTHENTICATED, /not accepted/);
    // A user, not a service account.
    expectRefused(await createCertificate(plain(), kube.adminToken, { csr }), grpc.status.UNAUTHENTICATED, /"admin" is not a service account/);
    // The good token still works: nothing above poisoned anything.
    assert.ok((await createCertificate(plain(), good, { csr })).ok);
  });

  it('garbage and oversized requests: INVALID_ARGUMENT and RESOURCE_EXHAUSTED', async () => {
    const t = await token(NS, 'sleep');
    expectRefused(await createCertificate(plain(), t, { csr: 'hello, CA' }), grpc.status.INVALID_ARGUMENT, /invalid CSR: not a PEM-encoded CERTIFICATE REQUEST/);
    expectRefused(await createCertificate(plain(), t, { csr: '' }), grpc.status.INVALID_ARGUMENT, /csr is empty/);
    const der = Buffer.from(csrFor(NS, 'sleep').replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der.writeUInt8(der.readUInt8(der.length - 1) ^ 0x01, der.length - 1);
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expectRefused(await createCertificate(plain(), t, { csr: bad }), grpc.status.INVALID_ARGUMENT, /invalid CSR: the signature does not verify/);
    expectRefused(await createCertificate(plain(), t, { csr: 'x'.repeat(100 * 1024) }), grpc.status.INVALID_ARGUMENT, /larger than the 65536 bytes allowed/);
    expectRefused(await createCertificate(plain(), t, { csr: 'x'.repeat(300 * 1024) }), grpc.status.RESOURCE_EXHAUSTED, /larger than the 262144 bytes allowed/);
    expectRefused(await createCertificate(plain(), t, { csr: csrFor(NS, 'sleep'), validity_duration: -5 }), grpc.status.INVALID_ARGUMENT, /not a positive number of seconds/);
  });

  it('counts requests under Istio\'s metric names', async () => {
    const metric = (text: string, name: string): number => Number(new RegExp(`^${name.replace(/[{}"=]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const before = (await meshd.monitoring('/metrics')).body;
    const t = await token(NS, 'sleep');
    assert.ok((await createCertificate(plain(), t, { csr: csrFor(NS, 'sleep') })).ok);
    expectRefused(await createCertificate(plain(), t, { csr: csrFor(NS, 'httpbin') }), grpc.status.PERMISSION_DENIED);
    expectRefused(await createCertificate(plain(), t, { csr: 'garbage' }), grpc.status.INVALID_ARGUMENT);
    expectRefused(await createCertificate(plain(), 'nope', { csr: 'garbage' }), grpc.status.UNAUTHENTICATED);
    const afterText = (await meshd.monitoring('/metrics')).body;
    const delta = (name: string): number => metric(afterText, name) - metric(before, name);
    assert.equal(delta('citadel_server_csr_count'), 4);
    assert.equal(delta('citadel_server_success_cert_issuance_count'), 1);
    assert.equal(delta('citadel_server_authentication_failure_count'), 1);
    assert.equal(delta('citadel_server_csr_parsing_err_count'), 1);
    assert.equal(delta('citadel_server_csr_sign_err_count{error="PERMISSION_DENIED"}'), 1);
  });

  it('the authenticator reviews a token once, then reuses the review', async () => {
    const conn = loadKubeConfig(kube.kubeconfig(kube.meshdToken));
    const auth = new TokenReviewAuthenticator({ conn, log: silentLogger });
    const t = await token(NS, 'sleep');
    assert.deepEqual(await auth.authenticate(`Bearer ${t}`), { namespace: NS, serviceAccount: 'sleep' });
    assert.deepEqual(await auth.authenticate(`bearer ${t}`), { namespace: NS, serviceAccount: 'sleep' });
    assert.equal(auth.reviews, 1);
    const wrongAudience = await token(NS, 'sleep', ['https://kubernetes.default.svc.cluster.local']);
    await assert.rejects(auth.authenticate(`Bearer ${wrongAudience}`), (e: unknown) => e instanceof AuthenticationError && e.grpcStatus === grpc.status.UNAUTHENTICATED);
    await assert.rejects(auth.authenticate(`Bearer ${wrongAudience}`), AuthenticationError);
    assert.equal(auth.reviews, 3, 'refusals are not cached');
  });

  it('publishes the root as ConfigMap istio-ca-root-cert in every namespace, new ones included, and puts it back when deleted', async () => {
    const rootIn = (ns: string) => async (): Promise<string | undefined> => {
      const cm = await kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${ns}/configmaps/istio-ca-root-cert`);
      return cm.data?.['root-cert.pem'] === rootPem ? 'ok' : undefined;
    };
    for (const ns of ['default', NS, 'istio-system']) await waitFor(`root ConfigMap in ${ns}`, rootIn(ns));
    await kube.createNamespace('fresh');
    await waitFor('root ConfigMap in the new namespace', rootIn('fresh'));
    await kube.request('DELETE', '/api/v1/namespaces/fresh/configmaps/istio-ca-root-cert');
    await waitFor('root ConfigMap put back', rootIn('fresh'));
    await kube.request('PUT', `/api/v1/namespaces/${NS}/configmaps/istio-ca-root-cert`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio-ca-root-cert', namespace: NS }, data: { 'root-cert.pem': 'tampered' } });
    await waitFor('root ConfigMap repaired', rootIn(NS));
    await assert.rejects(kube.request('GET', '/api/v1/namespaces/kube-system/configmaps/istio-ca-root-cert'), (e: unknown) => e instanceof KubeApiError && e.status === 404, 'kube-system is left alone');
  });

  it('no key material in /debug/* or the log', async () => {
    const keyBody = caKeyPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    const needles = [keyBody.slice(0, 40), keyBody.slice(-40), Buffer.from(caKeyPem).toString('base64').slice(0, 40), 'PRIVATE KEY'];
    const index = JSON.parse((await meshd.monitoring('/debug')).body) as { endpoints: string[] };
    assert.ok(index.endpoints.includes('/debug/caz'));
    for (const path of [...index.endpoints, '/debug/configz?kind=Secret', '/debug/config_dump?proxyID=x']) {
      const body = (await meshd.monitoring(path)).body;
      for (const n of needles) assert.ok(!body.includes(n), `${path} shows key material`);
    }
    const caz = JSON.parse((await meshd.monitoring('/debug/caz')).body) as { rootCertPem: string; source: string };
    assert.equal(caz.rootCertPem, rootPem);
    assert.equal(caz.source, 'Secret istio-system/istio-ca-secret');
    for (const n of needles) assert.ok(!meshd.logs().includes(n), 'the log shows key material');
  });

  it('a restarted meshd keeps the same root (Secret istio-ca-secret)', async () => {
    await meshd.stop();
    meshd = await startMeshdOnKube();
    const r = await createCertificate(tls(), await token(NS, 'sleep'), { csr: csrFor(NS, 'sleep') });
    assert.ok(r.ok, r.ok ? '' : r.details);
    assert.equal(r.chain[r.chain.length - 1], rootPem);
    assert.ok(meshd.records().some((x) => x.msg === 'certificate authority ready' && x.source === 'Secret istio-system/istio-ca-secret'));
    assert.ok(!meshd.records().some((x) => x.msg === 'no CA root in the cluster: generating a self-signed root'));
  });

  it('replicas racing to create the root all end with the winner\'s', async () => {
    await kube.createNamespace('race');
    const conn = loadKubeConfig(kube.kubeconfig(kube.adminToken));
    const results = await Promise.all([0, 1, 2].map(() => loadKubeRoot({ conn, namespace: 'race', keyType: 'ec-p256', trustDomain: 'cluster.local', log: silentLogger })));
    assert.equal(results.filter((r) => r.created).length, 1, 'one replica created it');
    assert.equal(new Set(results.map((r) => r.material.caCertPem)).size, 1, 'all use the same root');
    const stored = await kube.request<Secret>('GET', '/api/v1/namespaces/race/secrets/istio-ca-secret');
    assert.equal(Buffer.from(stored.data!['ca-cert.pem']!, 'base64').toString('utf8'), results[0]!.material.caCertPem);
  });

  it('a plugged-in `cacerts` Secret (intermediate CA) wins over istio-ca-secret: leaf, intermediate, root', async () => {
    await meshd.stop();
    const o = opensslIntermediateCa();
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    await kube.request('POST', '/api/v1/namespaces/istio-system/secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'cacerts', namespace: 'istio-system' },
      data: { 'ca-cert.pem': b64(o.caCertPem), 'ca-key.pem': b64(o.caKeyPem), 'root-cert.pem': b64(o.rootCertPem), 'cert-chain.pem': b64(o.certChainPem) },
    });
    meshd = await startMeshdOnKube();
    const r = await createCertificate(tls(o.rootCertPem), await token(NS, 'sleep'), { csr: csrFor(NS, 'sleep') });
    assert.ok(r.ok, r.ok ? '' : r.details);
    assert.equal(r.chain.length, 3);
    assert.equal(new X509Certificate(r.chain[1]!).fingerprint256, new X509Certificate(o.caCertPem).fingerprint256);
    assert.equal(new X509Certificate(r.chain[2]!).fingerprint256, new X509Certificate(o.rootCertPem).fingerprint256);
    const v = opensslVerify(o.rootCertPem, r.chain[0]!, [r.chain[1]!]);
    assert.ok(v.ok, v.output);
    const rootIn = async (): Promise<string | undefined> => {
      const cm = await kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${NS}/configmaps/istio-ca-root-cert`);
      return new X509Certificate(cm.data?.['root-cert.pem'] ?? '').fingerprint256 === new X509Certificate(o.rootCertPem).fingerprint256 ? 'ok' : undefined;
    };
    await waitFor('the plugged-in root published', rootIn);
  });
});

describe('Istio CA API without a cluster', () => {
  let meshd: MeshdProcess;
  before(async () => {
    meshd = await startMeshd({ files: {} });
  });
  after(async () => {
    await meshd?.stop();
  });

  it('is served, but refuses every caller with UNAUTHENTICATED and says why', async () => {
    const csr = opensslCsr({ sans: [`URI:${idOf('default', 'sleep')}`] }).csrPem;
    const r = await createCertificate({ address: `127.0.0.1:${meshd.grpcPort}`, credentials: grpc.credentials.createInsecure() }, 'a.b.c', { csr });
    expectRefused(r, grpc.status.UNAUTHENTICATED, /no Kubernetes API to review tokens/);
    const caz = JSON.parse((await meshd.monitoring('/debug/caz')).body) as { source: string; rootCertPem: string };
    assert.match(caz.source, /^self-signed/);
    // The TLS port still serves, with a certificate from this root.
    const tlsR = await createCertificate({ address: `127.0.0.1:${meshd.secureGrpcPort}`, credentials: grpc.credentials.createSsl(Buffer.from(caz.rootCertPem)) }, 'a.b.c', { csr });
    expectRefused(tlsR, grpc.status.UNAUTHENTICATED);
  });
});
