// The Kubernetes source and PeerAuthentication, in process against a real kube-apiserver with
// the manifests' RBAC (meshd's own identity): without the security.istio.io CRD the source
// says so and syncs the rest; with it, PeerAuthentications listed and then created, changed
// and deleted through the API reach the store, and resolve.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { REPO_ROOT } from '../support/meshd.js';
import { KubeSource } from '../../src/sources/kube/kube-source.js';
import { loadKubeConfig } from '../../src/kube/client.js';
import { ConfigStore, type ConfigChange } from '../../src/model/store.js';
import { istioConfig } from '../../src/model/mesh.js';
import { createLogger } from '../../src/util/log.js';
import { inboundMtlsMode } from '../../src/translate/peer-authentication.js';

const NS = 'default';
const BOUND_MS = 5000;
const PA_CRD = 'peerauthentications.security.istio.io';
const AP_CRD = 'authorizationpolicies.security.istio.io';
const RA_CRD = 'requestauthentications.security.istio.io';

type LogRecord = Record<string, unknown> & { level: string; msg: string };

function capturingLogger(): { log: ReturnType<typeof createLogger>; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const destination = {
    write(chunk: string): boolean {
      for (const line of String(chunk).split('\n')) if (line) records.push(JSON.parse(line) as LogRecord);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { log: createLogger({ destination, level: 'debug' }), records };
}

async function eventually<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + BOUND_MS;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${BOUND_MS} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('kube source: PeerAuthentication from a real kube-apiserver', { timeout: 180_000 }, () => {
  let kube: KubeCluster;
  const manifests = readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml'));
  const isPaCrd = (o: { kind: string; metadata: { name: string } }) => o.kind === 'CustomResourceDefinition' && o.metadata.name === PA_CRD;
  const isApCrd = (o: { kind: string; metadata: { name: string } }) => o.kind === 'CustomResourceDefinition' && (o.metadata.name === AP_CRD || o.metadata.name === RA_CRD);
  const sources: KubeSource[] = [];

  function source(): { src: KubeSource; store: ConfigStore; records: LogRecord[]; changes: ConfigChange[] } {
    const { log, records } = capturingLogger();
    const store = new ConfigStore();
    const changes: ConfigChange[] = [];
    store.onChange((c) => changes.push(...c));
    const src = new KubeSource({ conn: loadKubeConfig(kube.kubeconfig(kube.meshdToken)), store, log, backoff: { initialMs: 50, maxMs: 500 } });
    sources.push(src);
    return { src, store, records, changes };
  }

  before(async () => {
    kube = await startKube();
    // Everything but the security.istio.io CRDs: the second test installs PeerAuthentication's
    // alone (as an older install has it), AuthorizationPolicy's and RequestAuthentication's never.
    await applyAll(kube, manifests.filter((o) => !isPaCrd(o) && !isApCrd(o)));
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io']);
  });

  after(async () => {
    for (const s of sources) await s.stop();
    await kube?.stop();
  });

  it('without the security.istio.io CRD: logs that PeerAuthentications are not watched, and syncs everything else', async () => {
    const { src, records } = source();
    await src.start();
    await src.synced();
    assert.equal(src.ready, true);
    const paths = src.status().map((s) => String(s.path));
    assert.ok(paths.includes('/apis/networking.istio.io/v1/virtualservices'), paths.join(' '));
    assert.ok(!paths.some((p) => p.includes('security.istio.io')), `no PeerAuthentication informer: ${paths.join(' ')}`);
    const warn = records.find((r) => r.group === 'security.istio.io');
    assert.ok(warn, 'the missing group is logged');
    assert.equal(warn.level, 'warn');
    assert.match(warn.msg, /security\.istio\.io CRDs are not installed; PeerAuthentications, AuthorizationPolicies and RequestAuthentications are not watched/);
    await src.stop();
  });

  it('with the CRD: a listed PeerAuthentication, then one created (v1beta1), changed and deleted, reach the store at v1 (the missing AuthorizationPolicy CRD is logged, not waited for)', async () => {
    await applyAll(kube, manifests.filter(isPaCrd));
    await waitForCrds(kube, [PA_CRD]);
    // Discovery lags Established a little; the source must see the group when it starts.
    const listPath = `/apis/security.istio.io/v1/namespaces/${NS}/peerauthentications`;
    const deadline = Date.now() + 30_000;
    while ((await kube.requestRaw('GET', listPath)).status !== 200) {
      if (Date.now() > deadline) throw new Error('PeerAuthentications not served');
      await new Promise((r) => setTimeout(r, 100));
    }
    await kube.request('POST', listPath, { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default' }, spec: { mtls: { mode: 'STRICT' } } });

    const { src, store, records, changes } = source();
    await src.start();
    await src.synced();
    assert.ok(src.status().some((s) => s.path === '/apis/security.istio.io/v1/peerauthentications'), 'watched at the preferred version, v1');
    assert.ok(records.some((r) => r.msg === 'watching security.istio.io config' && r.version === 'v1'));
    assert.ok(src.ready, 'ready without the AuthorizationPolicy CRD');
    assert.ok(!src.status().some((s) => String(s.path).includes('authorizationpolicies')), 'no AuthorizationPolicy informer');
    assert.ok(records.some((r) => r.level === 'warn' && r.msg === `the ${AP_CRD} CRD is not installed; AuthorizationPolicy objects are not watched`), 'the missing kind is logged');
    const listed = store.get('PeerAuthentication', NS, 'default');
    assert.deepEqual(listed?.spec, { mtls: { mode: 'STRICT' } }, 'the listed policy is in the store once synced');

    const spec = { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { '9080': { mode: 'DISABLE' } } };
    const v1beta1 = `/apis/security.istio.io/v1beta1/namespaces/${NS}/peerauthentications`;
    const created = await kube.request<{ metadata: { creationTimestamp: string } }>('POST', v1beta1, { apiVersion: 'security.istio.io/v1beta1', kind: 'PeerAuthentication', metadata: { name: 'reviews' }, spec });
    const got = await eventually('created', () => store.get('PeerAuthentication', NS, 'reviews'));
    assert.deepEqual(got.spec, spec);
    assert.equal(got.metadata.creationTimestamp, created.metadata.creationTimestamp);
    assert.ok(changes.some((c) => c.kind === 'PeerAuthentication' && c.name === 'reviews' && c.op === 'add'));
    let config = istioConfig(store, 'cluster.local');
    assert.equal(inboundMtlsMode(config, NS, { app: 'reviews' }, 9080), 'DISABLE');
    assert.equal(inboundMtlsMode(config, NS, { app: 'reviews' }, 9081), 'PERMISSIVE');
    assert.equal(inboundMtlsMode(config, NS, { app: 'ratings' }, 9080), 'STRICT');

    await kube.request('PATCH', `${v1beta1}/reviews`, { spec: { mtls: { mode: 'STRICT' } } });
    await eventually('changed', () => (store.get('PeerAuthentication', NS, 'reviews')?.spec.mtls?.mode === 'STRICT' ? true : undefined));
    config = istioConfig(store, 'cluster.local');
    assert.equal(inboundMtlsMode(config, NS, { app: 'reviews' }, 9081), 'STRICT');

    await kube.request('DELETE', `${v1beta1}/reviews`);
    await eventually('deleted', () => (store.get('PeerAuthentication', NS, 'reviews') === undefined ? true : undefined));
    assert.deepEqual(
      changes.filter((c) => c.kind === 'PeerAuthentication' && c.name === 'reviews').map((c) => c.op),
      ['add', 'update', 'delete'],
    );
    assert.equal(store.list('PeerAuthentication').length, 1, 'the other policy stays');
  });
});
