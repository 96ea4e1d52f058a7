/**
 * meshd's validating webhook (`/validate`) as the real apiserver calls it: the leader patches
 * the ValidatingWebhookConfiguration's caBundle and, once a dry run proves the webhook refuses
 * invalid config, switches it from the shipped failurePolicy Ignore to Fail (and puts Fail
 * back after a hand edit); an invalid VirtualService is refused at create with meshd's
 * message naming the field, a valid one is stored (with admission warnings when it names a
 * subset or host that does not exist yet); garbage sent to /validate gets a 4xx while
 * meshd keeps serving; and after a restart with a new CA root both webhook configurations
 * carry the new root and the webhook refuses and admits as before.
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
import { eventually, metricValue } from '../support/poll.js';

const NS = 'apps';
const VWC_PATH = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istio-validator-istio-system';
const MWC_PATH = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector';
const CA_SECRET_PATH = '/api/v1/namespaces/istio-system/secrets/istio-ca-secret';

interface WebhookConfig {
  metadata: { resourceVersion: string };
  webhooks: { name: string; failurePolicy: string; clientConfig: { caBundle?: string; url?: string } }[];
}
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

  const startMeshdHere = (): Promise<MeshdProcess> =>
    startMeshd({ webhookPort, extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--grpc-addr', '127.0.0.1:0', '--secure-grpc-addr', '127.0.0.1:0'] });

  /** Both configurations once every webhook has `bundle` (and, for the validator, failurePolicy Fail). */
  const patched = (bundle: string): Promise<{ vwc: WebhookConfig; mwc: WebhookConfig }> =>
    eventually('caBundle on both configurations, and the validator at failurePolicy Fail', async () => {
      const [vwc, mwc] = await Promise.all([kube.request<WebhookConfig>('GET', VWC_PATH), kube.request<WebhookConfig>('GET', MWC_PATH)]);
      const ok = [...vwc.webhooks, ...mwc.webhooks].every((w) => w.clientConfig.caBundle === bundle) && vwc.webhooks.every((w) => w.failurePolicy === 'Fail');
      return ok ? { vwc, mwc } : undefined;
    }, 60_000);

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io', 'telemetries.telemetry.istio.io']);
    // As manifests/base has them (the validator at failurePolicy Ignore, as Istio ships it),
    // but with a URL: the test apiserver has no cluster network (see injection.test.ts).
    webhookPort = await freePort();
    const configs = readManifests(join(REPO_ROOT, 'manifests', 'base', 'webhooks.yaml'));
    const vwc = configs.find((o) => o.kind === 'ValidatingWebhookConfiguration');
    const mwc = configs.find((o) => o.kind === 'MutatingWebhookConfiguration');
    assert.ok(vwc && mwc, 'the manifests have both webhook configurations');
    const hooks = (vwc as unknown as { webhooks: { clientConfig: Record<string, unknown>; failurePolicy: string }[] }).webhooks;
    assert.deepEqual(hooks.map((h) => h.failurePolicy), ['Ignore']);
    for (const h of hooks) h.clientConfig = { url: `https://127.0.0.1:${webhookPort}/validate` };
    for (const h of (mwc as unknown as { webhooks: { clientConfig: Record<string, unknown> }[] }).webhooks) h.clientConfig = { url: `https://127.0.0.1:${webhookPort}/inject` };
    await kube.apply(VWC_PATH, vwc);
    await kube.apply(MWC_PATH, mwc);
    await kube.createNamespace(NS);
    meshd = await startMeshdHere();
    rootPem = await meshdRootCert(meshd);
  });

  after(async () => {
    await meshd?.stop();
    await kube?.stop();
  });

  it('meshd, the leader, patches the caBundle, proves the webhook with a dry run, then switches the validator to failurePolicy Fail', async () => {
    const { vwc, mwc } = await patched(Buffer.from(rootPem).toString('base64'));
    assert.equal(vwc.webhooks[0]!.clientConfig.url, `https://127.0.0.1:${webhookPort}/validate`);
    assert.ok(mwc.webhooks.every((w) => w.failurePolicy === 'Fail'), 'the injector is Fail as shipped');
    // The proof came first, and the dry run stored nothing.
    const proven = meshd.records().findIndex((r) => String(r.msg).startsWith('the apiserver called the validating webhook and it refused invalid config'));
    const flipped = meshd.records().findIndex((r) => String(r.msg).startsWith('set failurePolicy Fail'));
    assert.ok(proven >= 0 && flipped > proven, `proof logged before the switch:\n${meshd.logs().slice(-3000)}`);
    await assert.rejects(kube.request('GET', '/apis/networking.istio.io/v1/namespaces/istio-system/gateways/invalid-gateway'), (e) => e instanceof KubeApiError && e.status === 404);
    const metrics = (await meshd.monitoring('/metrics')).body;
    assert.equal(metricValue(metrics, 'meshd_validation_fail_closed'), 1);
    assert.equal(metricValue(metrics, 'meshd_validation_failure_policy_patches_total', { configuration: 'istio-validator-istio-system' }), 1);
  });

  it('puts failurePolicy Fail back after a hand edit to Ignore, and counts it', async () => {
    const cur = await kube.request<WebhookConfig & Record<string, unknown>>('GET', VWC_PATH);
    await kube.request('PUT', VWC_PATH, { ...cur, webhooks: cur.webhooks.map((w) => ({ ...w, failurePolicy: 'Ignore' })) });
    await eventually('failurePolicy Fail again', async () => ((await kube.request<WebhookConfig>('GET', VWC_PATH)).webhooks.every((w) => w.failurePolicy === 'Fail') ? true : undefined), 20_000);
    const patches = async (): Promise<number> => metricValue((await meshd.monitoring('/metrics')).body, 'meshd_validation_failure_policy_patches_total', { configuration: 'istio-validator-istio-system' });
    assert.equal(await eventually('the repair counted', async () => ((await patches()) === 2 ? 2 : undefined)), 2);
    assert.equal(await patches(), 2);
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

  it('refuses an invalid ServiceEntry (v1alpha3) and WorkloadEntry naming the field, and stores a valid ServiceEntry', async () => {
    const sePath = `/apis/networking.istio.io/v1alpha3/namespaces/${NS}/serviceentries`;
    const se = (name: string, address: string) => ({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'ServiceEntry', metadata: { name, namespace: NS }, spec: { hosts: [`${name}.example.com`], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address }] } });
    await assert.rejects(kube.request('POST', sePath, se('bad-se', 'not-an-ip.example.net')), (e) => e instanceof KubeApiError && e.status === 400 && /\(ServiceEntry apps\/bad-se\) Schema validation error: spec\.endpoints\[0\]\.address/.test(e.message));
    const wePath = `/apis/networking.istio.io/v1/namespaces/${NS}/workloadentries`;
    await assert.rejects(kube.request('POST', wePath, { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'bad-we', namespace: NS }, spec: { labels: { app: 'vm' } } }), (e) => e instanceof KubeApiError && /\(WorkloadEntry apps\/bad-we\) Schema validation error: spec\.address/.test(e.message));
    const stored = await kube.request<{ metadata: { name: string } }>('POST', sePath, se('good-se', '192.0.2.1'));
    assert.equal(stored.metadata.name, 'good-se');
  });

  it('refuses a Telemetry (v1alpha1) whose targetRef is not a Gateway, naming the field; stores a valid one', async () => {
    const path = `/apis/telemetry.istio.io/v1alpha1/namespaces/${NS}/telemetries`;
    const telemetry = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'telemetry.istio.io/v1alpha1', kind: 'Telemetry', metadata: { name, namespace: NS }, spec });
    const err = await kube.request('POST', path, telemetry('bad', { targetRef: { kind: 'Service', name: 'web' }, accessLogging: [{ disabled: true }] })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof KubeApiError, `refused: ${String(err)}`);
    assert.match(err.message, /denied the request: Error \[IST0106\] \(Telemetry apps\/bad\) Schema validation error: spec\.targetRef\.kind: Service is not supported/);
    await kube.request('POST', path, telemetry('good', { selector: { matchLabels: { app: 'web' } }, accessLogging: [{ disabled: true }] }));
    await kube.request('DELETE', `${path}/good`);
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

  it('after a restart with a new CA root: both caBundles are the new root, still Fail, and the webhook refuses and admits again', async () => {
    const oldRoot = rootPem;
    await meshd.stop();
    // While no meshd answers, failurePolicy Fail makes the apiserver refuse writes of the
    // validated kinds (as with istiod): the webhook cannot be called.
    const down = await kube.request('POST', VS_PATH, virtualService('while-down', [100])).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(down instanceof KubeApiError, `refused while meshd is down: ${String(down)}`);
    assert.match(String((down.body as { message?: unknown }).message), /failed calling webhook "rev\.validation\.istio\.io"/);
    // The root rotated: the self-signed root Secret is removed, so meshd generates a new one.
    await kube.request('DELETE', CA_SECRET_PATH);
    meshd = await startMeshdHere();
    rootPem = await meshdRootCert(meshd);
    assert.notEqual(rootPem, oldRoot, 'a new root');
    const { vwc } = await patched(Buffer.from(rootPem).toString('base64'));
    assert.ok(vwc.webhooks.every((w) => w.failurePolicy === 'Fail'));
    // The apiserver may take a moment to use the new caBundle: until then its calls fail (Fail: refused).
    const err = await eventually('meshd\'s own refusal of weights 130', async () => {
      const e = await kube.request('POST', VS_PATH, virtualService('bad-after-restart', [80, 50])).then(
        () => new Error('stored'),
        (x: unknown) => x,
      );
      if (!(e instanceof KubeApiError)) throw e;
      return /denied the request/.test(e.message) ? e : undefined;
    }, 30_000);
    assert.match(err.message, /\(VirtualService apps\/bad-after-restart\) Schema validation error: spec\.http\[0\]\.route/);
    const ok = await kube.request<{ metadata: { name: string } }>('POST', VS_PATH, virtualService('good-after-restart', [70, 30]));
    assert.equal(ok.metadata.name, 'good-after-restart');
    // The new leader proved the webhook again (it never wrote Ignore in between).
    await eventually('meshd_validation_fail_closed 1 after the restart', async () => (metricValue((await meshd.monitoring('/metrics')).body, 'meshd_validation_fail_closed') === 1 ? true : undefined), 30_000);
    assert.equal(metricValue((await meshd.monitoring('/metrics')).body, 'meshd_validation_failure_policy_patches_total', { configuration: 'istio-validator-istio-system' }), 0, 'Fail was already in place');
  });
});
