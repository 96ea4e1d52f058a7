// The embedded default source: a directory of multi-document YAML files holding
// Kubernetes objects, re-read when anything in it changes.
//
// One bad entry never stops the rest: a file that cannot be read (a symlink loop, no
// permission, over the size limit, an alias bomb) or a directory that cannot be listed
// is reported alone and skipped, and what it held before keeps serving. A file that
// becomes empty keeps its last good content too (a non-atomic rewrite passes through
// empty); only deleting a file removes its objects.
import { closeSync, lstatSync, openSync, readdirSync, readSync, realpathSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { join, relative } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { formatObjectError, keyOf, objectKey, parseMeshObject, type MeshObject, type ObjectError } from '../../model/objects.js';
import type { ConfigStore, Refusal } from '../../model/store.js';
import type { Logger } from '../../util/log.js';

/** The largest config file read (bytes); a larger one is reported and skipped. */
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;
/** Alias expansions allowed per document (yaml's default): beyond, it is an "alias bomb". */
const MAX_ALIAS_COUNT = 100;
const YAML_NAME = /\.(ya?ml|json)$/i;

export interface FileProblem {
  file: string;
  /** 0-based index of the YAML document within the file. */
  document: number;
  message: string;
  object?: ObjectError;
  /** For an object's error: the line (1-based) where its document starts, and its metadata.generation if it has one. */
  line?: number;
  generation?: number;
}

export interface DirectoryLoad {
  objects: MeshObject[];
  problems: FileProblem[];
  ignored: FileProblem[];
}

export interface FileLoad extends DirectoryLoad {
  /** A document of this file is not valid YAML, or the file (or directory) could not be read. */
  syntaxError: boolean;
  /** Objects that failed validation but could be identified, as kind/namespace/name. */
  invalidKeys: string[];
  /** The file holds no document with content (empty, or only comments and separators). */
  empty: boolean;
  /** The document index of each of `objects`. */
  documents: number[];
  /** The line (1-based) where each document's content starts, by document index. */
  documentLines: number[];
}

/** An object and where it is defined. */
export interface PlacedObject {
  object: MeshObject;
  file: string;
  document: number;
}

export interface MergedLoad extends DirectoryLoad {
  /** The objects with their files and documents, in `objects`' order. */
  placed: PlacedObject[];
  /** Files that are empty now and whose last good content stands in. */
  emptied: string[];
}

/** What was last loaded successfully, to stand in for a file or an object that turned bad. */
export interface LastGood {
  byFile: Map<string, PlacedObject[]>;
  byKey: Map<string, PlacedObject>;
}

export interface LoadOptions {
  /** Files larger than this (bytes) are not read; default 1 MiB. */
  maxFileBytes?: number;
  /** The namespace of objects that name none; default `default`. */
  defaultNamespace?: string;
}

/** One entry of the directory tree, in reading order. */
type TreeEntry = { type: 'file'; name: string } | { type: 'unreadable'; name: string; problem: FileProblem } | { type: 'skipped'; name: string; note: FileProblem };

interface Tree {
  entries: TreeEntry[];
  /** Every directory read (the root first), as paths under the root, for the watchers. */
  dirs: string[];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Lists the YAML files under `root`, sorted, skipping dot-entries. An entry that cannot
 * be stat'ed or listed is returned as unreadable rather than failing the walk; a
 * directory reached again through a symlink (a loop, or a second link) is not followed.
 * Only a root that cannot be listed throws.
 */
function walk(root: string): Tree {
  const entries: TreeEntry[] = [];
  const dirs: string[] = [];
  /** Real path of each directory read -> its name under the root ('' for the root). */
  const visited = new Map<string, string>();
  visited.set(realpathSync(root), '');
  const visit = (abs: string, rel: string, names: string[]): void => {
    dirs.push(abs);
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue;
      const path = join(abs, name);
      const relName = rel ? `${rel}/${name}` : name;
      let st: Stats | undefined;
      try {
        st = statSync(path, { throwIfNoEntry: false });
      } catch (err) {
        entries.push({ type: 'unreadable', name: relName, problem: { file: relName, document: 0, message: `cannot read ${relName}: ${errorText(err)}` } });
        continue;
      }
      if (!st) continue; // gone meanwhile, or a dangling symlink
      if (!st.isDirectory()) {
        if (YAML_NAME.test(name)) entries.push({ type: 'file', name: relName });
        continue;
      }
      let real: string;
      let children: string[];
      try {
        real = realpathSync(path);
        const first = visited.get(real);
        if (first !== undefined) {
          const what = first === '' ? 'the config directory' : first;
          entries.push({ type: 'skipped', name: relName, note: { file: relName, document: 0, message: `${relName} leads to ${what} (${real}), which is read already; not followed` } });
          continue;
        }
        visited.set(real, relName);
        children = readdirSync(path);
      } catch (err) {
        if (errorCode(err) === 'ENOENT') continue;
        entries.push({ type: 'unreadable', name: relName, problem: { file: relName, document: 0, message: `cannot read directory ${relName}: ${errorText(err)}` } });
        continue;
      }
      visit(path, relName, children);
    }
  };
  visit(root, '', readdirSync(root));
  return { entries, dirs };
}

function failedLoad(problem: FileProblem): FileLoad {
  return { objects: [], documents: [], documentLines: [], problems: [problem], ignored: [], syntaxError: true, invalidKeys: [], empty: false };
}

/**
 * Parses one file's text; every problem names the file and the document. Objects without a
 * namespace get `defaultNamespace`. Never throws.
 */
export function parseYamlText(text: string, file: string, defaultNamespace = 'default'): FileLoad {
  const objects: MeshObject[] = [];
  const documents: number[] = [];
  const problems: FileProblem[] = [];
  const ignored: FileProblem[] = [];
  const invalidKeys: string[] = [];
  let syntaxError = false;
  let hasContent = false;
  let list;
  const lineCounter = new LineCounter();
  try {
    const docs = parseAllDocuments(text, { lineCounter });
    list = Array.isArray(docs) ? docs : [docs];
  } catch (err) {
    return failedLoad({ file, document: 0, message: `invalid YAML: ${errorText(err).split('\n')[0]}` });
  }
  const documentLines = list.map((doc) => lineCounter.linePos((doc.contents?.range ?? doc.range)[0]).line);
  list.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      syntaxError = true;
      problems.push({ file, document: index, message: `invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}` });
      return;
    }
    let raw: unknown;
    try {
      // An alias bomb ("billion laughs") throws here rather than expanding.
      raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      syntaxError = true;
      problems.push({ file, document: index, message: `invalid YAML: ${errorText(err).split('\n')[0]}` });
      return;
    }
    if (raw === null || raw === undefined) return;
    hasContent = true;
    const items = (raw as { kind?: string; items?: unknown[] }).kind?.endsWith('List') ? ((raw as { items?: unknown[] }).items ?? []) : [raw];
    for (const item of items) {
      let r: ReturnType<typeof parseMeshObject>;
      try {
        r = parseMeshObject(item, defaultNamespace);
      } catch (err) {
        problems.push({ file, document: index, message: `cannot read the object: ${errorText(err)}` });
        continue;
      }
      if (r.ok === 'ignored') ignored.push({ file, document: index, message: r.reason });
      else if (r.ok) {
        objects.push(r.value);
        documents.push(index);
      } else {
        const generation = (item as { metadata?: { generation?: unknown } } | null)?.metadata?.generation;
        const at = { line: documentLines[index] ?? 1, ...(typeof generation === 'number' ? { generation } : {}) };
        for (const e of r.errors) problems.push({ file, document: index, message: formatObjectError(e), object: e, ...at });
        const e = r.errors[0];
        if (e && e.name !== '<unnamed>') invalidKeys.push(keyOf(e.kind, e.namespace, e.name));
      }
    }
  });
  return { objects, documents, documentLines, problems, ignored, syntaxError, invalidKeys, empty: !syntaxError && !hasContent };
}

