// The file source survives bad entries in the watched directory: a failed reload keeps
// the edits it could not apply, one bad file (alias bomb, symlink loop, oversized, an
// unreadable directory) is skipped alone, an emptied file keeps its last good content,
// and duplicated objects are reported with both files.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino, type Logger } from 'pino';
import { ConfigStore } from '../../src/model/store.js';
import type { MeshObject } from '../../src/model/objects.js';
import { FileSource, loadFiles, mergeFiles, parseYamlText, type FileLoad, type FileProblem } from '../../src/sources/file/file-source.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshd-file-hardening-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

type LogRecord = Record<string, unknown> & { level: string; msg: string };

function captureLogger(): { log: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const log = pino({ level: 'debug', formatters: { level: (label) => ({ level: label }) } }, { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) });
  return { log, records };
}

function svc(name: string, port = 80): string {
  return `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: default\nspec:\n  selector: {app: ${name}}\n  ports:\n  - name: http\n    port: ${port}\n`;
}

function vs(name: string, host: string): string {
  return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: default}\nspec:\n  hosts: [${host}]\n  http: [{route: [{destination: {host: ${host}}}]}]\n`;
}

/** Nine levels of nine aliases: 9^9 strings once expanded. */
function aliasBomb(): string {
  let text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  let prev = 'a';
  for (const n of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']) {
    text += `${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
    prev = n;
  }
  return text;
}

function port(store: ConfigStore, name: string): number | undefined {
  return store.get('Service', 'default', name)?.spec.ports[0]?.port;
}

