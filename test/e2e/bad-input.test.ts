// Bad input never breaks anything else: each problem is logged with the file, the
// document index, the object and the field, and skipped; the rest keeps serving,
// and meshd keeps running.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshd, serviceYaml, type MeshdProcess } from '../support/meshd.js';

interface Registry {
  hostname: string;
  ports: { port: number }[];
  endpoints: Record<string, string[]>;
}

async function registry(meshd: MeshdProcess): Promise<Map<string, Registry>> {
  const list = JSON.parse((await meshd.monitoring('/debug/registryz')).body) as Registry[];
  return new Map(list.map((r) => [r.hostname, r]));
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const good = serviceYaml({ name: 'good', clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.1' }] });
const other = serviceYaml({ name: 'other', clusterIP: '10.96.0.2', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.2' }] });

describe('bad input is reported and skipped; the rest keeps serving', () => {
  let meshd: MeshdProcess;

  before(async () => {
    meshd = await startMeshd({ files: { 'good.yaml': good, 'other.yaml': other } });
  });

  after(async () => {
    const code = await meshd.stop();
    assert.equal(code, 0, 'meshd exits cleanly on SIGTERM');
  });

  it('an invalid Service is logged with file, line, object and field, and skipped', async () => {
    const fine = serviceYaml({ name: 'fine', ports: [{ name: 'http', port: 81 }], endpoints: [{ ip: '10.0.0.3' }] });
    meshd.writeConfig('mixed.yaml', `${fine}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n  namespace: shop\nspec:\n  ports:\n  - name: http\n    port: 99999\n`);
    await eventually('the error log', async () => meshd.records().some((r) => r.object === 'shop/broken'));
    const rec = meshd.records().find((r) => r.object === 'shop/broken')!;
    assert.equal(rec.level, 'error');
    assert.equal(rec.file, 'mixed.yaml');
    // The line where the broken document starts (its `apiVersion`, after the fine ones and `---`).
    assert.equal(rec.line, fine.split('\n').length + 1);
    assert.equal(rec.code, 'IST0106');
    assert.equal(rec.kind, 'Service');
    assert.equal(rec.field, 'spec.ports[0].port');
    await eventually('the valid service of the same file', async () => (await registry(meshd)).has('fine.default.svc.cluster.local'));
    const reg = await registry(meshd);
    assert.ok(!reg.has('broken.shop.svc.cluster.local'));
    assert.ok(reg.has('good.default.svc.cluster.local'));
  });

  it('broken YAML and unknown kinds are reported; other files keep serving', async () => {
    meshd.writeConfig('garbage.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: x\n  : : :\n');
    meshd.writeConfig('widget.yaml', 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n');
    await eventually('the YAML error', async () => meshd.records().some((r) => r.file === 'garbage.yaml' && /invalid YAML/.test(String(r.msg))));
    await eventually('the unknown kind', async () => meshd.records().some((r) => r.file === 'widget.yaml' && /Widget/.test(String(r.msg))));
    const reg = await registry(meshd);
    assert.ok(reg.has('good.default.svc.cluster.local') && reg.has('other.default.svc.cluster.local'));
    assert.equal((await meshd.monitoring('/ready')).status, 200);
    assert.equal(meshd.process.exitCode, null, 'meshd is still running');
  });

  it('a good file edited into broken YAML keeps its last good config', async () => {
    meshd.writeConfig('other.yaml', other.replace('kind: Service', 'kind: Service\n  oops: [unclosed'));
    await eventually('the YAML error for other.yaml', async () => meshd.records().some((r) => r.file === 'other.yaml' && /invalid YAML/.test(String(r.msg))));
    const reg = await registry(meshd);
    assert.deepEqual(reg.get('other.default.svc.cluster.local')?.endpoints['80'], ['10.0.0.2:80']);
  });

  it('a valid object edited into an invalid one keeps its last good version', async () => {
    meshd.writeConfig('good.yaml', good.replace('port: 80', 'port: 0'));
    await eventually('the validation error', async () => meshd.records().some((r) => r.file === 'good.yaml' && r.field === 'spec.ports[0].port'));
    const reg = await registry(meshd);
    assert.deepEqual(reg.get('good.default.svc.cluster.local')?.ports.map((p) => p.port), [80]);
  });

  it('fixing the file brings the new version in', async () => {
    meshd.writeConfig('good.yaml', good.replace('port: 80', 'port: 8080'));
    await eventually('the fixed service', async () => (await registry(meshd)).get('good.default.svc.cluster.local')?.ports[0]?.port === 8080);
  });

  it('counts rejected objects in a metric', async () => {
    const metrics = (await meshd.monitoring('/metrics')).body;
    assert.match(metrics, /meshd_config_errors_total\{kind="Service"\} [1-9]/);
  });
});
