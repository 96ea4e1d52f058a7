// The embedded default source: a directory of multi-document YAML files holding
// Kubernetes objects, re-read when anything in it changes.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { formatObjectError, parseMeshObject, type MeshObject, type ObjectError } from '../../model/objects.js';
import type { ConfigStore } from '../../model/store.js';
import type { Logger } from '../../util/log.js';

export interface FileProblem {
  file: string;
  /** 0-based index of the YAML document within the file. */
  document: number;
  message: string;
  object?: ObjectError;
}

export interface DirectoryLoad {
  objects: MeshObject[];
  problems: FileProblem[];
  ignored: FileProblem[];
}

export interface FileLoad extends DirectoryLoad {
  /** A document of this file is not valid YAML. */
  syntaxError: boolean;
  /** Objects that failed validation but could be identified, as kind/namespace/name. */
  invalidKeys: string[];
}

function subdirectories(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p, { throwIfNoEntry: false })?.isDirectory()) out.push(p, ...subdirectories(p));
  }
  return out;
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) out.push(...yamlFiles(p));
    else if (/\.(ya?ml|json)$/i.test(name)) out.push(p);
  }
  return out;
}

/** Parses one file's text; every problem names the file and the document. */
export function parseYamlText(text: string, file: string): FileLoad {
  const objects: MeshObject[] = [];
  const problems: FileProblem[] = [];
  const ignored: FileProblem[] = [];
  const invalidKeys: string[] = [];
  let syntaxError = false;
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      syntaxError = true;
      problems.push({ file, document: index, message: `invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}` });
      return;
    }
    const raw: unknown = doc.toJS();
    if (raw === null || raw === undefined) return;
    const items = (raw as { kind?: string; items?: unknown[] }).kind?.endsWith('List') ? ((raw as { items?: unknown[] }).items ?? []) : [raw];
    for (const item of items) {
      const r = parseMeshObject(item);
      if (r.ok === 'ignored') ignored.push({ file, document: index, message: r.reason });
      else if (r.ok) objects.push(r.value);
      else {
        for (const e of r.errors) problems.push({ file, document: index, message: formatObjectError(e), object: e });
        const e = r.errors[0];
        if (e && e.name !== '<unnamed>') invalidKeys.push(`${e.kind}/${e.namespace}/${e.name}`);
      }
    }
  });
  return { objects, problems, ignored, syntaxError, invalidKeys };
}

/** Reads every YAML file under `dir`, file by file. */
/** A parsed file and what identifies its content, so an unchanged file is not parsed again. */
interface CachedFile {
  stamp: string;
  text: string;
  load: FileLoad;
}

/**
 * Reads every YAML file under `dir`. With a `cache`, a file whose size, mtime and
 * text are unchanged reuses its earlier parse (and so the same object values).
 */
export function loadFiles(dir: string, cache?: Map<string, CachedFile>, changed?: ReadonlySet<string>): Map<string, FileLoad> {
  const out = new Map<string, FileLoad>();
  const seen = new Set<string>();
  for (const file of yamlFiles(dir)) {
    const name = relative(dir, file) || file;
    seen.add(name);
    // When the watcher named the files that changed, the others are not even stat'ed.
    const known = changed && !changed.has(name) ? cache?.get(name) : undefined;
    if (known) {
      out.set(name, known.load);
      continue;
    }
    let text: string;
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.size}:${st.mtimeMs}:${st.ino}`;
      const hit = cache?.get(name);
      if (hit && hit.stamp === stamp) {
        out.set(name, hit.load);
        continue;
      }
      text = readFileSync(file, 'utf8');
      if (hit && hit.text === text) {
        hit.stamp = stamp;
        out.set(name, hit.load);
        continue;
      }
    } catch (err) {
      out.set(name, { objects: [], problems: [{ file: name, document: 0, message: `cannot read: ${String(err)}` }], ignored: [], syntaxError: true, invalidKeys: [] });
      cache?.delete(name);
      continue;
    }
    const load = parseYamlText(text, name);
    cache?.set(name, { stamp, text, load });
    out.set(name, load);
  }
  if (cache) for (const name of [...cache.keys()]) if (!seen.has(name)) cache.delete(name);
  return out;
}

/**
 * Merges per-file loads into one set of objects. `lastGood` (by file, and by object)
 * stands in where a file has a YAML error or an object is invalid, so a bad edit
 * leaves the last good config serving.
 */
export function mergeFiles(dir: string, files: Map<string, FileLoad>, lastGood?: { byFile: Map<string, MeshObject[]>; byKey: Map<string, MeshObject> }): DirectoryLoad {
  const out: DirectoryLoad = { objects: [], problems: [], ignored: [] };
  for (const [file, r] of files) {
    const previous = lastGood?.byFile.get(file);
    if (r.syntaxError && previous) {
      out.objects.push(...previous);
    } else {
      out.objects.push(...r.objects);
      for (const key of r.invalidKeys) {
        const old = lastGood?.byKey.get(key);
        if (old && !r.objects.some((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}` === key)) out.objects.push(old);
      }
    }
    out.problems.push(...r.problems);
    out.ignored.push(...r.ignored);
  }
  // Two documents defining one object: the later file wins, and the clash is reported.
  const seen = new Map<string, number>();
  const unique: MeshObject[] = [];
  for (const o of out.objects) {
    const key = `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`;
    const at = seen.get(key);
    if (at !== undefined) {
      out.problems.push({ file: dir, document: 0, message: `${o.kind} ${o.metadata.namespace}/${o.metadata.name} is defined more than once; the last definition is used` });
      unique[at] = o;
    } else {
      seen.set(key, unique.length);
      unique.push(o);
    }
  }
  out.objects = unique;
  return out;
}