/** A parsed file and what identifies its content, so an unchanged file is not parsed again. */
interface CachedFile {
  stamp: string;
  text: string;
  load: FileLoad;
}

/** Reads a file of at most `limit` bytes; undefined when it holds more (it grew since its stat). */
function readLimited(path: string, limit: number, sizeHint: number): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    const chunkSize = Math.min(limit + 1, Math.max(4096, sizeHint + 1));
    for (;;) {
      const buf = Buffer.allocUnsafe(chunkSize);
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > limit) return undefined;
      chunks.push(buf.subarray(0, n));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function tooLarge(name: string, size: number, limit: number): FileProblem {
  return { file: name, document: 0, message: `${name} is ${size} bytes, over the limit of ${limit} bytes for one config file; not read` };
}

/** Whether `name` or a directory above it is in `changed` (everything, when undefined). */
function touched(name: string, changed: ReadonlySet<string> | undefined): boolean {
  if (!changed || changed.has(name)) return true;
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) if (changed.has(name.slice(0, i))) return true;
  return false;
}

function loadTree(dir: string, tree: Tree, cache: Map<string, CachedFile> | undefined, changed: ReadonlySet<string> | undefined, options: LoadOptions): Map<string, FileLoad> {
  const limit = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const out = new Map<string, FileLoad>();
  const seen = new Set<string>();
  for (const entry of tree.entries) {
    const name = entry.name;
    seen.add(name);
    if (entry.type === 'skipped') {
      out.set(name, { objects: [], documents: [], documentLines: [], problems: [], ignored: [entry.note], syntaxError: false, invalidKeys: [], empty: false });
      continue;
    }
    if (entry.type === 'unreadable') {
      out.set(name, failedLoad(entry.problem));
      cache?.delete(name);
      // The files of a directory that cannot be listed now stay as they were last read.
      if (cache) {
        for (const [cached, hit] of cache) {
          if (cached.startsWith(`${name}/`) && !out.has(cached)) {
            out.set(cached, hit.load);
            seen.add(cached);
          }
        }
      }
      continue;
    }
    const file = join(dir, name);
    // When the watcher named the files that changed, the others are not even stat'ed.
    const known = !touched(name, changed) ? cache?.get(name) : undefined;
    if (known) {
      out.set(name, known.load);
      continue;
    }
    let text: string | undefined;
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.size}:${st.mtimeMs}:${st.ino}`;
      const hit = cache?.get(name);
      if (hit && hit.stamp === stamp) {
        out.set(name, hit.load);
        continue;
      }
      if (!st.isFile()) {
        out.set(name, failedLoad({ file: name, document: 0, message: `cannot read ${name}: not a regular file` }));
        cache?.delete(name);
        continue;
      }
      // Checked before reading: a huge file is never brought into memory.
      if (st.size > limit) {
        out.set(name, failedLoad(tooLarge(name, st.size, limit)));
        cache?.delete(name);
        continue;
      }
      text = readLimited(file, limit, st.size);
      if (text === undefined) {
        out.set(name, failedLoad(tooLarge(name, statSync(file).size, limit)));
        cache?.delete(name);
        continue;
      }
      if (hit && hit.text === text) {
        hit.stamp = stamp;
        out.set(name, hit.load);
        continue;
      }
    } catch (err) {
      out.set(name, failedLoad({ file: name, document: 0, message: `cannot read ${name}: ${errorText(err)}` }));
      cache?.delete(name);
      continue;
    }
    const load = parseYamlText(text, name, options.defaultNamespace);
    cache?.set(name, { stamp, text, load });
    out.set(name, load);
  }
  if (cache) for (const name of [...cache.keys()]) if (!seen.has(name)) cache.delete(name);
  return out;
}

/**
 * Reads every YAML file under `dir`, file by file; an entry that cannot be read is a
 * failed load of its own. With a `cache`, a file whose size, mtime and text are
 * unchanged reuses its earlier parse (and so the same object values); with `changed`,
 * only those files (or the files under those directories) are looked at again.
 */
export function loadFiles(dir: string, cache?: Map<string, CachedFile>, changed?: ReadonlySet<string>, options: LoadOptions = {}): Map<string, FileLoad> {
  return loadTree(dir, walk(dir), cache, changed, options);
}

function placedOf(file: string, load: FileLoad): PlacedObject[] {
  return load.objects.map((object, i) => ({ object, file, document: load.documents[i] ?? 0 }));
}

/**
 * Merges per-file loads into one set of objects. `lastGood` (by file, and by object)
 * stands in where a file has a YAML error, cannot be read or became empty, or an
 * object is invalid, so a bad edit leaves the last good config serving.
 */
export function mergeFiles(dir: string, files: Map<string, FileLoad>, lastGood?: LastGood): MergedLoad {
  const out: MergedLoad = { objects: [], placed: [], problems: [], ignored: [], emptied: [] };
  const placed: PlacedObject[] = [];
  for (const [file, r] of files) {
    const previous = lastGood?.byFile.get(file);
    if (r.syntaxError && previous) {
      placed.push(...previous);
    } else if (r.empty && previous && previous.length > 0) {
      placed.push(...previous);
      out.emptied.push(file);
    } else {
      placed.push(...placedOf(file, r));
      for (const key of r.invalidKeys) {
        const old = lastGood?.byKey.get(key);
        if (old && !r.objects.some((o) => objectKey(o) === key)) placed.push(old);
      }
    }
    out.problems.push(...r.problems);
    out.ignored.push(...r.ignored);
  }
  // Two documents defining one object: the later one wins, and both are named.
  const seen = new Map<string, number>();
  for (const p of placed) {
    const key = objectKey(p.object);
    const at = seen.get(key);
    if (at === undefined) {
      seen.set(key, out.placed.length);
      out.placed.push(p);
      continue;
    }
    const first = out.placed[at]!;
    const used = first.file === p.file ? `${p.file}#${p.document}` : p.file;
    out.problems.push({
      file: p.file,
      document: p.document,
      message: `${p.object.kind} ${p.object.metadata.namespace}/${p.object.metadata.name} is defined in ${first.file}#${first.document} and ${p.file}#${p.document}; the definition in ${used} is used`,
    });
    out.placed[at] = p;
  }
  out.objects = out.placed.map((p) => p.object);
  return out;
}

