// Proves the Kubernetes fixture (test/support/kube.ts): a real etcd and kube-apiserver start,
// objects can be written and read (Pod status through /status, as a kubelet would), TokenRequest
// and TokenReview work with the istio-ca audience, meshd's token is subject to RBAC, and data
// survives restarting the apiserver and etcd.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { KubeApiError, MESHD_USER, SERVICE_ACCOUNT_ISSUER, startKube, type KubeCluster } from '../support/kube.js';

const NS = 'fixture-demo';

interface Meta {
  metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string>; resourceVersion?: string };
}
interface Pod extends Meta {
  spec: { serviceAccountName?: string };
  status?: { phase?: string; podIP?: string; podIPs?: { ip: string }[]; conditions?: { type: string; status: string }[] };
}
interface Service extends Meta {
  spec: { clusterIP?: string; ports: { port: number; targetPort?: number | string; name?: string }[] };
}
interface EndpointSlice extends Meta {
  addressType: string;
  endpoints: { addresses: string[]; conditions?: { ready?: boolean }; targetRef?: { kind: string; name: string } }[];
  ports: { name?: string; port: number; protocol?: string }[];
}
interface List<T> {
  items: T[];
}

function isStatus(code: number): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof KubeApiError, `expected KubeApiError, got ${String(err)}`);
    assert.equal(err.status, code, err.message);
    return true;
  };
}