/** Reads every YAML file under `dir`. A broken file or object is reported and skipped. */
export function loadDirectory(dir: string): DirectoryLoad {
  return mergeFiles(dir, loadFiles(dir));
}

export interface FileSourceOptions {
  dir: string;
  store: ConfigStore;
  log: Logger;
  /** Quiet time after a file event before re-reading (ms). */
  settleMs?: number;
  onProblem?: (p: FileProblem) => void;
}

export class FileSource {
  /** One watcher per directory of the tree (Node's recursive watch misses files replaced by rename). */
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  /** Files named by watch events since the last reload; undefined when an event named none. */
  private changedFiles: Set<string> | undefined = new Set();
  private lastProblems = new Set<string>();
  private readonly lastGood = { byFile: new Map<string, MeshObject[]>(), byKey: new Map<string, MeshObject>() };
  private readonly parsed = new Map<string, CachedFile>();
  readonly sourceId: string;
  readonly dir: string;

  constructor(private readonly o: FileSourceOptions) {
    this.sourceId = `file:${o.dir}`;
    this.dir = o.dir;
  }

  /** Loads the directory into the store and starts watching it. */
  start(): DirectoryLoad {
    const r = this.reload();
    this.syncWatchers();
    return r;
  }

  /** Watches every directory of the tree, adding and dropping watchers as directories come and go. */
  private syncWatchers(): void {
    const dirs = new Set([this.o.dir, ...subdirectories(this.o.dir)]);
    for (const [d, w] of this.watchers) {
      if (!dirs.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of dirs) {
      if (this.watchers.has(d)) continue;
      try {
        const rel = relative(this.o.dir, d);
        const w = watch(d, (_event, filename) => {
          const name = filename ? (rel ? `${rel}/${String(filename)}` : String(filename)) : undefined;
          if (name === undefined) this.changedFiles = undefined;
          else if (!name.split('/').some((part) => part.startsWith('.'))) this.changedFiles?.add(name);
          this.scheduleReload();
        });
        w.on('error', (err) => this.o.log.error({ dir: d, err: String(err) }, 'watching a config directory failed'));
        this.watchers.set(d, w);
      } catch (err) {
        this.o.log.error({ dir: d, err: String(err) }, 'cannot watch a config directory');
      }
    }
  }

  stop(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.timer) clearTimeout(this.timer);
  }

  private scheduleReload(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const changed = this.changedFiles;
      this.changedFiles = new Set();
      try {
        this.reload(changed);
        this.syncWatchers();
      } catch (err) {
        this.o.log.error({ dir: this.o.dir, err: String(err) }, 'reloading the config directory failed; keeping the last good config');
      }
    }, this.o.settleMs ?? 10);
  }

  /** Re-reads the directory; `changed` names the only files that may differ (all when undefined). */
  reload(changed?: ReadonlySet<string>): DirectoryLoad {
    const files = loadFiles(this.o.dir, this.parsed, changed);
    const r = mergeFiles(this.o.dir, files, this.lastGood);
    for (const [file, f] of files) if (!f.syntaxError) this.lastGood.byFile.set(file, f.objects);
    for (const file of [...this.lastGood.byFile.keys()]) if (!files.has(file)) this.lastGood.byFile.delete(file);
    this.lastGood.byKey.clear();
    for (const o of r.objects) this.lastGood.byKey.set(`${o.kind}/${o.metadata.namespace}/${o.metadata.name}`, o);
    const problems = new Set<string>();
    for (const p of r.problems) {
      const line = `${p.file}#${p.document}: ${p.message}`;
      problems.add(line);
      // Each problem is logged once, not on every reload.
      if (!this.lastProblems.has(line)) {
        this.o.log.error({ file: p.file, document: p.document, ...(p.object ? { kind: p.object.kind, object: `${p.object.namespace}/${p.object.name}`, field: p.object.field } : {}) }, p.message);
        this.o.onProblem?.(p);
      }
    }
    for (const p of r.ignored) {
      const line = `${p.file}#${p.document}: ${p.message}`;
      problems.add(line);
      if (!this.lastProblems.has(line)) this.o.log.warn({ file: p.file, document: p.document }, `skipped: ${p.message}`);
    }
    this.lastProblems = problems;
    const changes = this.o.store.replaceSource(this.sourceId, r.objects);
    this.o.log.debug({ objects: r.objects.length, changes: changes.length }, 'config directory loaded');
    return r;
  }
}
