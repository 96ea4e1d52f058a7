// Strategic-merge patches, as kustomize applies them to built-in kinds: maps merge field by
// field, `null` deletes a field, lists of named items (containers, volumes, env, ports...)
// merge item by item on their merge key, every other list is replaced. Patch directives
// (`$patch`, `$retainKeys`, `$setElementOrder`...) are refused with the path where they appear.
import { cloneJson, isJsonObject, type Json, type JsonObject } from './objects.js';

/** The merge key of a list, by the field that holds it (Kubernetes' patchMergeKey). */
function mergeKeyOf(path: readonly string[]): string | undefined {
  const name = path[path.length - 1];
  switch (name) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'volumes':
    case 'env':
    case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'volumeDevices':
      return 'devicePath';
    case 'hostAliases':
      return 'ip';
    case 'topologySpreadConstraints':
      return 'topologyKey';
    case 'conditions':
      return 'type';
    case 'ports':
      // A container's ports merge on containerPort, a Service's on port.
      return path.includes('containers') || path.includes('initContainers') ? 'containerPort' : 'port';
    default:
      return undefined;
  }
}

export class PatchError extends Error {
  override readonly name = 'PatchError';
}

const show = (path: readonly string[]) => (path.length === 0 ? '(the object)' : path.join('.'));

/** Returns `base` with `patch` merged in; neither is changed. Throws PatchError on a patch directive. */
export function strategicMerge(base: Json, patch: Json): Json {
  refuseDirectives(patch, []);
  return merge(base, patch, []);
}

function refuseDirectives(v: Json, path: readonly string[]): void {
  if (Array.isArray(v)) v.forEach((x, i) => refuseDirectives(x, [...path, `${i}`]));
  else if (isJsonObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('$')) throw new PatchError(`${show([...path, k])}: the patch directive "${k}" is not supported; write the patch without it, or as a JSON6902 patch`);
      refuseDirectives(x, [...path, k]);
    }
  }
}

function merge(base: Json, patch: Json, path: readonly string[]): Json {
  if (isJsonObject(patch)) {
    if (!isJsonObject(base)) return stripNulls(patch);
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(base)) {
      if (!(k in patch)) out[k] = cloneJson(v);
    }
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) continue; // null deletes the field
      out[k] = k in base ? merge(base[k]!, v, [...path, k]) : stripNulls(v);
    }
    // Keep the base's key order, then the patch's new keys.
    const ordered: JsonObject = {};
    for (const k of [...Object.keys(base), ...Object.keys(patch)]) if (k in out && !(k in ordered)) ordered[k] = out[k]!;
    return ordered;
  }
  if (Array.isArray(patch) && Array.isArray(base)) {
    const key = mergeKeyOf(path);
    if (key === undefined || ![...base, ...patch].every((e) => isJsonObject(e) && e[key] !== undefined)) return stripNulls(patch);
    const out = base.map((e) => cloneJson(e)) as JsonObject[];
    patch.forEach((p, i) => {
      const item = p as JsonObject;
      const at = out.findIndex((e) => e[key] === item[key]);
      const itemPath = [...path, `${i}`];
      if (at >= 0) out[at] = merge(out[at]!, item, itemPath) as JsonObject;
      else out.push(stripNulls(item) as JsonObject);
    });
    return out;
  }
  return stripNulls(patch);
}

/** A patch value added where the base has nothing: nulls inside it mean nothing. */
function stripNulls(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripNulls);
  if (isJsonObject(v)) {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = stripNulls(x);
    return out;
  }
  return v;
}
