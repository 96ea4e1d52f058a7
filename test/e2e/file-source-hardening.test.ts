// The real meshd on a config directory with bad entries: an alias bomb and symlink loops
// at startup do not keep it from becoming ready, a file truncated and written back is
// no outage, an edit made while a bad entry is present is not lost, duplicated objects
// name both files, and an oversized file is refused by its size.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** kind/namespace/name of every object in meshd's store. */
async function configKeys(meshd: MeshdProcess): Promise<Set<string>> {
  const list = JSON.parse((await meshd.monitoring('/debug/configz')).body) as { kind: string; metadata: { namespace: string; name: string } }[];
  return new Set(list.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`));
}

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function aliasBomb(): string {
  let text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  let prev = 'a';
  for (const n of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']) {
    text += `${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
    prev = n;
  }
  return text;
}

const HOST = (name: string): string => `${name}.default.svc.cluster.local`;
const web = (ip: string): string => serviceYaml({ name: 'web', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip }] });
const svc = (name: string, port = 80): string => serviceYaml({ name, ports: [{ name: 'http', port }], endpoints: [{ ip: '10.0.0.1' }] });

function fileErrors(metrics: string): number {
  return Number(/meshd_config_errors_total\{kind="file"\} (\d+)/.exec(metrics)?.[1] ?? 0);
}

describe('bad entries at startup: meshd becomes ready and serves the rest', () => {
  let meshd: MeshdProcess;
  const dir = mkdtempSync(join(tmpdir(), 'meshd-hardening-start-'));

  before(async () => {
    writeFileSync(join(dir, 'good.yaml'), svc('good'));
    writeFileSync(join(dir, 'bomb.yaml'), aliasBomb());
    symlinkSync('loop.yaml', join(dir, 'loop.yaml'));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'inner.yaml'), svc('inner'));
    symlinkSync('..', join(dir, 'sub', 'up'));
    meshd = await startMeshd({ configDir: dir, waitForConfig: false });
  });

  after(async () => {
    const code = await meshd.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0);
  });

  it('is ready, serves the good files, and reports each bad entry with its path', async () => {
    await eventually('/ready', async () => (await meshd.monitoring('/ready')).status === 200);
    const reg = await registry(meshd);
    assert.ok(reg.has(HOST('good')) && reg.has(HOST('inner')));
    const bomb = meshd.records().find((r) => r.file === 'bomb.yaml' && r.level === 'error');
    assert.ok(bomb, 'the alias bomb is logged');
    assert.match(String(bomb.msg), /alias/i);
    assert.equal(bomb.path, join(dir, 'bomb.yaml'));
    const loop = meshd.records().find((r) => r.file === 'loop.yaml' && r.level === 'error');
    assert.ok(loop, 'the symlink loop is logged');
    assert.match(String(loop.msg), /ELOOP/);
    assert.ok(!meshd.records().some((r) => /defined in/.test(String(r.msg))), 'the directory loop is not followed');
    assert.ok(fileErrors((await meshd.monitoring('/metrics')).body) >= 2, 'counted in meshd_config_errors_total{kind="file"}');
  });

  it('fixing the bad entries is picked up', async () => {
    meshd.writeConfig('loop.yaml', svc('fixed'));
    meshd.writeConfig('bomb.yaml', svc('defused'));
    await eventually('the fixed files', async () => {
      const reg = await registry(meshd);
      return reg.has(HOST('fixed')) && reg.has(HOST('defused'));
    });
  });
});

