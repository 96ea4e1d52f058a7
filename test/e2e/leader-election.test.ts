// Several meshd replicas on a real kube-apiserver, with the manifests' least-privilege RBAC:
// exactly one holds Lease istio-system/meshd-leader and publishes the root ConfigMaps; when it
// is killed (-9) another takes the Lease once it expires and puts back a deleted ConfigMap;
// when it is stopped (SIGTERM) it releases the Lease and another takes over at once, before
// draining its xDS streams. Short durations: a 3 s lease, so a 2 s renew deadline and a
// 400 ms retry period; a 4 s drain.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startKube, KubeApiError, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { startMeshd, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { connectAds, istioNode, TypeUrl } from '../support/ads-client.js';

const NS = 'apps';
const LEASE = '/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/meshd-leader';
const LEASE_MS = 3000;
const RETRY_MS = (LEASE_MS * 2) / 15;
const DRAIN_MS = 4000;

interface Lease {
  metadata: { resourceVersion: string };
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string; acquireTime?: string; leaseTransitions?: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface Replica {
  pod: string;
  meshd: MeshdProcess;
}

describe('leader election on a real kube-apiserver', () => {
  let kube: KubeCluster;
  const replicas: Replica[] = [];

  const start = async (pod: string): Promise<Replica> => {
    const meshd = await startMeshd({
      extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--leader-lease-duration', `${LEASE_MS}ms`, '--drain-duration', `${DRAIN_MS}ms`],
      env: { POD_NAME: pod },
    });
    const r = { pod, meshd };
    replicas.push(r);
    return r;
  };
  const lease = (): Promise<Lease> => kube.request<Lease>('GET', LEASE);
  const holder = async (): Promise<string> => (await lease()).spec?.holderIdentity ?? '';
  const leaderMetric = async (r: Replica): Promise<number> => {
    const m = /^meshd_leader (\d+)$/m.exec((await r.meshd.monitoring('/metrics')).body);
    assert.ok(m, `${r.pod}: meshd_leader is exported`);
    return Number(m[1]);
  };
  const leaderz = async (r: Replica): Promise<{ identity: string; isLeader: boolean; holder?: string; state: string }> =>
    JSON.parse((await r.meshd.monitoring('/debug/leaderz')).body) as { identity: string; isLeader: boolean; holder?: string; state: string };
  const rootIn = (ns: string, rootPem: string) => async (): Promise<true | undefined> => {
    const cm = await kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${ns}/configmaps/istio-ca-root-cert`);
    return cm.data?.['root-cert.pem'] === rootPem ? true : undefined;
  };
  const published = (r: Replica): number => r.meshd.records().filter((x) => x.msg === 'published the root certificate').length;
  /** The one replica holding the Lease, checked three ways: the Lease, the gauge and /debug/leaderz. */
  const theLeader = async (among: Replica[]): Promise<Replica> => {
    const h = await holder();
    const leaders = among.filter((r) => h.startsWith(`${r.pod}_`));
    assert.equal(leaders.length, 1, `the holder ${h} is one of ${among.map((r) => r.pod).join(', ')}`);
    const leader = leaders[0]!;
    for (const r of among) {
      assert.equal(await leaderMetric(r), r === leader ? 1 : 0, `${r.pod}: meshd_leader`);
      const z = await leaderz(r);
      assert.equal(z.isLeader, r === leader, `${r.pod}: /debug/leaderz isLeader`);
      if (r === leader) assert.equal(z.identity, h);
    }
    return leader;
  };

  before(async () => {
    kube = await startKube();
    const manifests = readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml'));
    await applyAll(kube, manifests);
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io']);
    await kube.createNamespace(NS);
  });

  after(async () => {
    await Promise.all(replicas.map((r) => r.meshd.stop('SIGKILL')));
    await kube?.stop();
  });

  let rootPem = '';

  it('of two replicas exactly one holds the Lease and publishes the root ConfigMaps', async () => {
    const [a, b] = await Promise.all([start('istiod-a'), start('istiod-b')]);
    await waitFor('a holder', async () => ((await holder()) ? true : undefined));
    // Both have tried at least once by now.
    await sleep(2 * RETRY_MS);
    const leader = await theLeader([a, b]);
    const follower = leader === a ? b : a;
    const l = await lease();
    assert.equal(l.spec?.leaseDurationSeconds, LEASE_MS / 1000);
    assert.equal(l.spec?.leaseTransitions, 0);
    const secret = await kube.request<{ data: Record<string, string> }>('GET', '/api/v1/namespaces/istio-system/secrets/istio-ca-secret');
    rootPem = Buffer.from(secret.data['ca-cert.pem']!, 'base64').toString('utf8');
    for (const ns of ['default', NS, 'istio-system']) await waitFor(`root ConfigMap in ${ns}`, rootIn(ns, rootPem));
    assert.ok(published(leader) >= 3, 'the leader wrote them');
    assert.equal(published(follower), 0, 'the follower wrote none');
    // Renewed while alive: the same holder, a newer renewTime.
    await sleep(3 * RETRY_MS);
    const later = await lease();
    assert.equal(later.spec?.holderIdentity, l.spec?.holderIdentity);
    assert.ok(Date.parse(later.spec!.renewTime!) > Date.parse(l.spec!.renewTime!), 'renewed');
    assert.equal((await leaderz(follower)).holder, l.spec?.holderIdentity, 'the follower sees who leads');
  });

  it('kill -9 of the leader: the other takes the Lease once it expires, and puts back a deleted ConfigMap', async () => {
    const leader = await theLeader(replicas);
    const other = replicas.find((r) => r !== leader)!;
    const before = await lease();
    const killedAt = Date.now();
    await leader.meshd.stop('SIGKILL');
    replicas.splice(replicas.indexOf(leader), 1);
    await waitFor('the other replica to take the Lease', async () => ((await holder()).startsWith(`${other.pod}_`) ? true : undefined), 4 * LEASE_MS, 20);
    const tookMs = Date.now() - killedAt;
    const sinceRenew = Date.now() - Date.parse(before.spec!.renewTime!);
    console.log(`kill -9: the Lease moved ${tookMs} ms after the kill (${sinceRenew} ms after the last renewal; lease ${LEASE_MS} ms, retry ${RETRY_MS} ms)`);
    assert.ok(tookMs >= LEASE_MS - RETRY_MS - 200, `not before the lease expired (${tookMs} ms)`);
    assert.ok(tookMs <= LEASE_MS + 1.2 * RETRY_MS + 1000, `within about the lease duration (${tookMs} ms)`);
    assert.equal((await lease()).spec?.leaseTransitions, 1);
    assert.equal(await theLeader([other]), other);
    await kube.request('DELETE', `/api/v1/namespaces/${NS}/configmaps/istio-ca-root-cert`);
    await waitFor('root ConfigMap put back by the new leader', rootIn(NS, rootPem));
    await kube.createNamespace('fresh');
    await waitFor('root ConfigMap in a new namespace', rootIn('fresh', rootPem));
    // The log line is read from the process's stdout, which may trail the apiserver's view.
    await waitFor('the new leader to log both writes', async () => (published(other) >= 2 ? true : undefined));
  });

  it('SIGTERM of the leader: it releases the Lease and another replica takes it at once, before draining its proxies', async () => {
    const c = await start('istiod-c');
    await sleep(2 * RETRY_MS);
    const leader = await theLeader(replicas);
    assert.notEqual(leader, c, 'the newcomer does not take a held Lease');
    // A proxy on the leader: its stream is drained over DRAIN_MS after the SIGTERM.
    const proxy = connectAds(`127.0.0.1:${leader.meshd.grpcPort}`);
    proxy.send({ node: istioNode({ namespace: NS }), type_url: TypeUrl.Cluster });
    await proxy.next(10_000);
    const stoppedAt = Date.now();
    const exit = leader.meshd.stop('SIGTERM');
    let exitedAt = 0;
    void exit.then(() => (exitedAt = Date.now()));
    await waitFor('the newcomer to take the Lease', async () => ((await holder()).startsWith('istiod-c_') ? true : undefined), 4 * LEASE_MS, 20);
    const tookMs = Date.now() - stoppedAt;
    assert.equal(await exit, 0);
    replicas.splice(replicas.indexOf(leader), 1);
    await proxy.close();
    console.log(`SIGTERM: the Lease moved ${tookMs} ms after the signal; the process exited after ${exitedAt - stoppedAt} ms (drain ${DRAIN_MS} ms; lease ${LEASE_MS} ms, retry ${RETRY_MS} ms)`);
    assert.ok(tookMs < LEASE_MS / 2, `well under the lease duration (${tookMs} ms)`);
    assert.ok(exitedAt - stoppedAt > tookMs + DRAIN_MS / 2, 'the Lease moved while the proxies were still draining');
    assert.ok(leader.meshd.records().some((r) => r.msg === 'leader election: released the lease'));
    assert.equal(await theLeader([c]), c);
    await kube.request('DELETE', `/api/v1/namespaces/${NS}/configmaps/istio-ca-root-cert`);
    await waitFor('root ConfigMap put back by the newest leader', rootIn(NS, rootPem));
  });

  it('RBAC: meshd may not touch another Lease', async () => {
    const other = '/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/someone-else';
    await kube.request('POST', '/apis/coordination.k8s.io/v1/namespaces/istio-system/leases', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'someone-else' }, spec: { holderIdentity: 'x' } });
    const l = await kube.request<Lease>('GET', other);
    await assert.rejects(kube.request('PUT', other, { ...l, spec: { holderIdentity: 'meshd' } }, kube.meshdToken), (e: unknown) => e instanceof KubeApiError && e.status === 403);
    await assert.rejects(kube.request('GET', other, undefined, kube.meshdToken), (e: unknown) => e instanceof KubeApiError && e.status === 403);
    await assert.rejects(kube.request('DELETE', LEASE, undefined, kube.meshdToken), (e: unknown) => e instanceof KubeApiError && e.status === 403);
  });
});
