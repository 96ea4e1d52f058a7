// `meshd install`, `verify-install`, `uninstall`, `precheck` and `--dry-run` against a real
// kube-apiserver, through the meshd command line as a user runs it. No kubelet or Deployment
// controller runs here, so the test does what they would: it marks each Deployment available
// through the status subresource once install has created it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { startKube, type KubeCluster } from '../support/kube.js';
import { MESHD_CLI, REPO_ROOT } from '../support/meshd.js';
import { kubectlBinary } from '../support/kubectl.js';
import { renderInstall, everyInstallableObject } from '../../src/install/profiles.js';
import { parseSetFlags } from '../../src/install/settings.js';
import type { KubeObject } from '../../src/install/objects.js';

const MANIFESTS = join(REPO_ROOT, 'manifests');
/** How many CRDs meshd ships (one per Istio kind it reads). */
const crdCount = (): number => everyInstallableObject(MANIFESTS).filter((o) => o.kind === 'CustomResourceDefinition').length;
const PROFILES = ['minimal', 'default', 'demo'];
const DEPLOYMENTS = ['istiod', 'istio-ingressgateway', 'istio-egressgateway'];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the meshd CLI; `input` goes to its stdin (then closed). */
function meshd(args: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> & { child: ReturnType<typeof spawn> } {
  const child = spawn(process.execPath, [MESHD_CLI, ...args], { env: o.env ?? { ...process.env, KUBECONFIG: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(o.input ?? '');
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  return Object.assign(done, { child });
}

const show = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

function objectPath(o: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): string {
  const plural: Record<string, string> = {
    Namespace: 'namespaces',
    CustomResourceDefinition: 'customresourcedefinitions',
    ServiceAccount: 'serviceaccounts',
    Role: 'roles',
    ClusterRole: 'clusterroles',
    RoleBinding: 'rolebindings',
    ClusterRoleBinding: 'clusterrolebindings',
    ConfigMap: 'configmaps',
    Service: 'services',
    Deployment: 'deployments',
    PodDisruptionBudget: 'poddisruptionbudgets',
    MutatingWebhookConfiguration: 'mutatingwebhookconfigurations',
    ValidatingWebhookConfiguration: 'validatingwebhookconfigurations',
  };
  const p = plural[o.kind];
  assert.ok(p, `no plural for ${o.kind}`);
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  return o.metadata.namespace ? `${base}/namespaces/${o.metadata.namespace}/${p}/${o.metadata.name}` : `${base}/${p}/${o.metadata.name}`;
}

describe('meshd install, verify-install, uninstall and precheck against kube-apiserver', { timeout: 600_000 }, () => {
  let kube: KubeCluster;
  let admin: string;

  before(async () => {
    kube = await startKube();
    admin = kube.kubeconfig(kube.adminToken);
  });
  after(async () => {
    await kube?.stop();
  });

  const exists = async (o: KubeObject | { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }) => (await kube.requestRaw('GET', objectPath(o))).status === 200;

  /** What the Deployment controller and kubelets would report once every replica runs and is ready. */
  async function markAvailable(name: string, available?: number): Promise<boolean> {
    const path = `/apis/apps/v1/namespaces/istio-system/deployments/${name}`;
    const r = await kube.requestRaw('GET', path);
    if (r.status !== 200) return false;
    const d = JSON.parse(r.text) as { metadata: { generation: number }; spec: { replicas: number } };
    const n = d.spec.replicas;
    const avail = available ?? n;
    const now = new Date().toISOString();
    await kube.request('PATCH', `${path}/status`, {
      status: {
        observedGeneration: d.metadata.generation,
        replicas: n,
        updatedReplicas: n,
        readyReplicas: avail,
        availableReplicas: avail,
        conditions: [{ type: 'Available', status: avail >= n ? 'True' : 'False', reason: avail >= n ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable', message: `${avail} of ${n} available`, lastUpdateTime: now, lastTransitionTime: now }],
      },
    });
    return true;
  }

  it('precheck: the identity without permissions is told what it may not do', async () => {
    const r = await meshd(['precheck', '--kubeconfig', kube.kubeconfig(kube.meshdToken)]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /^Error \(permissions\) you may not create customresourcedefinitions\.apiextensions\.k8s\.io \(cluster-wide\), which installing needs/m);
    assert.match(r.stdout, /^Error \(permissions\) you may not create deployments\.apps in namespace istio-system/m);
    assert.match(r.stdout, /Issues found when checking the cluster/);
  });

  it('precheck: an empty cluster has no issues', async () => {
    const r = await meshd(['precheck', '--kubeconfig', admin, '--set', 'profile=demo']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout.split('\n')[0], '✔ No issues found when checking the cluster. Istio is safe to install or upgrade!');
  });

  it('--dry-run prints what kubectl kustomize renders for each profile, and changes nothing', async () => {
    const kubectl = kubectlBinary();
    for (const p of PROFILES) {
      const r = await meshd(['install', '--set', `profile=${p}`, '--dry-run', '--kubeconfig', admin]);
      assert.equal(r.code, 0, show(r));
      const ours = parseAllDocuments(r.stdout).map((d) => d.toJS() as unknown);
      const theirs = parseAllDocuments(execFileSync(kubectl, ['kustomize', join(MANIFESTS, 'profiles', p)], { encoding: 'utf8' })).map((d) => d.toJS() as unknown);
      assert.deepEqual(ours, theirs, `profile ${p}`);
    }
    // A --set shows in the output.
    const r = await meshd(['install', '--set', 'profile=minimal', '--set', 'meshConfig.accessLogFile=/dev/stdout', '--set', 'components.egressGateways[0].enabled=true', '--dry-run']);
    const objs = parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject);
    const mesh = parseYaml(String((objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'istio')!.data as Record<string, string>).mesh)) as Record<string, unknown>;
    assert.equal(mesh.accessLogFile, '/dev/stdout');
    assert.ok(objs.some((o) => o.kind === 'Deployment' && o.metadata.name === 'istio-egressgateway'));
    assert.ok(!objs.some((o) => o.kind === 'Deployment' && o.metadata.name === 'istio-ingressgateway'));
    assert.equal(await exists({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } }), false, 'dry runs created nothing');
  });

  it('install without -y asks first, and a "no" changes nothing', async () => {
    const r = await meshd(['install', '--set', 'profile=demo', '--kubeconfig', admin], { input: 'n\n' });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^This will install the meshd \S+ "demo" profile \(with components: Istio core, Istiod, Ingress gateways, and Egress gateways\) into the cluster https:\/\/127\.0\.0\.1:\d+ \(context meshd-test, from .*\)\. Proceed\? \(y\/N\) Cancelled\.$/m);
    assert.equal(await exists({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } }), false);
  });

  it('install --set profile=demo -y applies every object and completes once the Deployments are available', async () => {
    const run = meshd(['install', '--set', 'profile=demo', '-y', '--kubeconfig', admin]);
    let finished = false;
    void run.then(() => (finished = true));
    const marked = new Set<string>();
    while (!finished && marked.size < DEPLOYMENTS.length) {
      for (const d of DEPLOYMENTS) if (!marked.has(d) && (await markAvailable(d))) marked.add(d);
      await sleep(100);
    }
    const r = await run;
    assert.equal(r.code, 0, show(r));
    const progress = r.stdout.split('\n').filter((l) => l.startsWith('✔'));
    assert.deepEqual(progress, ['✔ Istio core installed', '✔ Istiod installed', '✔ Ingress gateways installed', '✔ Egress gateways installed', '✔ Installation complete']);

    const objects = renderInstall(MANIFESTS, parseSetFlags(['profile=demo']));
    for (const o of objects) {
      const live = await kube.request<{ metadata: { labels?: Record<string, string>; managedFields?: { manager: string; operation: string }[] } }>('GET', objectPath(o));
      assert.ok(live.metadata.managedFields?.some((m) => m.manager === 'meshd-install' && m.operation === 'Apply'), `${o.kind} ${o.metadata.name} applied by meshd-install`);
      assert.equal(live.metadata.labels?.['app.kubernetes.io/name'], 'meshd');
    }
    const mesh = await kube.request<{ data: { mesh: string } }>('GET', '/api/v1/namespaces/istio-system/configmaps/istio');
    assert.equal((parseYaml(mesh.data.mesh) as { accessLogFile: string }).accessLogFile, '/dev/stdout', 'the demo profile logs access');
    const record = await kube.request<{ data: Record<string, string> }>('GET', '/api/v1/namespaces/istio-system/configmaps/meshd-install');
    assert.equal(record.data.profile, 'demo');
    assert.equal(record.data.objects!.split('\n').length, objects.length);
  });

  it('verify-install passes on the installed profile', async () => {
    const r = await meshd(['verify-install', '--kubeconfig', admin]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^✔ Deployment: istiod\.istio-system checked successfully$/m);
    assert.match(r.stdout, /^✔ CustomResourceDefinition: virtualservices\.networking\.istio\.io checked successfully$/m);
    assert.match(r.stdout, new RegExp(`^Checked ${crdCount()} custom resource definitions$`, 'm'));
    assert.match(r.stdout, /^Checked 3 Istio Deployments$/m);
    assert.match(r.stdout, /^✔ meshd is installed and verified successfully \(profile demo\)$/m);
  });

  it('verify-install fails with a line per missing object and unavailable Deployment', async () => {
    await kube.request('DELETE', '/api/v1/namespaces/istio-system/services/istio-egressgateway');
    await markAvailable('istiod', 1);
    const r = await meshd(['verify-install', '--kubeconfig', admin]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /^✘ Service: istio-egressgateway\.istio-system: not found \(v1\); run meshd install again to restore it$/m);
    assert.match(r.stdout, /^✘ Deployment: istiod\.istio-system: not available: 1 of 2 replicas available \(1 of 2 available\)$/m);
    assert.match(r.stdout, /^✘ 2 of \d+ objects failed verification:$/m);
    await markAvailable('istiod');
  });

  it('install again with a smaller profile removes what it no longer includes, and names the Deployment that does not become ready', async () => {
    const r = await meshd(['install', '--set', 'profile=default', '--set', 'components.pilot.k8s.replicaCount=3', '--readiness-timeout', '2s', '-y', '--kubeconfig', admin]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /^ {2}Removed Deployment istio-system\/istio-egressgateway \(not part of the default profile with these settings\)\.$/m);
    assert.equal(await exists({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'istio-egressgateway', namespace: 'istio-system' } }), false);
    assert.match(r.stdout, /^✘ Istiod encountered an error: Deployment istio-system\/istiod did not become available within 2s: the Deployment controller has not seen generation 2 yet/m);
    assert.match(r.stdout, /^✔ Ingress gateways installed$/m);
    assert.doesNotMatch(r.stdout, /Installation complete/);
    const verify = await meshd(['verify-install', '--kubeconfig', admin]);
    assert.equal(verify.code, 1, show(verify));
    assert.match(verify.stdout, /Checking the meshd "default" profile/);
    await markAvailable('istiod');
    assert.equal((await meshd(['verify-install', '--kubeconfig', admin])).code, 0);
  });

  it('uninstall removes what install added and keeps the CRDs; --purge removes the CRDs', async () => {
    const r = await meshd(['uninstall', '-y', '--kubeconfig', admin]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^ {2}Removed MutatingWebhookConfiguration istio-sidecar-injector\.$/m);
    assert.match(r.stdout, new RegExp(`^ {2}Kept ${crdCount()} CustomResourceDefinitions`, 'm'));
    assert.match(r.stdout, /^✔ Uninstall complete$/m);
    const all = everyInstallableObject(MANIFESTS);
    for (const o of all) {
      const kept = o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace';
      assert.equal(await exists(o), kept, `${o.kind} ${o.metadata.name} ${kept ? 'kept' : 'removed'}`);
    }
    assert.equal(await exists({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshd-install', namespace: 'istio-system' } }), false, 'the record is removed');

    const purge = await meshd(['uninstall', '--purge', '-y', '--kubeconfig', admin]);
    assert.equal(purge.code, 0, show(purge));
    const crds = all.filter((o) => o.kind === 'CustomResourceDefinition');
    for (const crd of crds) assert.match(purge.stdout, new RegExp(`Removed CustomResourceDefinition ${crd.metadata.name.replaceAll('.', '\\.')}\\.`));
    // The API server's own finalizer removes a CRD once its objects are gone. On a loaded machine
    // its work queue can back off for minutes; meshd's part is the deletion, so a CRD still
    // finalizing must at least be marked for deletion.
    const deadline = Date.now() + 60_000;
    let allGone = true;
    for (const crd of crds) {
      while ((await exists(crd)) && Date.now() < deadline) await sleep(200);
      const left = await kube.requestRaw('GET', objectPath(crd));
      if (left.status === 404) continue;
      allGone = false;
      const body = JSON.parse(left.text) as { metadata: { deletionTimestamp?: string }; status?: { conditions?: unknown[] } };
      console.log(`# ${crd.metadata.name} still finalizing after 60 s: ${JSON.stringify(body.status?.conditions ?? []).slice(0, 1500)}`);
      assert.ok(body.metadata.deletionTimestamp, `${crd.metadata.name} is marked for deletion`);
    }
    const again = await meshd(['uninstall', '--purge', '-y', '--kubeconfig', admin]);
    assert.equal(again.code, 0, show(again));
    if (allGone) assert.match(again.stdout, /^Nothing to remove/m);
  });

  it("precheck flags an Istio control plane that meshd did not install, and Istio's webhooks", async () => {
    const labels = { app: 'istiod', istio: 'pilot', 'istio.io/rev': 'default', 'install.operator.istio.io/owning-resource': 'installed-state' };
    await kube.apply('/apis/apps/v1/namespaces/istio-system/deployments/istiod', {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'istiod', namespace: 'istio-system', labels },
      spec: { selector: { matchLabels: { app: 'istiod' } }, template: { metadata: { labels }, spec: { containers: [{ name: 'discovery', image: 'docker.io/istio/pilot:1.24.0' }] } } },
    });
    await kube.apply('/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istio-validator-istio-system', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: 'istio-validator-istio-system', labels: { app: 'istiod' } },
      webhooks: [
        {
          name: 'rev.validation.istio.io',
          clientConfig: { service: { name: 'istiod', namespace: 'istio-system', path: '/validate' } },
          rules: [{ operations: ['CREATE', 'UPDATE'], apiGroups: ['security.istio.io', 'networking.istio.io'], apiVersions: ['*'], resources: ['*'] }],
          failurePolicy: 'Ignore',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
        },
      ],
    });
    const r = await meshd(['precheck', '--kubeconfig', admin]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /^Error \(Deployment istio-system\/istiod\) an Istio control plane that meshd did not install is running \(docker\.io\/istio\/pilot:1\.24\.0; app=istiod, install\.operator\.istio\.io\/owning-resource=installed-state, istio\.io\/rev=default\)/m);
    assert.match(r.stdout, /^Error \(ValidatingWebhookConfiguration istio-validator-istio-system\) Istio's webhook rev\.validation\.istio\.io \(calls Service istio-system\/istiod\)/m);
    assert.match(r.stdout, /^Error: Issues found when checking the cluster\. meshd may not be safe to install or upgrade\.$/m);
  });

  it('errors: an unknown --set key lists the known keys; a missing kubeconfig says where meshd looked', async () => {
    const bad = await meshd(['install', '--set', 'meshConfig.accessLogFormatt=x', '--dry-run']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--set meshConfig\.accessLogFormatt=x: unknown key "meshConfig\.accessLogFormatt"\. Known keys:/);
    assert.match(bad.stderr, /^ {2}meshConfig\.accessLogFormat +/m);
    const home = mkdtempSync(join(tmpdir(), 'meshd-home-'));
    try {
      const r = await meshd(['verify-install'], { env: { PATH: process.env.PATH, HOME: home } });
      assert.equal(r.code, 1, show(r));
      assert.equal(
        r.stderr.trim(),
        `meshd: no kubeconfig found; looked at --kubeconfig (not given), $KUBECONFIG (unset), ${home}/.kube/config (no such file), the in-cluster service account (KUBERNETES_SERVICE_HOST unset: not in a pod). Pass --kubeconfig <file> or set KUBECONFIG`,
      );
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
