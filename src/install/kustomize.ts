// Renders a kustomization the way `kubectl kustomize` does, for the part of kustomize that
// manifests/ uses: `resources` (YAML files, and directories holding a kustomization.yaml) and
// `patches` (strategic-merge or JSON6902, from a file or inline, matched by their own
// kind/name/namespace or by a `target`). Any other field is refused with the file and field
// named, so an overlay that needs real kustomize fails loudly instead of rendering wrong.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { asKubeObject, describeObject, groupOf, isJsonObject, objectKey, sortForApply, type Json, type JsonObject, type KubeObject } from './objects.js';
import { strategicMerge } from './strategic-merge.js';
import { applyJsonPatch, parseJsonPatch } from './json-patch.js';

export interface Rendered {
  /** In kustomize's output order. */
  objects: KubeObject[];
  /** Every file that holds whole objects (not patches), absolute. */
  files: string[];
}

/** Bounds on what is read: manifests are local files, but a wrong path must not read a disk. */
const MAX_FILE_BYTES = 8 * 1024 * 1024;
const MAX_DEPTH = 16;
const MAX_OBJECTS = 5000;

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const SUPPORTED_FIELDS = ['apiVersion', 'kind', 'resources', 'patches'];
const TARGET_FIELDS = ['group', 'version', 'kind', 'name', 'namespace', 'labelSelector'];

export class KustomizeError extends Error {
  override readonly name = 'KustomizeError';
}

function readText(file: string): string {
  const size = statSync(file).size;
  if (size > MAX_FILE_BYTES) throw new KustomizeError(`${file}: ${size} bytes, more than the ${MAX_FILE_BYTES} a manifest may have`);
  return readFileSync(file, 'utf8');
}

function parseOne(text: string, where: string): unknown {
  const docs = [...parseAllDocuments(text)];
  if (docs.length !== 1) throw new KustomizeError(`${where}: expected one YAML document, found ${docs.length}`);
  const d = docs[0]!;
  if (d.errors.length > 0) throw new KustomizeError(`${where}: ${d.errors[0]!.message}`);
  return d.toJS({ maxAliasCount: 100 }) as unknown;
}

/** The objects in a YAML file, one per non-empty document. */
export function readObjects(file: string): KubeObject[] {
  const out: KubeObject[] = [];
  [...parseAllDocuments(readText(file))].forEach((d, i) => {
    if (d.errors.length > 0) throw new KustomizeError(`${file} (document ${i + 1}): ${d.errors[0]!.message}`);
    const v: unknown = d.toJS({ maxAliasCount: 100 });
    if (v === null || v === undefined) return;
    try {
      out.push(asKubeObject(v, `${file} (document ${i + 1})`));
    } catch (err) {
      throw new KustomizeError((err as Error).message, { cause: err });
    }
  });
  return out;
}

function kustomizationFile(dir: string): string {
  for (const name of KUSTOMIZATION_FILES) {
    const p = join(dir, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // try the next name
    }
  }
  throw new KustomizeError(`${dir}: no kustomization.yaml in this directory`);
}

/** A file a kustomization names must lie in its directory (kustomize's default load restriction). */
function fileWithin(dir: string, ref: string, kfile: string, what: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) throw new KustomizeError(`${kfile}: ${what} "${ref}": remote resources are not supported; vendor the file into the manifests`);
  const p = resolve(dir, ref);
  const rel = relative(realpathSync(dir), realpathSync(p));
  if (rel.startsWith('..') || isAbsolute(rel)) throw new KustomizeError(`${kfile}: ${what} "${ref}" is outside ${dir}${sep}; kustomize only reads files below a kustomization (directories may be elsewhere)`);
  return p;
}

interface Target {
  group?: string;
  version?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  labelSelector?: string;
}

function parseTarget(v: unknown, where: string): Target {
  if (!isJsonObject(v)) throw new KustomizeError(`${where}: "target" must be a map`);
  for (const [k, x] of Object.entries(v)) {
    if (!TARGET_FIELDS.includes(k)) throw new KustomizeError(`${where}: target field "${k}" is not supported (supported: ${TARGET_FIELDS.join(', ')})`);
    if (typeof x !== 'string') throw new KustomizeError(`${where}: target.${k} must be a string`);
  }
  return v as Target;
}

const anchored = (pattern: string, where: string): RegExp => {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (err) {
    throw new KustomizeError(`${where}: ${(err as Error).message}`, { cause: err });
  }
};

function matchesTarget(o: KubeObject, t: Target, where: string): boolean {
  const version = o.apiVersion.includes('/') ? o.apiVersion.split('/')[1] : o.apiVersion;
  if (t.group !== undefined && groupOf(o.apiVersion) !== t.group) return false;
  if (t.version !== undefined && version !== t.version) return false;
  if (t.kind !== undefined && !anchored(t.kind, where).test(o.kind)) return false;
  if (t.name !== undefined && !anchored(t.name, where).test(o.metadata.name)) return false;
  if (t.namespace !== undefined && !anchored(t.namespace, where).test(o.metadata.namespace ?? '')) return false;
  if (t.labelSelector !== undefined) {
    const labels = o.metadata.labels ?? {};
    for (const term of t.labelSelector.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
      const eq = term.indexOf('=');
      if (eq < 0) throw new KustomizeError(`${where}: labelSelector "${t.labelSelector}": only key=value terms are supported`);
      if (labels[term.slice(0, eq).trim()] !== term.slice(eq + 1).replace(/^=/, '').trim()) return false;
    }
  }
  return true;
}