/** The objects `problems` refuse, one refusal per object (its errors together), where they are defined. */
export function refusalsOf(problems: readonly FileProblem[]): Refusal[] {
  const out = new Map<string, Refusal & { errors: ObjectError[] }>();
  for (const p of problems) {
    const e = p.object;
    if (!e) continue;
    const key = keyOf(e.kind, e.namespace, e.name);
    const r = out.get(key);
    if (r) r.errors.push(e);
    else out.set(key, { kind: e.kind, namespace: e.namespace, name: e.name, ...(p.generation !== undefined ? { generation: p.generation } : {}), errors: [e], origin: { file: p.file, line: p.line ?? 1 } });
  }
  return [...out.values()];
}

/** Reads every YAML file under `dir`. A broken file or object is reported and skipped. */
export function loadDirectory(dir: string, options: LoadOptions = {}): DirectoryLoad {
  return mergeFiles(dir, loadFiles(dir, undefined, undefined, options));
}

export interface FileSourceOptions {
  dir: string;
  store: ConfigStore;
  log: Logger;
  /** Quiet time after a file event before re-reading (ms). */
  settleMs?: number;
  /** Files larger than this (bytes) are reported and not read; default 1 MiB. */
  maxFileBytes?: number;
  /** Called once for each new problem (and for a reload that fails). */
  onProblem?: (p: FileProblem) => void;
}