describe('at runtime, the file source rides out bad entries and rewrites', () => {
  let meshd: MeshdProcess;

  before(async () => {
    meshd = await startMeshd({ files: { 'web.yaml': web('10.0.0.1'), 'a.yaml': svc('a') } });
  });

  after(async () => {
    const code = await meshd.stop();
    assert.equal(code, 0);
  });

  it('a file truncated and written back 300 ms later keeps its objects meanwhile', async () => {
    const path = join(meshd.configDir, 'web.yaml');
    truncateSync(path, 0);
    // Until the empty file is read: meshd warns that it keeps the last good content (or, wrongly, drops the objects).
    await eventually(
      'the empty file to be read',
      async () => meshd.records().some((r) => r.level === 'warn' && r.file === 'web.yaml' && /empty/.test(String(r.msg))) || !(await configKeys(meshd)).has('Service/default/web'),
    );
    const emptySince = Date.now();
    do {
      const keys = await configKeys(meshd);
      assert.ok(keys.has('Service/default/web') && keys.has('EndpointSlice/default/web-slice'), 'the objects stay in the store');
      assert.deepEqual((await registry(meshd)).get(HOST('web'))?.endpoints['80'], ['10.0.0.1:80']);
      await new Promise((r) => setTimeout(r, 50));
    } while (Date.now() - emptySince < 300);
    writeFileSync(path, web('10.0.0.9'));
    await eventually('the content written back', async () => (await registry(meshd)).get(HOST('web'))?.endpoints['80']?.[0] === '10.0.0.9:80');
    assert.equal(meshd.records().filter((r) => r.file === 'web.yaml' && /empty/.test(String(r.msg))).length, 1, 'warned once');

    // Deleting the file is what removes its objects.
    truncateSync(path, 0);
    await eventually('the second warning', () => meshd.records().filter((r) => r.file === 'web.yaml' && /empty/.test(String(r.msg))).length === 2);
    assert.ok((await configKeys(meshd)).has('Service/default/web'));
    meshd.removeConfig('web.yaml');
    await eventually('the objects to go', async () => !(await configKeys(meshd)).has('Service/default/web'));
  });

  it('an edit made while a symlink loop is in the directory is not lost', async () => {
    symlinkSync('loop.yaml', join(meshd.configDir, 'loop.yaml'));
    await eventually('the loop to be reported', () => meshd.records().some((r) => JSON.stringify(r).includes('ELOOP')));
    const before = meshd.records().length;
    meshd.writeConfig('a.yaml', svc('a', 8080));
    // Wait until a reload has seen the edit: applied it, or failed.
    await eventually('a reload after the edit', async () => (await registry(meshd)).get(HOST('a'))?.ports[0]?.port === 8080 || meshd.records().slice(before).some((r) => r.level === 'error'));
    meshd.removeConfig('loop.yaml');
    await eventually('the edit', async () => (await registry(meshd)).get(HOST('a'))?.ports[0]?.port === 8080);
  });

  it('an object defined in two files is reported with both files', async () => {
    meshd.writeConfig('dup1.yaml', svc('dup', 81));
    meshd.writeConfig('dup2.yaml', svc('dup', 82));
    const message = 'Service default/dup is defined in dup1.yaml#0 and dup2.yaml#0; the definition in dup2.yaml is used';
    await eventually('the duplicate report', () => meshd.records().some((r) => r.msg === message));
    const rec = meshd.records().find((r) => r.msg === message)!;
    assert.equal(rec.file, 'dup2.yaml');
    assert.equal(rec.level, 'error');
    await eventually('the later definition', async () => (await registry(meshd)).get(HOST('dup'))?.ports[0]?.port === 82);
  });

  it('a file over 1 MiB is refused with its name, size and the limit', async () => {
    const before = fileErrors((await meshd.monitoring('/metrics')).body);
    meshd.writeConfig('big.yaml', `${svc('big')}# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    await eventually('the size error', () => meshd.records().some((r) => r.file === 'big.yaml' && /big\.yaml is \d+ bytes, over the limit of 1048576 bytes/.test(String(r.msg))));
    assert.ok(!(await registry(meshd)).has(HOST('big')));
    assert.ok(fileErrors((await meshd.monitoring('/metrics')).body) > before, 'counted');
    assert.equal((await meshd.monitoring('/ready')).status, 200);
  });
});