function applyPatchEntry(objects: KubeObject[], entry: unknown, dir: string, kfile: string, n: number): void {
  const where = `${kfile}: patches[${n}]`;
  if (!isJsonObject(entry)) throw new KustomizeError(`${where}: expected a map with "path" or "patch"`);
  for (const k of Object.keys(entry)) {
    if (!['path', 'patch', 'target', 'options'].includes(k)) throw new KustomizeError(`${where}: field "${k}" is not supported (supported: path, patch, target)`);
  }
  if (entry.options !== undefined) throw new KustomizeError(`${where}: "options" is not supported`);
  if ((entry.path === undefined) === (entry.patch === undefined)) throw new KustomizeError(`${where}: give exactly one of "path" and "patch"`);
  const text = typeof entry.path === 'string' ? readText(fileWithin(dir, entry.path, kfile, 'patch')) : typeof entry.patch === 'string' ? entry.patch : undefined;
  if (text === undefined) throw new KustomizeError(`${where}: "path" and "patch" must be strings`);
  const source = typeof entry.path === 'string' ? `${where} (${entry.path})` : where;
  const target = entry.target === undefined ? undefined : parseTarget(entry.target, where);
  const body = parseOne(text, source) as Json;

  if (Array.isArray(body)) {
    if (target === undefined) throw new KustomizeError(`${source}: a JSON6902 patch needs a "target"`);
    const ops = parseJsonPatch(body, source);
    let hits = 0;
    objects.forEach((o, i) => {
      if (!matchesTarget(o, target, where)) return;
      hits += 1;
      objects[i] = asKubeObject(applyJsonPatch(o, ops, `${source} on ${describeObject(o)}`), `${source} on ${describeObject(o)}`);
    });
    if (hits === 0) throw new KustomizeError(`${source}: the target ${JSON.stringify(target)} matches no resource`);
    return;
  }
  if (!isJsonObject(body)) throw new KustomizeError(`${source}: a patch is a map (strategic merge) or a list (JSON6902)`);
  const apply = (i: number) => {
    try {
      objects[i] = asKubeObject(strategicMerge(objects[i]!, body), `${source} on ${describeObject(objects[i]!)}`);
    } catch (err) {
      throw new KustomizeError(`${source} on ${describeObject(objects[i]!)}: ${(err as Error).message}`, { cause: err });
    }
  };
  if (target !== undefined) {
    const hits = objects.flatMap((o, i) => (matchesTarget(o, target, where) ? [i] : []));
    if (hits.length === 0) throw new KustomizeError(`${source}: the target ${JSON.stringify(target)} matches no resource`);
    hits.forEach(apply);
    return;
  }
  const self = asKubeObjectOrThrow(body, source);
  const i = objects.findIndex((o) => groupOf(o.apiVersion) === groupOf(self.apiVersion) && o.kind === self.kind && o.metadata.name === self.metadata.name && (o.metadata.namespace ?? '') === (self.metadata.namespace ?? ''));
  if (i < 0) throw new KustomizeError(`${source}: the patch for ${describeObject(self)} matches no resource`);
  apply(i);
}

function asKubeObjectOrThrow(v: JsonObject, where: string): KubeObject {
  try {
    return asKubeObject(v, where);
  } catch (err) {
    throw new KustomizeError(`${(err as Error).message} (a patch without a "target" names the object it patches)`, { cause: err });
  }
}

function renderDir(dir: string, seen: readonly string[]): Rendered {
  const real = realpathSync(dir);
  if (seen.includes(real)) throw new KustomizeError(`${dir}: kustomizations include each other (${[...seen, real].join(' -> ')})`);
  if (seen.length >= MAX_DEPTH) throw new KustomizeError(`${dir}: kustomizations nested more than ${MAX_DEPTH} deep`);
  const kfile = kustomizationFile(dir);
  const k = parseOne(readText(kfile), kfile);
  if (!isJsonObject(k)) throw new KustomizeError(`${kfile}: expected a map`);
  for (const key of Object.keys(k)) {
    if (!SUPPORTED_FIELDS.includes(key)) throw new KustomizeError(`${kfile}: "${key}" is not supported by meshd's renderer (supported: ${SUPPORTED_FIELDS.join(', ')})`);
  }
  const resources = k.resources ?? [];
  if (!Array.isArray(resources) || !resources.every((r) => typeof r === 'string')) throw new KustomizeError(`${kfile}: "resources" must be a list of paths`);
  const objects: KubeObject[] = [];
  const files: string[] = [];
  for (const r of resources as string[]) {
    const p = resolve(dir, r);
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      throw new KustomizeError(`${kfile}: resource "${r}" does not exist (${p})`);
    }
    if (isDir) {
      const sub = renderDir(p, [...seen, real]);
      objects.push(...sub.objects);
      files.push(...sub.files);
    } else {
      const f = fileWithin(dir, r, kfile, 'resource');
      objects.push(...readObjects(f));
      files.push(f);
    }
    if (objects.length > MAX_OBJECTS) throw new KustomizeError(`${kfile}: more than ${MAX_OBJECTS} objects`);
  }
  const keys = new Map<string, number>();
  for (const o of objects) {
    const key = objectKey(o);
    if (keys.has(key)) throw new KustomizeError(`${kfile}: ${describeObject(o)} (${o.apiVersion}) appears twice among the resources`);
    keys.set(key, 1);
  }
  const patches = k.patches ?? [];
  if (!Array.isArray(patches)) throw new KustomizeError(`${kfile}: "patches" must be a list`);
  patches.forEach((entry, n) => applyPatchEntry(objects, entry, dir, kfile, n));
  return { objects, files };
}

/** Renders the kustomization in `dir` (a directory holding kustomization.yaml). */
export function renderKustomization(dir: string): Rendered {
  const r = renderDir(dir, []);
  return { objects: sortForApply(r.objects), files: [...new Set(r.files)] };
}

