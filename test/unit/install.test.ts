// meshd install's pieces that need no cluster: the kustomize renderer (strategic-merge and
// JSON6902 patches, what it refuses), `--set` parsing and its effect on the profiles, the
// effective settings `profile dump` prints, the profile diff, and the readiness rules.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { renderKustomization } from '../../src/install/kustomize.js';
import { strategicMerge } from '../../src/install/strategic-merge.js';
import { applyJsonPatch, parseJsonPatch } from '../../src/install/json-patch.js';
import { parseSetFlags, SETTING_KEYS } from '../../src/install/settings.js';
import { atConfigPath, effectiveSettings, listProfiles, renderInstall } from '../../src/install/profiles.js';
import { unifiedDiff } from '../../src/install/line-diff.js';
import { deploymentAvailable } from '../../src/install/cluster.js';
import { field, type KubeObject } from '../../src/install/objects.js';
import { REPO_ROOT } from '../support/meshd.js';

const MANIFESTS = join(REPO_ROOT, 'manifests');

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: apps
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: app
          image: app:1
          env:
            - {name: A, value: "1"}
            - {name: B, value: "2"}
          ports:
            - {name: http, containerPort: 8080}
        - name: sidecar
          image: side:1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: apps
spec:
  ports:
    - {name: http, port: 80, targetPort: 8080}
`;

describe('kustomize renderer', () => {
  let dir: string;
  const write = (rel: string, text: string) => {
    const p = join(dir, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, text);
  };
  const render = (rel: string) => renderKustomization(join(dir, rel)).objects;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-kustomize-'));
    write('base/app.yaml', deployment);
    write('base/kustomization.yaml', 'resources: [app.yaml]\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('strategic merge: named list items merge on their key, null deletes, other fields merge', () => {
    write(
      'smp/patch.yaml',
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: app
          image: app:2
          env:
            - {name: B, value: "20"}
            - {name: C, value: "3"}
        - name: extra
          image: extra:1
`,
    );
    write('smp/kustomization.yaml', 'resources: [../base]\npatches:\n  - path: patch.yaml\n  - patch: |\n      apiVersion: v1\n      kind: Service\n      metadata: {name: web, namespace: apps}\n      spec:\n        ports:\n          - {port: 80, targetPort: 9090}\n        sessionAffinity: null\n');
    const [svc, d] = render('smp');
    assert.equal(d!.kind, 'Deployment', 'kustomize order: Service before Deployment');
    assert.equal(field(d, 'spec', 'replicas'), 3);
    const containers = field(d, 'spec', 'template', 'spec', 'containers') as { name: string; image: string; env?: unknown }[];
    assert.deepEqual(
      containers.map((c) => [c.name, c.image]),
      [
        ['app', 'app:2'],
        ['sidecar', 'side:1'],
        ['extra', 'extra:1'],
      ],
    );
    assert.deepEqual(containers[0]!.env, [
      { name: 'A', value: '1' },
      { name: 'B', value: '20' },
      { name: 'C', value: '3' },
    ]);
    assert.deepEqual(field(svc, 'spec', 'ports'), [{ name: 'http', port: 80, targetPort: 9090 }], 'Service ports merge on port');
    assert.deepEqual(strategicMerge({ a: 1, b: { c: 2 } }, { b: null }), { a: 1 });
  });

  it('JSON6902 patches with a target', () => {
    write('json/kustomization.yaml', 'resources: [../base]\npatches:\n  - target: {kind: Deployment, name: w.b}\n    patch: |\n      - {op: replace, path: /spec/replicas, value: 5}\n      - {op: add, path: /spec/template/spec/containers/0/args, value: [--x]}\n      - {op: remove, path: /spec/template/spec/containers/1}\n');
    const d = render('json').find((o) => o.kind === 'Deployment')!;
    assert.equal(field(d, 'spec', 'replicas'), 5);
    assert.deepEqual(field(d, 'spec', 'template', 'spec', 'containers', 0, 'args'), ['--x']);
    assert.equal((field(d, 'spec', 'template', 'spec', 'containers') as unknown[]).length, 1);
    const ops = parseJsonPatch([{ op: 'test', path: '/a', value: 2 }], 'p');
    assert.throws(() => applyJsonPatch({ a: 1 }, ops, 'p'), /p: operation 0 \(test \/a\): test failed: "\/a" is not 2/);
    assert.throws(() => applyJsonPatch({ a: [1] }, parseJsonPatch([{ op: 'remove', path: '/a/3' }], 'p'), 'p'), /index 3 is past the end of the list \(1 items\)/);
  });

  it('refuses what it does not support, naming the file and field', () => {
    write('prefix/kustomization.yaml', 'resources: [../base]\nnamePrefix: x-\n');
    assert.throws(() => render('prefix'), /prefix\/kustomization\.yaml: "namePrefix" is not supported by meshd's renderer \(supported: apiVersion, kind, resources, patches\)/);
    write('directive/kustomization.yaml', 'resources: [../base]\npatches:\n  - patch: |\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata: {name: web, namespace: apps}\n      spec:\n        template:\n          spec:\n            containers:\n              - {name: sidecar, $patch: delete}\n');
    assert.throws(() => render('directive'), /spec\.template\.spec\.containers\.0\.\$patch: the patch directive "\$patch" is not supported/);
    write('nomatch/kustomization.yaml', 'resources: [../base]\npatches:\n  - patch: |\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata: {name: api, namespace: apps}\n');
    assert.throws(() => render('nomatch'), /the patch for Deployment apps\/api matches no resource/);
    write('twice/a.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: apps}\n');
    write('twice/kustomization.yaml', 'resources: [a.yaml, a.yaml]\n');
    assert.throws(() => render('twice'), /twice\/kustomization\.yaml: ConfigMap apps\/c \(v1\) appears twice among the resources/);
    write('outside/kustomization.yaml', 'resources: [../base/app.yaml]\n');
    assert.throws(() => render('outside'), /resource "\.\.\/base\/app\.yaml" is outside/);
    write('loop/kustomization.yaml', 'resources: [../loop2]\n');
    write('loop2/kustomization.yaml', 'resources: [../loop]\n');
    assert.throws(() => render('loop'), /kustomizations include each other/);
    write('missing/kustomization.yaml', 'resources: [nothere.yaml]\n');
    assert.throws(() => render('missing'), /resource "nothere\.yaml" does not exist/);
    write('noname/bad.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n');
    write('noname/kustomization.yaml', 'resources: [bad.yaml]\n');
    assert.throws(() => render('noname'), /bad\.yaml \(document 1\): ConfigMap has no metadata\.name/);
  });
});

