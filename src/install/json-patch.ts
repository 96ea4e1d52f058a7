// JSON patches (RFC 6902), as kustomize applies `patches` entries whose content is a list of
// operations: add, remove, replace, move, copy and test, on RFC 6901 pointers.
import { cloneJson, isJsonObject, type Json, type JsonObject } from './objects.js';
import { PatchError } from './strategic-merge.js';

export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  value?: Json;
  from?: string;
}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** Checks the shape of a parsed patch; `where` names it in errors. */
export function parseJsonPatch(v: unknown, where: string): JsonPatchOp[] {
  if (!Array.isArray(v)) throw new PatchError(`${where}: a JSON6902 patch is a list of operations`);
  return v.map((raw, i) => {
    const at = `${where}: operation ${i}`;
    if (!isJsonObject(raw)) throw new PatchError(`${at}: expected a map with "op" and "path"`);
    if (typeof raw.op !== 'string' || !OPS.has(raw.op)) throw new PatchError(`${at}: "op" must be one of ${[...OPS].join(', ')}, got ${JSON.stringify(raw.op)}`);
    if (typeof raw.path !== 'string') throw new PatchError(`${at}: "path" must be a string (a JSON pointer such as /spec/replicas)`);
    if ((raw.op === 'move' || raw.op === 'copy') && typeof raw.from !== 'string') throw new PatchError(`${at}: "${raw.op}" needs "from"`);
    if ((raw.op === 'add' || raw.op === 'replace' || raw.op === 'test') && !('value' in raw)) throw new PatchError(`${at}: "${raw.op}" needs "value"`);
    return raw as unknown as JsonPatchOp;
  });
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`path "${path}" must start with "/"`);
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The container of the last token, and that token. */
function parentOf(doc: Json, tokens: string[], path: string): { parent: JsonObject | Json[]; last: string } {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur) ? cur[index(cur, t, path, false)] : isJsonObject(cur) ? cur[t] : undefined;
    if (next === undefined || next === null || typeof next !== 'object') throw new PatchError(`path "${path}": "${t}" does not exist`);
    cur = next;
  }
  if (typeof cur !== 'object' || cur === null) throw new PatchError(`path "${path}": its parent is not a map or a list`);
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function index(list: Json[], token: string, path: string, forAdd: boolean): number {
  if (forAdd && token === '-') return list.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError(`path "${path}": "${token}" is not a list index`);
  const i = Number(token);
  if (i > list.length || (!forAdd && i === list.length)) throw new PatchError(`path "${path}": index ${i} is past the end of the list (${list.length} items)`);
  return i;
}

function read(doc: Json, path: string): Json {
  const tokens = pointer(path);
  if (tokens.length === 0) return doc;
  const { parent, last } = parentOf(doc, tokens, path);
  const v = Array.isArray(parent) ? parent[index(parent, last, path, false)] : parent[last];
  if (v === undefined) throw new PatchError(`path "${path}" does not exist`);
  return v;
}

function remove(doc: Json, path: string): Json {
  const tokens = pointer(path);
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document');
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) return parent.splice(index(parent, last, path, false), 1)[0]!;
  if (!(last in parent)) throw new PatchError(`path "${path}" does not exist`);
  const v = parent[last]!;
  Reflect.deleteProperty(parent, last);
  return v;
}

function add(doc: Json, path: string, value: Json): Json {
  const tokens = pointer(path);
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) parent.splice(index(parent, last, path, true), 0, value);
  else parent[last] = value;
  return doc;
}

/** Returns `doc` with the operations applied; `doc` is not changed. `where` names the patch in errors. */
export function applyJsonPatch(doc: Json, ops: readonly JsonPatchOp[], where: string): Json {
  let out = cloneJson(doc);
  ops.forEach((op, i) => {
    try {
      switch (op.op) {
        case 'add':
          out = add(out, op.path, cloneJson(op.value!));
          break;
        case 'remove':
          remove(out, op.path);
          break;
        case 'replace':
          read(out, op.path);
          if (pointer(op.path).length === 0) out = cloneJson(op.value!);
          else {
            remove(out, op.path);
            out = add(out, op.path, cloneJson(op.value!));
          }
          break;
        case 'move':
          out = add(out, op.path, remove(out, op.from!));
          break;
        case 'copy':
          out = add(out, op.path, cloneJson(read(out, op.from!)));
          break;
        case 'test':
          if (JSON.stringify(read(out, op.path)) !== JSON.stringify(op.value)) throw new PatchError(`test failed: "${op.path}" is not ${JSON.stringify(op.value)}`);
          break;
      }
    } catch (err) {
      throw new PatchError(`${where}: operation ${i} (${op.op} ${op.path}): ${(err as Error).message}`, { cause: err });
    }
  });
  return out;
}
