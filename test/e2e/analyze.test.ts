// `meshd analyze` against a real kube-apiserver, run as the built CLI (a child process): the
// objects applied to the cluster produce the expected messages with -n and -A, exit status
// 79; files merged over the cluster replace the cluster's objects of the same name.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds, type KubeObject } from '../support/kube-objects.js';
import { MESHD_CLI, REPO_ROOT } from '../support/meshd.js';

const NS = 'shop';

const OBJECTS: KubeObject[] = [
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: NS }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
  {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'reviews-v1-1', namespace: NS, labels: { app: 'reviews', version: 'v1' } },
    spec: { containers: [{ name: 'reviews', image: 'example/reviews:v1' }] },
  },
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: NS },
    spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews2' }, weight: 50 }, { destination: { host: 'reviews', subset: 'v9' }, weight: 50 }] }] },
  },
  // Passes the CRD's schema, but meshd refuses it: a route with no destination.
  { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'broken', namespace: NS }, spec: { hosts: ['reviews'], gateways: ['istio-system/ingress'], http: [{ match: [{ uri: { prefix: '/' } }] }] } },
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: 'ingress', namespace: 'istio-system' },
    spec: { selector: { istio: 'ingressgateway' }, servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] },
  },
];

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

describe('meshd analyze against a real kube-apiserver', () => {
  let kube: KubeCluster;
  let kubeconfig: string;
  let dir: string;

  const analyze = (...args: string[]): Run => {
    const r = spawnSync(process.execPath, [MESHD_CLI, 'analyze', '--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', env: { ...process.env, TERM: 'dumb' }, timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const lines = (r: Run): string[] => r.stdout.split('\n').filter(Boolean);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-analyze-e2e-'));
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml')));
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io']);
    await kube.createNamespace(NS, { 'istio-injection': 'enabled' });
    await applyAll(kube, OBJECTS);
    kubeconfig = kube.kubeconfig(kube.adminToken);
  });

  after(async () => {
    await kube?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('-n reports what is wrong in that namespace, from the cluster, and exits 79', () => {
    const r = analyze('-n', NS);
    assert.equal(r.status, 79, r.stderr);
    assert.deepEqual(lines(r), [
      'Error [IST0101] (VirtualService shop/reviews) Referenced host not found: "reviews2"',
      'Error [IST0101] (VirtualService shop/reviews) Referenced host+subset in destinationrule not found: "reviews+v9": no DestinationRule for reviews.shop.svc.cluster.local defines subset v9, so this VirtualService is left out.',
      'Error [IST0106] (VirtualService shop/broken) Schema validation error: spec.http[0]: has no destination: set route (with at least one destination), redirect or directResponse',
      'Warning [IST0103] (Pod shop/reviews-v1-1) The pod shop/reviews-v1-1 has no sidecar although its namespace is labelled for injection: it was created before the label, or injection failed. Restart its workload (kubectl rollout restart) to inject it.',
    ]);
    assert.match(r.stderr, /^Error: Analyzers found issues when analyzing namespace: shop\.\n/);
  });

  it('without -n analyzes namespace default, which is clean', () => {
    const r = analyze();
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '✔ No validation issues found when analyzing namespace: default.\n');
  });

  it('-A reports every namespace: the Gateway in istio-system whose selector matches no pod too', () => {
    const r = analyze('-A', '-o', 'json');
    assert.equal(r.status, 79, r.stderr);
    const found = (JSON.parse(r.stdout) as { code: string; origin: string; field: string }[]).map((f) => `${f.code} ${f.origin} ${f.field}`);
    assert.deepEqual(found, [
      'IST0101 Gateway istio-system/ingress spec.selector',
      'IST0101 VirtualService shop/reviews spec.http[0].route[0].destination.host',
      'IST0101 VirtualService shop/reviews spec.http[0].route[1].destination.subset',
      'IST0106 VirtualService shop/broken spec.http[0]',
      'IST0103 Pod shop/reviews-v1-1 metadata.annotations["sidecar.istio.io/status"]',
    ]);
    assert.match(r.stderr, /when analyzing all namespaces\./);
  });

  it('files merged over the cluster replace its objects of the same name, and name their file', () => {
    const fix = join(dir, 'fix.yaml');
    writeFileSync(
      fix,
      [
        'apiVersion: networking.istio.io/v1',
        'kind: VirtualService',
        'metadata: {name: reviews}',
        'spec:',
        '  hosts: [reviews]',
        '  http:',
        '  - route:',
        '    - destination: {host: reviews, subset: v1}',
        '---',
        'apiVersion: networking.istio.io/v1',
        'kind: DestinationRule',
        'metadata: {name: reviews}',
        'spec:',
        '  host: reviews',
        '  subsets:',
        '  - {name: v1, labels: {version: v1}}',
        '  - {name: v2, labels: {version: v2}}',
        '',
      ].join('\n'),
    );
    const r = analyze('-n', NS, '--output-threshold', 'Error', fix);
    assert.equal(r.status, 79, r.stderr);
    // The cluster's reviews is replaced by the file's (which routes to a subset the file defines);
    // the file's DestinationRule has a subset no pod of the cluster has.
    assert.deepEqual(lines(r), [
      `Error [IST0106] (VirtualService shop/broken) Schema validation error: spec.http[0]: has no destination: set route (with at least one destination), redirect or directResponse`,
      `Error [IST0173] (DestinationRule shop/reviews ${fix}:10) The subset v2 selects no pod of Service shop/reviews (pods with app=reviews,version=v2): requests routed to it fail with 503 (no healthy upstream).`,
    ]);
  });

  it('a namespace that does not exist, and --use-kube=false with no files, are usage errors (exit 1)', () => {
    const missing = analyze('-n', 'nowhere');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /namespace "nowhere" not found in the cluster/);
    const nothing = analyze('--use-kube=false');
    assert.equal(nothing.status, 1);
    assert.match(nothing.stderr, /nothing to analyze/);
  });
});