async function eventually(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function names(store: ConfigStore): string[] {
  return store
    .list('Service')
    .map((o) => o.metadata.name)
    .sort();
}

describe('a failed reload leaves its changed files pending', () => {
  it('an edit made while an alias bomb is in the directory is applied (and not lost once the bomb is removed)', async () => {
    const dir = tempDir({ 'a.yaml': svc('a'), 'b.yaml': svc('b') });
    const store = new ConfigStore();
    const { log, records } = captureLogger();
    const source = new FileSource({ dir, store, log });
    source.start();
    try {
      // Sorted before the edited file: a reload that throws there has not read b.yaml yet.
      writeFileSync(join(dir, '0-bomb.yaml'), aliasBomb());
      await eventually('the bomb to be reported', () => records.some((r) => r.level === 'error' && /bomb\.yaml|alias/i.test(JSON.stringify(r))));
      const before = records.length;
      writeFileSync(join(dir, 'b.yaml'), svc('b', 8080));
      // Wait until a reload has seen the edit: applied it, or failed.
      await eventually('a reload after the edit', () => port(store, 'b') === 8080 || records.slice(before).some((r) => r.level === 'error'));
      rmSync(join(dir, '0-bomb.yaml'));
      await eventually('the edit to b.yaml', () => port(store, 'b') === 8080);
      assert.equal(port(store, 'a'), 80);
    } finally {
      source.stop();
    }
  });

  it('a reload that throws merges the files it was given back into the pending set', () => {
    const dir = tempDir({ 'a.yaml': svc('a'), 'b.yaml': svc('b') });
    let failing = false;
    class FlakyStore extends ConfigStore {
      override replaceSource(source: string, objects: MeshObject[]): ReturnType<ConfigStore['replaceSource']> {
        if (failing) throw new Error('store unavailable');
        return super.replaceSource(source, objects);
      }
    }
    const store = new FlakyStore();
    const problems: FileProblem[] = [];
    const { log, records } = captureLogger();
    const source = new FileSource({ dir, store, log, onProblem: (p) => problems.push(p) });
    source.reload();
    failing = true;
    writeFileSync(join(dir, 'b.yaml'), svc('b', 8080));
    source.noteChange('b.yaml');
    assert.equal(source.applyPendingChanges(), false, 'the reload failed');
    assert.ok(records.some((r) => r.level === 'error' && /reloading the config directory failed/.test(r.msg)));
    assert.equal(problems.length, 1, 'the failure is counted');
    failing = false;
    writeFileSync(join(dir, 'a.yaml'), svc('a', 81));
    source.noteChange('a.yaml');
    assert.equal(source.applyPendingChanges(), true);
    assert.equal(port(store, 'a'), 81);
    assert.equal(port(store, 'b'), 8080, 'the edit the failed reload held is applied by the next one');
  });
});

describe('one bad entry is skipped alone', () => {
  it('an alias bomb, a symlink loop and a symlinked directory loop at startup: start() loads the rest, reports each, and watches', async () => {
    const dir = tempDir({ 'a.yaml': svc('a'), 'sub/b.yaml': svc('b'), 'bomb.yaml': `${svc('hidden')}---\n${aliasBomb()}` });
    symlinkSync('loop.yaml', join(dir, 'loop.yaml'));
    symlinkSync('..', join(dir, 'sub', 'up'));
    const store = new ConfigStore();
    const problems: FileProblem[] = [];
    const { log } = captureLogger();
    const source = new FileSource({ dir, store, log, onProblem: (p) => problems.push(p) });
    try {
      const r = source.start();
      assert.deepEqual(names(store), ['a', 'b', 'hidden'], 'everything else loads, once (the directory loop is not followed)');
      const bomb = problems.find((p) => p.file === 'bomb.yaml');
      assert.ok(bomb, 'the bomb is reported');
      assert.equal(bomb.document, 1);
      assert.match(bomb.message, /alias/i);
      const loop = problems.find((p) => p.file === 'loop.yaml');
      assert.ok(loop, 'the symlink loop is reported');
      assert.match(loop.message, /ELOOP/);
      assert.match(loop.message, /loop\.yaml/);
      assert.ok(!r.problems.some((p) => /defined in/.test(p.message)), 'no object is read twice through the loop');
      assert.ok(r.ignored.some((p) => p.file === 'sub/up'), 'the directory loop is noted');

      // The watcher runs: fixing the entries is picked up.
      rmSync(join(dir, 'loop.yaml'));
      writeFileSync(join(dir, 'loop.yaml'), svc('c'));
      await eventually('the fixed loop.yaml', () => names(store).includes('c'));
      writeFileSync(join(dir, 'bomb.yaml'), svc('hidden', 9000));
      await eventually('the fixed bomb.yaml', () => port(store, 'hidden') === 9000);
    } finally {
      source.stop();
    }
  });

  it('a symlink loop appearing at runtime does not stop other edits, and is counted once', async () => {
    const dir = tempDir({ 'a.yaml': svc('a') });
    const store = new ConfigStore();
    const problems: FileProblem[] = [];
    const { log } = captureLogger();
    const source = new FileSource({ dir, store, log, onProblem: (p) => problems.push(p) });
    source.start();
    try {
      symlinkSync('x.yaml', join(dir, 'x.yaml'));
      await eventually('the loop to be reported', () => problems.some((p) => p.file === 'x.yaml'));
      writeFileSync(join(dir, 'a.yaml'), svc('a', 81));
      await eventually('the edit to a.yaml', () => port(store, 'a') === 81);
      writeFileSync(join(dir, 'a.yaml'), svc('a', 82));
      await eventually('the second edit to a.yaml', () => port(store, 'a') === 82);
      assert.equal(problems.filter((p) => p.file === 'x.yaml').length, 1);
    } finally {
      source.stop();
    }
  });

  it('a file over the size limit is refused before it is read, with its name, size and the limit', () => {
    const dir = tempDir({ 'a.yaml': svc('a') });
    // Sparse: 4 GiB that would take a while to read (and fail: over Node's buffer limit).
    writeFileSync(join(dir, 'huge.yaml'), '');
    truncateSync(join(dir, 'huge.yaml'), 4 * 1024 * 1024 * 1024);
    const files = loadFiles(dir);
    const huge = files.get('huge.yaml');
    assert.ok(huge);
    assert.equal(huge.problems.length, 1);
    assert.match(huge.problems[0]!.message, /huge\.yaml/);
    assert.match(huge.problems[0]!.message, /4294967296 bytes/);
    assert.match(huge.problems[0]!.message, /1048576 bytes/);
    assert.equal(files.get('a.yaml')?.objects.length, 1);
  });

  it('the limit is an option; a file that grows over it keeps its last good content', () => {
    const dir = tempDir({ 'a.yaml': svc('a'), 'b.yaml': svc('b') });
    const store = new ConfigStore();
    const problems: FileProblem[] = [];
    const { log } = captureLogger();
    const source = new FileSource({ dir, store, log, maxFileBytes: 1024, onProblem: (p) => problems.push(p) });
    source.reload();
    writeFileSync(join(dir, 'b.yaml'), `${svc('b', 8080)}# ${'x'.repeat(2000)}\n`);
    source.reload(new Set(['b.yaml']));
    assert.equal(port(store, 'b'), 80);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.file, 'b.yaml');
    assert.match(problems[0]!.message, /b\.yaml is \d+ bytes, over the limit of 1024 bytes/);
  });

  it('an unreadable subdirectory is reported and skipped; the files it held keep their last good content', () => {
    // As root, permissions are not enforced: run the load as an unprivileged user.
    const dir = tempDir({ 'a.yaml': svc('a'), 'locked/b.yaml': svc('b') });
    const asRoot = process.getuid?.() === 0;
    if (asRoot) for (const p of [dir, join(dir, 'a.yaml'), join(dir, 'locked'), join(dir, 'locked', 'b.yaml')]) chownSync(p, 65534, 65534);
    const here = dirname(fileURLToPath(import.meta.url));
    const moduleUrl = pathToFileURL(resolve(here, '..', '..', 'src', 'sources', 'file', 'file-source.js')).href;
    const storeUrl = pathToFileURL(resolve(here, '..', '..', 'src', 'model', 'store.js')).href;
    const script = `
      import { chmodSync } from 'node:fs';
      import { join } from 'node:path';
      const { FileSource, loadFiles } = await import(${JSON.stringify(moduleUrl)});
      const { ConfigStore } = await import(${JSON.stringify(storeUrl)});
      const { pino } = await import('pino');
      const dir = ${JSON.stringify(dir)};
      chmodSync(join(dir, 'locked'), 0);
      const fresh = [...loadFiles(dir)].map(([name, f]) => ({ name, objects: f.objects.length, problems: f.problems.map((p) => p.message) }));
      chmodSync(join(dir, 'locked'), 0o755);
      const store = new ConfigStore();
      const problems = [];
      const source = new FileSource({ dir, store, log: pino({ level: 'silent' }), onProblem: (p) => problems.push(p) });
      source.reload();
      chmodSync(join(dir, 'locked'), 0);
      source.reload();
      const kept = store.list('Service').map((o) => o.metadata.name).sort();
      chmodSync(join(dir, 'locked'), 0o755);
      process.stdout.write(JSON.stringify({ fresh, kept, problems: problems.map((p) => ({ file: p.file, message: p.message })) }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: resolve(here, '..', '..', '..'), encoding: 'utf8', ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { fresh: { name: string; objects: number; problems: string[] }[]; kept: string[]; problems: { file: string; message: string }[] };
    assert.deepEqual(out.fresh.find((f) => f.name === 'a.yaml')?.objects, 1, 'the readable file loads');
    const locked = out.fresh.find((f) => f.name === 'locked');
    assert.ok(locked, 'the unreadable directory is reported');
    assert.match(locked.problems[0] ?? '', /EACCES/);
    assert.deepEqual(out.kept, ['a', 'b'], 'objects from the unreadable directory keep serving');
    assert.deepEqual(
      out.problems.map((p) => p.file),
      ['locked'],
    );
  });

  it('parseYamlText reports an alias bomb as a problem of its document, not an exception', () => {
    const r = parseYamlText(`${svc('a')}---\n${aliasBomb()}`, 'x.yaml');
    assert.equal(r.objects.length, 1);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]!.document, 1);
    assert.ok(r.syntaxError);
  });
});

describe('an emptied file keeps its last good content', () => {
  it('truncated, then written back: the objects stay; a warning is logged once; deleting the file removes them', () => {
    const dir = tempDir({ 'a.yaml': svc('a'), 'b.yaml': svc('b') });
    const store = new ConfigStore();
    const { log, records } = captureLogger();
    const source = new FileSource({ dir, store, log });
    source.reload();
    const changes: string[] = [];
    store.onChange((c) => changes.push(...c.map((x) => `${x.op} ${x.kind}/${x.name}`)));

    writeFileSync(join(dir, 'b.yaml'), '');
    source.reload(new Set(['b.yaml']));
    assert.equal(port(store, 'b'), 80, 'the empty file keeps its objects');
    source.reload(new Set(['b.yaml']));
    const warnings = records.filter((r) => r.level === 'warn' && r.file === 'b.yaml' && /empty/.test(r.msg));
    assert.equal(warnings.length, 1, 'warned once');
    assert.match(warnings[0]!.msg, /last good content is kept/);

    writeFileSync(join(dir, 'b.yaml'), '# being rewritten\n---\n');
    source.reload(new Set(['b.yaml']));
    assert.equal(port(store, 'b'), 80, 'only comments: still empty');

    writeFileSync(join(dir, 'b.yaml'), svc('b', 8080));
    source.reload(new Set(['b.yaml']));
    assert.equal(port(store, 'b'), 8080, 'the content written back is used');
    assert.deepEqual(changes, ['update Service/b']);

    writeFileSync(join(dir, 'b.yaml'), '');
    source.reload(new Set(['b.yaml']));
    assert.equal(port(store, 'b'), 8080);
    assert.equal(records.filter((r) => r.level === 'warn' && r.file === 'b.yaml' && /empty/.test(r.msg)).length, 2, 'emptied again: warned again');

    rmSync(join(dir, 'b.yaml'));
    source.reload();
    assert.equal(store.get('Service', 'default', 'b'), undefined, 'deleting the file removes its objects');
    assert.equal(port(store, 'a'), 80);
  });

  it('a file that is empty from the start simply holds nothing', () => {
    const dir = tempDir({ 'a.yaml': svc('a'), 'empty.yaml': '' });
    const store = new ConfigStore();
    const { log, records } = captureLogger();
    new FileSource({ dir, store, log }).reload();
    assert.deepEqual(names(store), ['a']);
    assert.equal(records.filter((r) => r.level === 'warn').length, 0);
  });
});

describe('duplicated objects', () => {
  it('name both files and documents; the problem belongs to the later file', () => {
    const files = new Map<string, FileLoad>([
      ['a.yaml', parseYamlText(vs('x', 'reviews'), 'a.yaml')],
      ['b.yaml', parseYamlText(`${svc('b')}---\n${vs('x', 'ratings')}`, 'b.yaml')],
    ]);
    const r = mergeFiles('/config', files);
    assert.deepEqual(
      r.problems.map((p) => [p.file, p.document, p.message]),
      [['b.yaml', 1, 'VirtualService default/x is defined in a.yaml#0 and b.yaml#1; the definition in b.yaml is used']],
    );
    const x = r.objects.find((o) => o.kind === 'VirtualService');
    assert.deepEqual(x?.kind === 'VirtualService' ? x.spec.hosts : undefined, ['ratings']);
  });

  it('within one file, the documents are named', () => {
    const files = new Map<string, FileLoad>([['a.yaml', parseYamlText(`${svc('s', 80)}---\n${svc('s', 81)}`, 'a.yaml')]]);
    const r = mergeFiles('/config', files);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]!.message, 'Service default/s is defined in a.yaml#0 and a.yaml#1; the definition in a.yaml#1 is used');
  });
});
