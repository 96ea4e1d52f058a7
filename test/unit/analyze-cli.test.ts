// `meshd analyze`'s command line in-process: exit statuses (79 for findings at or above the
// failure threshold, 65 for unparseable input, 1 for usage errors), the output threshold,
// output formats and namespace selection, on files only.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { runAnalyze, type AnalyzeOptions, EXIT_FINDINGS, EXIT_DATA_ERROR, EXIT_USAGE } from '../../src/cli/analyze.js';

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`;
/** Only a Warning (IST0174) and no Error. */
const WARNING_ONLY = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec: {host: ratings}
`;
/** An Error (IST0101) in namespace "apps". */
const ERROR_IN_APPS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: apps}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews2}
`;

async function run(paths: string[], o: AnalyzeOptions = {}, env: NodeJS.ProcessEnv = { KUBECONFIG: '/nonexistent' }): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await runAnalyze(paths, { useKube: 'false', ...o }, { out: (t) => (out += t), err: (t) => (err += t), env });
  return { status, out, err };
}

describe('meshd analyze: exit status and thresholds', () => {
  let dir: string;
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshd-analyze-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 with a clean file, saying so on stderr', async () => {
    const r = await run([file('clean.yaml', SERVICE)]);
    assert.equal(r.status, 0);
    assert.equal(r.out, '');
    assert.match(r.err, /^✔ No validation issues found when analyzing .*clean\.yaml\.\n$/);
  });

  it('exits 79 on an Error, 0 on a Warning by default, 79 on a Warning with --failure-threshold Warning', async () => {
    const errors = await run([file('error.yaml', ERROR_IN_APPS)]);
    assert.equal(errors.status, EXIT_FINDINGS);
    assert.match(errors.out, /^Error \[IST0101\] \(VirtualService apps\/reviews .*error\.yaml:1\) Referenced host not found: "reviews2"\n$/);
    assert.match(errors.err, /^Error: Analyzers found issues when analyzing /);
    const warning = file('warning.yaml', WARNING_ONLY);
    assert.equal((await run([warning])).status, 0);
    assert.equal((await run([warning], { failureThreshold: 'warning' })).status, EXIT_FINDINGS);
    assert.equal((await run([warning], { failureThreshold: 'Info' })).status, EXIT_FINDINGS);
  });

  it('--output-threshold hides what is less severe, but the exit status still counts all', async () => {
    const both = file('both.yaml', `${WARNING_ONLY}---\n${ERROR_IN_APPS}`);
    const all = await run([both]);
    assert.deepEqual(all.out.trim().split('\n').map((l) => l.split(' ')[0]), ['Error', 'Warning']);
    const errorsOnly = await run([both], { outputThreshold: 'Error' });
    assert.deepEqual(errorsOnly.out.trim().split('\n').map((l) => l.split(' ')[0]), ['Error']);
    const hidden = await run([both], { outputThreshold: 'Error', failureThreshold: 'Warning' });
    assert.equal(hidden.status, EXIT_FINDINGS);
    const nothingShown = await run([file('w.yaml', WARNING_ONLY)], { outputThreshold: 'Error' });
    assert.equal(nothingShown.out, '');
    assert.equal(nothingShown.status, 0);
  });

  it('-o json and -o yaml give records with istioctl fields and the object and field; [] when clean', async () => {
    const err = file('e.yaml', ERROR_IN_APPS);
    const json = JSON.parse((await run([err], { output: 'json' })).out) as Record<string, string>[];
    assert.deepEqual(json, [
      {
        code: 'IST0101',
        documentationUrl: 'https://istio.io/latest/docs/reference/config/analysis/ist0101/',
        field: 'spec.http[0].route[0].destination.host',
        kind: 'VirtualService',
        level: 'Error',
        message: 'Referenced host not found: "reviews2"',
        name: 'reviews',
        namespace: 'apps',
        origin: `VirtualService apps/reviews ${err}:1`,
      },
    ]);
    const yaml = await run([err], { output: 'yaml' });
    assert.deepEqual(parse(yaml.out), json);
    assert.equal(yaml.status, EXIT_FINDINGS);
    assert.equal((await run([file('c.yaml', SERVICE)], { output: 'json' })).out, '[]\n');
    assert.equal((await run([file('c2.yaml', SERVICE)], { output: 'yaml' })).out, '[]\n');
  });

  it('-n keeps one namespace; objects without a namespace in files go to it', async () => {
    const both = file('ns.yaml', `${WARNING_ONLY}---\n${ERROR_IN_APPS}`);
    const apps = await run([both], { namespace: 'apps' });
    assert.match(apps.out, /^Error \[IST0101\] \(VirtualService apps\/reviews/);
    assert.equal(apps.out.split('\n').filter(Boolean).length, 1);
    const other = await run([both], { namespace: 'other' });
    assert.equal(other.status, 0);
    assert.match(other.err, /✔ No validation issues found when analyzing namespace: other\./);
    const unqualified = file('nons.yaml', 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\nspec: {host: nothere}\n');
    assert.match((await run([unqualified], { namespace: 'team' })).out, /\(DestinationRule team\/dr /);
  });

  it('colours severities as istioctl does when asked', async () => {
    const r = await run([file('col.yaml', ERROR_IN_APPS)], { color: 'true' });
    assert.ok(r.out.startsWith('\u001b[1;31mError\u001b[0m [IST0101]'), JSON.stringify(r.out));
  });

  it('reads directories recursively, naming each file in the messages', async () => {
    const sub = join(dir, 'tree', 'nested');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'vs.yaml'), ERROR_IN_APPS);
    const r = await run([join(dir, 'tree')]);
    assert.equal(r.status, EXIT_FINDINGS);
    assert.ok(r.out.includes(`${join(dir, 'tree', 'nested', 'vs.yaml')}:1)`), r.out);
  });

  it('exits 65 when a document is not YAML (and nothing worse is found), 79 when an Error is found too', async () => {
    const broken = file('broken.yaml', 'apiVersion: v1\nkind: [unclosed\n');
    const r = await run([broken]);
    assert.equal(r.status, EXIT_DATA_ERROR);
    assert.match(r.err, /error adding files: .*broken\.yaml \(document 0\): invalid YAML/);
    assert.match(r.err, /No validation issues found when analyzing .* \(but 1 document could not be parsed\)/);
    assert.equal((await run([broken, file('e2.yaml', ERROR_IN_APPS)])).status, EXIT_FINDINGS);
  });

  it('exits 1 with a message for usage errors', async () => {
    const cases: [string[], AnalyzeOptions, RegExp][] = [
      [[join(dir, 'missing.yaml')], {}, /cannot read .*missing\.yaml: ENOENT/],
      [[file('u.yaml', SERVICE)], { output: 'table' }, /-o "table" is not an output format; use one of log, json, yaml/],
      [[file('u2.yaml', SERVICE)], { failureThreshold: 'fatal' }, /--failure-threshold "fatal" is not a severity; use one of Error, Warning, Info/],
      [[file('u3.yaml', SERVICE)], { outputThreshold: 'loud' }, /--output-threshold "loud" is not a severity/],
      [[file('u4.yaml', SERVICE)], { namespace: 'a', allNamespaces: true }, /either -n NAMESPACE or -A, not both/],
      [[file('u5.yaml', SERVICE)], { useKube: 'maybe' }, /"maybe" is not true or false/],
      [[], {}, /nothing to analyze/],
    ];
    for (const [paths, o, message] of cases) {
      const r = await run(paths, o);
      assert.equal(r.status, EXIT_USAGE, `${JSON.stringify(o)}: ${r.err}`);
      assert.match(r.err, message);
    }
  });

  it('with --use-kube on: files alone, with a note, when there is no kubeconfig; exit 1 when there is nothing at all, or the cluster cannot be reached', async () => {
    const f = file('k.yaml', SERVICE);
    const noConfig = await run([f], { useKube: true });
    assert.equal(noConfig.status, 0);
    assert.match(noConfig.err, /no kubeconfig at \/nonexistent: analyzing the files alone/);
    const nothing = await run([], { useKube: true });
    assert.equal(nothing.status, EXIT_USAGE);
    assert.match(nothing.err, /no cluster to analyze: no kubeconfig at \/nonexistent/);
    const kubeconfig = file(
      'kubeconfig',
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    const unreachable = await run([f], { useKube: true, kubeconfig });
    assert.equal(unreachable.status, EXIT_USAGE);
    assert.match(unreachable.err, /cannot read the cluster at https:\/\/127\.0\.0\.1:1 \(kubeconfig .*\): .*ECONNREFUSED.*--use-kube=false/);
  });
  it('--meshConfigFile: a CUSTOM policy whose provider the mesh config has is clean; without it, IST0101; a bad file is a usage error', async () => {
    const policy = file(
      'custom.yaml',
      `${SERVICE}---
apiVersion: v1
kind: Service
metadata: {name: ext-authz, namespace: apps}
spec: {selector: {app: ext-authz}, ports: [{name: http, port: 8000}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: apps}
spec: {action: CUSTOM, provider: {name: authz}, rules: [{to: [{operation: {paths: ["/admin/*"]}}]}]}
`,
    );
    const mesh = file('mesh.yaml', 'extensionProviders:\n- name: authz\n  envoyExtAuthzHttp: {service: ext-authz.apps.svc.cluster.local, port: 8000}\n');
    const clean = await run([policy], { meshConfigFile: mesh });
    assert.equal(clean.status, 0, clean.out + clean.err);
    const without = await run([policy]);
    assert.equal(without.status, EXIT_FINDINGS);
    assert.match(without.out, /Error \[IST0101\] \(AuthorizationPolicy apps\/ext .*\) Referenced extension provider not found: "authz"/);
    const bad = await run([policy], { meshConfigFile: file('bad-mesh.yaml', 'extensionProviders: [{name: authz}]\n') });
    assert.equal(bad.status, EXIT_USAGE);
    assert.match(bad.err, /--meshConfigFile: mesh config \(file .*bad-mesh\.yaml\): extensionProviders\[0\]: sets no provider/);
  });
});