describe('--set and the profiles', () => {
  const objectsOf = (...flags: string[]) => renderInstall(MANIFESTS, parseSetFlags(flags));
  const find = (objs: KubeObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  const mesh = (objs: KubeObject[]) => parseYaml(field(find(objs, 'ConfigMap', 'istio'), 'data', 'mesh') as string) as Record<string, unknown>;

  it('parses keys and values, and refuses unknown keys and bad values with what is valid', () => {
    assert.deepEqual(parseSetFlags([]), { profile: 'default', overrides: [] });
    assert.deepEqual(parseSetFlags(['profile=demo', 'meshConfig.enableAutoMtls=false', 'components.pilot.k8s.replicaCount=3', 'spec.components.egressGateways[name:istio-egressgateway].enabled=true']), {
      profile: 'demo',
      overrides: [
        { key: 'meshConfig.enableAutoMtls', value: false },
        { key: 'components.pilot.k8s.replicaCount', value: 3 },
        { key: 'components.egressGateways[0].enabled', value: true },
      ],
    });
    assert.throws(() => parseSetFlags(['nope=1']), (e: Error) => e.message.startsWith('--set nope=1: unknown key "nope". Known keys:\n  profile ') && SETTING_KEYS.every((k) => e.message.includes(`  ${k.key} `)));
    assert.throws(() => parseSetFlags(['meshConfig.outboundTrafficPolicy.mode=DENY']), /--set meshConfig\.outboundTrafficPolicy\.mode=DENY: "DENY" is not one of ALLOW_ANY, REGISTRY_ONLY/);
    assert.throws(() => parseSetFlags(['components.pilot.k8s.replicaCount=0']), /"0" is not a whole number from 1 to 100/);
    assert.throws(() => parseSetFlags(['meshConfig.enableAutoMtls=yes']), /"yes" is not a boolean; use true or false/);
    assert.throws(() => parseSetFlags(['profile']), /--set profile: expected key=value/);
    assert.throws(() => objectsOf('profile=huge'), /unknown profile "huge"; the profiles are default, demo, minimal/);
  });

  it('applies settings to the rendered objects', () => {
    const objs = objectsOf(
      'profile=minimal',
      'meshConfig.accessLogFile=/dev/stdout',
      'meshConfig.accessLogEncoding=JSON',
      'meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY',
      'values.global.hub=registry.example.com/istio',
      'values.pilot.image=ghcr.io/example/meshd:0.2.0',
      'components.pilot.k8s.replicaCount=3',
      'components.ingressGateways[0].enabled=true',
    );
    assert.deepEqual(mesh(objs), {
      accessLogFile: '/dev/stdout',
      defaultConfig: { discoveryAddress: 'istiod.istio-system.svc:15012' },
      enableAutoMtls: true,
      outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' },
      rootNamespace: 'istio-system',
      trustDomain: 'cluster.local',
      accessLogEncoding: 'JSON',
    });
    const values = JSON.parse(field(find(objs, 'ConfigMap', 'istio-sidecar-injector'), 'data', 'values') as string) as { global: Record<string, unknown> };
    assert.deepEqual(values.global, { hub: 'registry.example.com/istio', tag: '1.31.1', proxy: { statusPort: 15020 } });
    const istiod = find(objs, 'Deployment', 'istiod');
    assert.equal(field(istiod, 'spec', 'replicas'), 3);
    assert.equal(field(istiod, 'spec', 'template', 'spec', 'containers', 0, 'image'), 'ghcr.io/example/meshd:0.2.0');
    assert.ok(find(objs, 'Deployment', 'istio-ingressgateway') && find(objs, 'ConfigMap', 'istio-ingressgateway-bootstrap'));
    assert.equal(objs.filter((o) => o.kind === 'Service' && o.metadata.name === 'istio-ingressgateway').length, 1);

    const noGateways = objectsOf('profile=demo', 'components.ingressGateways[0].enabled=false', 'components.egressGateways[0].enabled=false');
    assert.deepEqual(noGateways.filter((o) => /gateway/.test(o.metadata.name) && o.kind !== 'CustomResourceDefinition').map((o) => o.metadata.name), []);
    assert.equal(mesh(noGateways).accessLogFile, '/dev/stdout', 'the rest of demo stays');
  });

  it('profile dump: the effective settings read back from the objects; --config-path', () => {
    assert.deepEqual(listProfiles(MANIFESTS), ['default', 'demo', 'minimal']);
    const demo = effectiveSettings(objectsOf('profile=demo'), 'demo');
    assert.deepEqual(atConfigPath(demo, 'components'), {
      pilot: { enabled: true, k8s: { replicaCount: 2 } },
      ingressGateways: [{ name: 'istio-ingressgateway', enabled: true }],
      egressGateways: [{ name: 'istio-egressgateway', enabled: true }],
    });
    assert.equal(atConfigPath(demo, 'meshConfig.accessLogFile'), '/dev/stdout');
    assert.equal(atConfigPath(demo, 'spec.values.pilot.image'), 'meshd:dev');
    assert.deepEqual(atConfigPath(effectiveSettings(objectsOf('profile=minimal'), 'minimal'), 'components.ingressGateways[0]'), { name: 'istio-ingressgateway', enabled: false });
    assert.throws(() => atConfigPath(demo, 'meshConfig.nope'), /--config-path meshConfig\.nope: no field "nope" \(fields here: accessLogFile, /);
  });

  it('profile diff: a unified diff of two texts', () => {
    assert.equal(unifiedDiff('a\nb\nc\n', 'a\nb\nc\n', 'x', 'y'), '');
    assert.equal(unifiedDiff('1\n2\n3\n4\n5\n6\n7\n8\n9', '1\n2\n3\n4\nfive\n6\n7\n8\n9', 'x', 'y', 1), '--- x\n+++ y\n@@ -4,3 +4,3 @@\n 4\n-5\n+five\n 6\n');
  });
});

describe('Deployment readiness (as kubectl rollout status judges it)', () => {
  const d = (spec: number, status: Record<string, unknown>, generation = 1): KubeObject => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x', generation } as never, spec: { replicas: spec }, status: status as never });
  it('needs the current generation observed, every replica updated and available, no old ones left', () => {
    assert.deepEqual(deploymentAvailable(d(2, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2 })), { ok: true, why: '2 of 2 replicas available' });
    assert.match(deploymentAvailable(d(2, { observedGeneration: 1 }, 2)).why, /has not seen generation 2 yet/);
    assert.equal(deploymentAvailable(d(2, { observedGeneration: 1, replicas: 2, updatedReplicas: 1, availableReplicas: 2 })).why, '1 of 2 replicas updated, 2 available');
    assert.equal(deploymentAvailable(d(2, { observedGeneration: 1, replicas: 3, updatedReplicas: 2, availableReplicas: 3 })).why, '1 old replicas are pending termination');
    assert.equal(deploymentAvailable(d(2, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 1 })).why, '1 of 2 replicas available');
    assert.match(deploymentAvailable(d(1, { observedGeneration: 1, conditions: [{ type: 'Progressing', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "x-1" has timed out progressing.' }] })).why, /rollout failed: ReplicaSet "x-1" has timed out/);
  });
});
