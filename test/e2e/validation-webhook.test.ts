/**
 * meshd's validating webhook (`/validate`) as the real apiserver calls it: an invalid
 * VirtualService is refused at create with meshd's message naming the field, a valid one is
 * stored (with admission warnings when it names a subset or host that does not exist yet), the leader patches the ValidatingWebhookConfiguration's caBundle, and garbage sent
 * to /validate gets a 4xx while meshd keeps serving.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { freePort } from '../support/backends.js';
import { KubeApiError, startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { REPO_ROOT, startMeshd, type MeshdProcess } from '../support/meshd.js';
import { meshdRootCert } from '../support/pilot-agent.js';
import { eventually } from '../support/poll.js';

const NS = 'apps';
const VWC_PATH = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istio-validator-istio-system';
const VS_PATH = `/apis/networking.istio.io/v1/namespaces/${NS}/virtualservices`;

const virtualService = (name: string, weights: number[]): Record<string, unknown> => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name, namespace: NS },
  spec: { hosts: ['reviews'], http: [{ route: weights.map((weight, i) => ({ destination: { host: 'reviews', subset: `v${i + 1}` }, weight })) }] },
});

describe('the validating webhook, called by the real apiserver', () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let webhookPort: number;
  let rootPem: string;

  const post = (body: string | Buffer): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: webhookPort, path: '/validate', method: 'POST', servername: 'istiod.istio-system.svc', ca: rootPem, headers: { 'content-type': 'application/json' }, timeout: 10_000 }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io']);
    // As manifests/base has it, but with a URL (the test apiserver has no cluster network; see
    // injection.test.ts) and failurePolicy Fail, so that a webhook not called fails the test.
    webhookPort = await freePort();
    const vwc = readManifests(join(REPO_ROOT, 'manifests', 'base', 'webhooks.yaml')).find((o) => o.kind === 'ValidatingWebhookConfiguration');
    assert.ok(vwc, 'the manifests have the ValidatingWebhookConfiguration');
    const hooks = (vwc as unknown as { webhooks: { clientConfig: Record<string, unknown>; failurePolicy: string }[] }).webhooks;
    assert.deepEqual(hooks.map((h) => h.failurePolicy), ['Ignore']);
    for (const h of hooks) {
      h.clientConfig = { url: `https://127.0.0.1:${webhookPort}/validate` };
      h.failurePolicy = 'Fail';
    }
    await kube.apply(VWC_PATH, vwc);
    await kube.createNamespace(NS);
    meshd = await startMeshd({ webhookPort, extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--grpc-addr', '127.0.0.1:0', '--secure-grpc-addr', '127.0.0.1:0'] });
    rootPem = await meshdRootCert(meshd);
  });

  after(async () => {
    await meshd?.stop();
    await kube?.stop();
  });

  it('meshd, the leader, patches the validating configuration\'s caBundle with its root', async () => {
    const bundle = Buffer.from(rootPem).toString('base64');
    const cfg = await eventually('the caBundle on the validating webhook', async () => {
      const c = await kube.request<{ webhooks: { clientConfig: { caBundle?: string; url?: string } }[] }>('GET', VWC_PATH);
      return c.webhooks.every((w) => w.clientConfig.caBundle === bundle) ? c : undefined;
    }, 20_000);
    assert.equal(cfg.webhooks[0]!.clientConfig.url, `https://127.0.0.1:${webhookPort}/validate`);
  });

  it('refuses a VirtualService whose weights sum to 130, with meshd\'s message naming the field', async () => {
    const err = await kube.request('POST', VS_PATH, virtualService('bad', [80, 50])).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof KubeApiError, `refused: ${String(err)}`);
    assert.equal(err.status, 400);
    assert.match(err.message, /denied the request: Error \[IST0106\] \(VirtualService apps\/bad\) Schema validation error: spec\.http\[0\]\.route/);
    assert.match(err.message, /130/);
    await assert.rejects(kube.request('GET', `${VS_PATH}/bad`), (e) => e instanceof KubeApiError && e.status === 404);
  });

  it('stores a valid VirtualService, and refuses an update that breaks it', async () => {
    const stored = await kube.request<{ metadata: { name: string; resourceVersion: string } }>('POST', VS_PATH, virtualService('good', [80, 20]));
    assert.equal(stored.metadata.name, 'good');
    const broken = { ...virtualService('good', [80, 50]), metadata: { name: 'good', namespace: NS, resourceVersion: stored.metadata.resourceVersion } };
    await assert.rejects(kube.request('PUT', `${VS_PATH}/good`, broken), (e) => e instanceof KubeApiError && /\(VirtualService apps\/good\) Schema validation error: spec\.http\[0\]\.route/.test(e.message));
  });

  it('stores a valid VirtualService naming a subset and a host that do not exist yet, and returns the warnings', async () => {
    const r = await kube.requestRaw('POST', VS_PATH, virtualService('warned', [100]));
    assert.equal(r.status, 201, r.text);
    // The apiserver passes admission warnings on in Warning headers (299), as kubectl prints them.
    const header = String(r.headers.warning ?? '');
    assert.match(header, /Warning \[IST0101\] \(VirtualService apps\/warned\) Referenced host\+subset in destinationrule not found: \\?"reviews\+v1\\?"/);
    assert.match(header, /Warning \[IST0101\] \(VirtualService apps\/warned\) Referenced host not found: \\?"reviews\\?"/);
    const stored = await kube.request<{ metadata: { name: string } }>('GET', `${VS_PATH}/warned`);
    assert.equal(stored.metadata.name, 'warned');
  });

  it('answers garbage and oversized requests to /validate with a 4xx, and keeps serving', async () => {
    assert.equal((await post('{{{')).status, 400);
    assert.equal((await post(JSON.stringify({ hello: 'world' }))).status, 400);
    const big = await post(Buffer.alloc(7 * 1024 * 1024, 32));
    assert.equal(big.status, 413);
    const ok = await kube.request<{ metadata: { name: string } }>('POST', VS_PATH, virtualService('after-garbage', [100]));
    assert.equal(ok.metadata.name, 'after-garbage');
  });
});