function jwtPayload(token: string): Record<string, unknown> {
  const part = token.split('.')[1];
  assert.ok(part !== undefined, 'token is not a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('kube fixture: real etcd + kube-apiserver', () => {
  let kube: KubeCluster;

  before(async () => {
    const t0 = Date.now();
    kube = await startKube();
    console.log(`# kube: etcd + kube-apiserver ready in ${Date.now() - t0} ms at ${kube.server}`);
  });

  after(async () => {
    if (kube === undefined) return;
    const dir = kube.dir;
    await kube.stop();
    assert.equal(existsSync(dir), false, 'stop() removes the temp dir');
  });

  test('the apiserver reports the pinned version and trusts its own CA', async () => {
    const v = await kube.request<{ gitVersion: string; major: string; minor: string }>('GET', '/version');
    assert.equal(v.gitVersion, 'v1.36.3');
    assert.equal(v.major, '1');
    assert.equal(v.minor, '36');
    const cfg = parseYaml(readFileSync(kube.kubeconfig(), 'utf8')) as {
      clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
      users: { user: { token: string } }[];
    };
    assert.equal(cfg.clusters[0]?.cluster.server, kube.server);
    assert.equal(cfg.clusters[0]?.cluster['certificate-authority-data'], kube.caData);
    assert.equal(cfg.users[0]?.user.token, kube.meshdToken);
  });

  test('admin writes a namespace, Service, EndpointSlice and Pod, sets Pod status, reads them back', async () => {
    await kube.createNamespace(NS, { 'istio-injection': 'enabled' });
    await kube.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'web' },
    });

    const svc = await kube.request<Service>('POST', `/api/v1/namespaces/${NS}/services`, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
    });
    assert.match(svc.spec.clusterIP ?? '', /^10\.96\.\d+\.\d+$/, 'ClusterIP allocated from --service-cluster-ip-range');

    const pod = await kube.request<Pod>('POST', `/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-0', labels: { app: 'web' } },
      spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'example.invalid/web:1', ports: [{ containerPort: 8080 }] }] },
    });
    assert.equal(pod.status?.phase, 'Pending');

    // No kubelet: write the status a kubelet would, through the /status subresource.
    await kube.request(
      'PATCH',
      `/api/v1/namespaces/${NS}/pods/web-0/status`,
      {
        status: {
          phase: 'Running',
          podIP: '10.244.0.5',
          podIPs: [{ ip: '10.244.0.5' }],
          conditions: [
            { type: 'PodScheduled', status: 'True' },
            { type: 'ContainersReady', status: 'True' },
            { type: 'Ready', status: 'True' },
          ],
        },
      },
    );

    await kube.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-abcde', labels: { 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'meshd-test' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-0', namespace: NS, uid: pod.metadata.uid } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });

    // Read back.
    const gotPod = await kube.request<Pod>('GET', `/api/v1/namespaces/${NS}/pods/web-0`);
    assert.equal(gotPod.spec.serviceAccountName, 'web');
    assert.equal(gotPod.status?.phase, 'Running');
    assert.equal(gotPod.status?.podIP, '10.244.0.5');
    assert.deepEqual(gotPod.status?.podIPs, [{ ip: '10.244.0.5' }]);
    assert.equal(gotPod.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');

    const gotSvc = await kube.request<Service>('GET', `/api/v1/namespaces/${NS}/services/web`);
    assert.equal(gotSvc.spec.clusterIP, svc.spec.clusterIP);
    assert.equal(gotSvc.spec.ports[0]?.port, 80);

    const slices = await kube.request<List<EndpointSlice>>(
      'GET',
      `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=${encodeURIComponent('kubernetes.io/service-name=web')}`,
    );
    assert.equal(slices.items.length, 1);
    assert.deepEqual(slices.items[0]?.endpoints[0]?.addresses, ['10.244.0.5']);
    assert.equal(slices.items[0]?.endpoints[0]?.targetRef?.name, 'web-0');
    assert.equal(slices.items[0]?.ports[0]?.port, 8080);

    // Server-side apply and merge patch both work.
    await kube.apply(`/api/v1/namespaces/${NS}/configmaps/mesh`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'mesh', namespace: NS },
      data: { mesh: 'defaultConfig: {}\n' },
    });
    await kube.request('PATCH', `/api/v1/namespaces/${NS}/configmaps/mesh`, { data: { extra: 'x' } });
    const cm = await kube.request<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${NS}/configmaps/mesh`);
    assert.deepEqual(cm.data, { mesh: 'defaultConfig: {}\n', extra: 'x' });

    await assert.rejects(kube.request('GET', `/api/v1/namespaces/${NS}/pods/nope`), isStatus(404));
  });

  test('TokenRequest with audience istio-ca, checked by TokenReview', async () => {
    const tr = await kube.request<{ status: { token: string; expirationTimestamp: string } }>(
      'POST',
      `/api/v1/namespaces/${NS}/serviceaccounts/web/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['istio-ca'], expirationSeconds: 3600 } },
    );
    const token = tr.status.token;
    const claims = jwtPayload(token);
    assert.equal(claims.iss, SERVICE_ACCOUNT_ISSUER);
    assert.deepEqual(claims.aud, ['istio-ca']);
    assert.equal(claims.sub, `system:serviceaccount:${NS}:web`);

    const review = await kube.request<{
      status: { authenticated?: boolean; user?: { username: string; groups: string[] }; audiences?: string[]; error?: string };
    }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: ['istio-ca'] },
    });
    assert.equal(review.status.authenticated, true, review.status.error);
    assert.equal(review.status.user?.username, `system:serviceaccount:${NS}:web`);
    assert.ok(review.status.user?.groups.includes(`system:serviceaccounts:${NS}`));
    assert.deepEqual(review.status.audiences, ['istio-ca']);

    // The same token is not valid for another audience.
    const wrongAud = await kube.request<{ status: { authenticated?: boolean } }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: ['some-other-audience'] },
    });
    assert.notEqual(wrongAud.status.authenticated, true);
  });

  test('the meshd token is subject to RBAC: forbidden until granted', async () => {
    await assert.rejects(kube.request('GET', '/api/v1/services', undefined, kube.meshdToken), isStatus(403));
    // The token does authenticate, as the istiod service account.
    const review = await kube.request<{ status: { userInfo: { username: string; groups: string[] } } }>(
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      kube.meshdToken,
    );
    assert.equal(review.status.userInfo.username, MESHD_USER);
    assert.ok(review.status.userInfo.groups.includes('system:serviceaccounts:istio-system'));

    await kube.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'meshd-test-read-services' },
      rules: [{ apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] }],
    });
    await kube.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'meshd-test-read-services' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'meshd-test-read-services' },
      subjects: [{ kind: 'ServiceAccount', name: 'istiod', namespace: 'istio-system' }],
    });
    // RBAC is evaluated from an informer cache: allow a moment for the binding to be seen.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await kube.requestRaw('GET', `/api/v1/namespaces/${NS}/services`, undefined, kube.meshdToken);
      if (r.status === 200) {
        const names = (JSON.parse(r.text) as List<Service>).items.map((s) => s.metadata.name);
        assert.deepEqual(names, ['web']);
        break;
      }
      assert.equal(r.status, 403);
      assert.ok(Date.now() < deadline, 'the ClusterRoleBinding never took effect');
      await new Promise((res) => setTimeout(res, 100));
    }
    // Still only what was granted.
    await assert.rejects(kube.request('GET', '/api/v1/pods', undefined, kube.meshdToken), isStatus(403));
    await assert.rejects(
      kube.request('DELETE', `/api/v1/namespaces/${NS}/services/web`, undefined, kube.meshdToken),
      isStatus(403),
    );
  });

  test('objects survive an apiserver restart', async () => {
    await kube.stopApiserver();
    await assert.rejects(kube.request('GET', '/version'), (err: Error) => /ECONNREFUSED/.test(err.message));
    const t0 = Date.now();
    await kube.startApiserver();
    console.log(`# kube: kube-apiserver restarted and ready in ${Date.now() - t0} ms`);
    const pod = await kube.request<Pod>('GET', `/api/v1/namespaces/${NS}/pods/web-0`);
    assert.equal(pod.status?.phase, 'Running');
    const svc = await kube.request<Service>('GET', `/api/v1/namespaces/${NS}/services/web`);
    assert.equal(svc.metadata.name, 'web');
    const slice = await kube.request<EndpointSlice>('GET', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/web-abcde`);
    assert.deepEqual(slice.endpoints[0]?.addresses, ['10.244.0.5']);
    // The static tokens and the signing key are the same: the meshd grant still holds.
    await kube.request('GET', `/api/v1/namespaces/${NS}/services`, undefined, kube.meshdToken);
  });

  test('objects survive an etcd crash and restart; the apiserver recovers', async () => {
    // SIGKILL: a crash, and quicker than a graceful stop (etcd waits ~7 s for the apiserver's watches).
    await kube.stopEtcd('SIGKILL');
    // The apiserver's etcd check runs periodically: it notices within a few seconds.
    const deadline = Date.now() + 15_000;
    while ((await kube.requestRaw('GET', '/readyz', undefined, undefined, { timeoutMs: 10_000 })).status === 200) {
      assert.ok(Date.now() < deadline, '/readyz still OK 15 s after etcd was killed');
      await new Promise((res) => setTimeout(res, 200));
    }
    const t0 = Date.now();
    await kube.startEtcd();
    console.log(`# kube: etcd restarted and apiserver ready again in ${Date.now() - t0} ms`);
    const pod = await kube.request<Pod>('GET', `/api/v1/namespaces/${NS}/pods/web-0`);
    assert.equal(pod.status?.podIP, '10.244.0.5');
    // Writes work again.
    await kube.request('PATCH', `/api/v1/namespaces/${NS}/services/web`, { metadata: { labels: { restarted: 'yes' } } });
    const svc = await kube.request<Service>('GET', `/api/v1/namespaces/${NS}/services/web`);
    assert.equal(svc.metadata.labels?.restarted, 'yes');
  });
});