export class FileSource {
  /** One watcher per directory of the tree (Node's recursive watch misses files replaced by rename). */
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  /** Files named by watch events and not yet reloaded; undefined when an event named none. */
  private changedFiles: Set<string> | undefined = new Set();
  private lastProblems = new Set<string>();
  private lastFailure: string | undefined;
  private lastGood: LastGood = { byFile: new Map(), byKey: new Map() };
  private parsed = new Map<string, CachedFile>();
  /** The directories of the last walk of the tree, to watch. */
  private dirs: string[] = [];
  /** The tree of the last walk, and the names of its files. */
  private tree: Tree | undefined;
  private treeFiles = new Set<string>();
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
    const dirs = new Set([this.o.dir, ...this.dirs]);
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
          this.noteChange(filename ? (rel ? `${rel}/${String(filename)}` : String(filename)) : undefined);
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

  /** Records that `name` (relative to the directory) changed; undefined: something, unknown what. */
  noteChange(name?: string): void {
    if (name === undefined) this.changedFiles = undefined;
    else if (!name.split('/').some((part) => part.startsWith('.'))) this.changedFiles?.add(name);
  }

  private scheduleReload(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.applyPendingChanges();
      this.syncWatchers();
    }, this.o.settleMs ?? 10);
  }

  /**
   * Reloads the files changed since the last reload. When the reload fails, they stay
   * pending (with any noted meanwhile), so the next reload still picks them up; the
   * last good config keeps serving. Returns whether the reload succeeded.
   */
  applyPendingChanges(): boolean {
    const changed = this.changedFiles;
    this.changedFiles = new Set();
    try {
      this.reload(changed);
      this.lastFailure = undefined;
      return true;
    } catch (err) {
      if (changed === undefined || this.changedFiles === undefined) this.changedFiles = undefined;
      else for (const name of changed) this.changedFiles.add(name);
      const message = `reloading the config directory failed: ${errorText(err)}`;
      if (message !== this.lastFailure) {
        this.lastFailure = message;
        this.o.log.error({ dir: this.o.dir, err: String(err) }, 'reloading the config directory failed; keeping the last good config');
        this.o.onProblem?.({ file: this.o.dir, document: 0, message });
      }
      return false;
    }
  }

  /**
   * The last tree, when the watcher named only files it holds and they are still files: an
   * edit of files in place, which changes no entry (a file created, deleted or renamed, or a
   * directory, makes a new walk).
   */
  private unchangedTree(changed: ReadonlySet<string> | undefined): Tree | undefined {
    const tree = this.tree;
    if (!tree || changed === undefined) return undefined;
    const files = this.treeFiles;
    for (const name of changed) {
      if (!files.has(name)) return undefined;
      try {
        if (!lstatSync(join(this.o.dir, name)).isFile()) return undefined;
      } catch {
        return undefined;
      }
    }
    return tree;
  }

  /**
   * Re-reads the directory; `changed` names the only files that may differ (all when
   * undefined). Nothing is kept from a reload that throws: the parse cache and the last
   * good config are replaced only once the store has taken the result.
   */
  reload(changed?: ReadonlySet<string>): DirectoryLoad {
    const started = performance.now();
    const kept = this.unchangedTree(changed);
    const tree = kept ?? walk(this.o.dir);
    if (!kept) {
      this.tree = tree;
      this.treeFiles = new Set(tree.entries.filter((e) => e.type === 'file').map((e) => e.name));
    }
    this.dirs = tree.dirs;
    const parsed = new Map(this.parsed);
    const files = loadTree(this.o.dir, tree, parsed, changed, { maxFileBytes: this.o.maxFileBytes });
    const r = mergeFiles(this.o.dir, files, this.lastGood);
    const byFile = new Map<string, PlacedObject[]>();
    for (const [file, f] of files) {
      const previous = this.lastGood.byFile.get(file);
      if (!f.syntaxError && !f.empty) byFile.set(file, placedOf(file, f));
      else if (previous) byFile.set(file, previous);
    }
    const changes = this.o.store.replaceSource(this.sourceId, r.objects, refusalsOf(r.problems));
    this.parsed = parsed;
    this.lastGood = { byFile, byKey: new Map(r.placed.map((p) => [objectKey(p.object), p])) };

    const problems = new Set<string>();
    for (const p of r.problems) {
      const line = `${p.file}#${p.document}: ${p.message}`;
      problems.add(line);
      // Each problem is logged once, not on every reload; an object's errors are refusals in
      // the store, which the push controller logs (with the file and line) from the findings.
      if (!this.lastProblems.has(line)) {
        if (!p.object) this.o.log.error({ file: p.file, path: join(this.o.dir, p.file), document: p.document }, p.message);
        this.o.onProblem?.(p);
      }
    }
    for (const p of r.ignored) {
      const line = `${p.file}#${p.document}: ${p.message}`;
      problems.add(line);
      if (!this.lastProblems.has(line)) this.o.log.warn({ file: p.file, document: p.document }, `skipped: ${p.message}`);
    }
    for (const file of r.emptied) {
      const line = `${file}: empty`;
      problems.add(line);
      if (!this.lastProblems.has(line)) {
        const kept = byFile.get(file)?.length ?? 0;
        this.o.log.warn({ file, path: join(this.o.dir, file), objects: kept }, `config file is empty; its last good content is kept (${kept} objects) until it has content again, or is deleted`);
      }
    }
    this.lastProblems = problems;
    this.o.log.debug({ objects: r.objects.length, changes: changes.length, files: changed?.size, ms: Math.round(performance.now() - started) }, 'config directory loaded');
    return r;
  }
}
