import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { kubeInjectYaml } from '../../src/inject/kube-inject.js';
import { defaultInjectorSettings } from '../../src/inject/settings.js';
import { kubeInjectCommand } from '../../src/cli/kube-inject.js';

// Parsed output is walked freely in assertions.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const SERVICE = `# the httpbin service, left as it is
apiVersion: v1
kind: Service
metadata:
  name: httpbin   # keep this comment
spec:
  selector: {app: httpbin}
  ports:
  - {name: http, port: 8000, targetPort: 8080}
`;

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpbin
spec:
  selector:
    matchLabels: {app: httpbin}
  template:
    metadata:
      labels: {app: httpbin, version: v1}
    spec:
      containers:
      - name: httpbin
        image: kennethreitz/httpbin
        ports: [{containerPort: 8080}]
`;

const CRONJOB = `apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
  namespace: ops
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: report, image: busybox}
`;

const FILE = [DEPLOYMENT, CRONJOB, SERVICE].join('---\n');

const docs = (yaml: string): Any[] => parseAllDocuments(yaml).map((d) => d.toJS()).filter((d) => d !== null);
const names = (cs: { name: string }[] | undefined): string[] => (cs ?? []).map((c) => c.name);

describe('meshd kube-inject', () => {
  const out = kubeInjectYaml(FILE, defaultInjectorSettings());
  const [deploy, cron, svc] = docs(out.yaml);

  it('injects the Deployment and the CronJob, in document order, and leaves the Service alone', () => {
    assert.deepEqual(
      docs(out.yaml).map((d) => d.kind),
      ['Deployment', 'CronJob', 'Service'],
    );
    const t = deploy.spec.template;
    assert.deepEqual(names(t.spec.initContainers), ['istio-init']);
    assert.deepEqual(names(t.spec.containers), ['httpbin', 'istio-proxy']);
    assert.equal(t.metadata.labels['security.istio.io/tlsMode'], 'istio');
    assert.equal(t.metadata.labels['service.istio.io/canonical-revision'], 'v1');
    assert.ok(t.metadata.annotations['sidecar.istio.io/status']);
    const proxyEnv = Object.fromEntries(t.spec.containers[1].env.map((e: Any) => [e.name, e.value]));
    assert.equal(proxyEnv.ISTIO_META_OWNER, 'kubernetes://apis/apps/v1/namespaces/default/deployments/httpbin');

    const ct = cron.spec.jobTemplate.spec.template;
    assert.deepEqual(names(ct.spec.containers), ['report', 'istio-proxy']);
    const cronEnv = Object.fromEntries(ct.spec.containers[1].env.map((e: Any) => [e.name, e.value]));
    assert.equal(cronEnv.ISTIO_META_WORKLOAD_NAME, 'report');
    assert.equal(cronEnv.ISTIO_META_OWNER, 'kubernetes://apis/batch/v1/namespaces/ops/cronjobs/report');
    assert.equal(cron.spec.schedule, '*/5 * * * *');

    // The Service is byte for byte what came in, comments included.
    assert.ok(out.yaml.endsWith(`---\n${SERVICE}---\n`), out.yaml.slice(-400));
    assert.deepEqual(svc, docs(SERVICE)[0]);
    assert.ok(out.yaml.endsWith('---\n'));
  });

  it('is idempotent: injecting its own output changes nothing', () => {
    const again = kubeInjectYaml(out.yaml, defaultInjectorSettings());
    assert.equal(again.yaml, out.yaml);
    assert.ok(again.notes.every((n) => !n.injected && n.reason === 'already injected'));
  });

  it('reports the objects it skips and passes them through', () => {
    const optedOut = DEPLOYMENT.replace('labels: {app: httpbin, version: v1}', 'labels: {app: httpbin, sidecar.istio.io/inject: "false"}');
    const r = kubeInjectYaml(optedOut, defaultInjectorSettings());
    assert.deepEqual(docs(r.yaml)[0], docs(optedOut)[0]);
    assert.equal(r.notes.length, 1);
    assert.equal(r.notes[0]!.injected, false);
    assert.match(r.notes[0]!.object, /^Deployment default\/httpbin$/);
    assert.match(r.notes[0]!.reason, /opts it out/);
  });

  it('injects Pods, StatefulSets, DaemonSets, ReplicaSets and Jobs, also inside a List', () => {
    const list = {
      apiVersion: 'v1',
      kind: 'List',
      items: ['StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].map((kind) => ({
        apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1',
        kind,
        metadata: { name: kind.toLowerCase() },
        spec: { template: { spec: { containers: [{ name: 'app', image: 'x' }] } } },
      })),
    };
    const podDoc = 'apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec:\n  containers: [{name: app, image: x}]\n';
    const r = kubeInjectYaml(`${JSON.stringify(list)}\n---\n${podDoc}`, defaultInjectorSettings());
    const [l, p] = docs(r.yaml);
    for (const item of l.items) assert.deepEqual(names(item.spec.template.spec.containers), ['app', 'istio-proxy'], item.kind);
    assert.deepEqual(names(p.spec.containers), ['app', 'istio-proxy']);
    assert.equal(r.notes.filter((n) => n.injected).length, 5);
  });

  it('fails on YAML that does not parse, and on a bad annotation, naming the document', () => {
    assert.throws(() => kubeInjectYaml(`${SERVICE}---\nkind: [unclosed\n`, defaultInjectorSettings()), /^Error: document 1:/);
    const bad = DEPLOYMENT.replace('labels: {app: httpbin, version: v1}', 'annotations: {traffic.sidecar.istio.io/excludeOutboundPorts: "http"}');
    assert.throws(() => kubeInjectYaml(bad, defaultInjectorSettings()), /document 0: Deployment default\/httpbin: annotation traffic\.sidecar\.istio\.io\/excludeOutboundPorts/);
  });

  describe('the command', () => {
    const run = async (args: string[]): Promise<void> => {
      const cmd = kubeInjectCommand();
      cmd.exitOverride();
      await cmd.parseAsync(args, { from: 'user' });
    };

    it('reads -f, writes -o, takes settings from flags and from the injector ConfigMap', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kube-inject-'));
      try {
        const input = join(dir, 'app.yaml');
        const output = join(dir, 'out.yaml');
        writeFileSync(input, FILE);
        await run(['-f', input, '-o', output]);
        assert.equal(readFileSync(output, 'utf8'), out.yaml, 'the command writes what kubeInjectYaml returns');

        await run(['-f', input, '-o', output, '--hub', 'registry.local/istio', '--tag', '1.30.0']);
        assert.match(readFileSync(output, 'utf8'), /image: registry\.local\/istio\/proxyv2:1\.30\.0/);

        const cm = join(dir, 'injector.yaml');
        writeFileSync(
          cm,
          ['apiVersion: v1', 'kind: ConfigMap', 'metadata: {name: istio-sidecar-injector, namespace: istio-system}', 'data:', '  values: \'{"global":{"hub":"cm.local/istio","tag":"9.9"}}\'', '  meshd: "mode: agentless"', ''].join('\n'),
        );
        await run(['-f', input, '-o', output, '--injector-config', cm]);
        const t = docs(readFileSync(output, 'utf8'))[0].spec.template;
        assert.deepEqual(names(t.spec.initContainers), ['istio-init', 'meshd-bootstrap']);
        assert.equal(t.spec.initContainers[0].image, 'cm.local/istio/proxyv2:9.9');
        assert.equal(t.spec.containers[1].image, 'envoyproxy/envoy:v1.40.0');

        // A flag wins over the ConfigMap.
        await run(['-f', input, '-o', output, '--injector-config', cm, '--mode', 'agent']);
        assert.deepEqual(names(docs(readFileSync(output, 'utf8'))[0].spec.template.spec.initContainers), ['istio-init']);

        writeFileSync(cm, 'apiVersion: v1\nkind: ConfigMap\ndata:\n  values: \'{"global":{"proxy":{"statusPort":"x"}}}\'\n');
        await assert.rejects(run(['-f', input, '-o', output, '--injector-config', cm]), /--injector-config .*: data\.values: global\.proxy\.statusPort/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
