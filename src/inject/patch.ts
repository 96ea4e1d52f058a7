// The JSON Patch (RFC 6902) an admission webhook answers with: from the pod as admitted to
// the pod injectPod returns. Whole fields are replaced (`add` on an existing member replaces
// it), which keeps the patch short and the result exactly the injected pod.
import type { Pod } from './k8s.js';

export interface JsonPatchOp {
  op: 'add' | 'remove';
  path: string;
  value?: unknown;
}

const FIELDS: readonly [('metadata' | 'spec'), string][] = [
  ['metadata', 'labels'],
  ['metadata', 'annotations'],
  ['spec', 'initContainers'],
  ['spec', 'containers'],
  ['spec', 'volumes'],
  ['spec', 'imagePullSecrets'],
  ['spec', 'securityContext'],
];

const pointer = (...parts: string[]): string => parts.map((p) => `/${p.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');

/** The operations that turn `original` into `patched` (both Pods; only the fields the injector changes are compared). */
export function podPatch(original: Pod, patched: Pod): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  for (const top of ['metadata', 'spec'] as const) {
    if (original[top] === undefined && patched[top] !== undefined) ops.push({ op: 'add', path: pointer(top), value: {} });
  }
  for (const [top, field] of FIELDS) {
    const before = (original[top] as Record<string, unknown> | undefined)?.[field];
    const after = (patched[top] as Record<string, unknown> | undefined)?.[field];
    if (JSON.stringify(before) === JSON.stringify(after)) continue;
    if (after === undefined) ops.push({ op: 'remove', path: pointer(top, field) });
    else ops.push({ op: 'add', path: pointer(top, field), value: after });
  }
  return ops;
}
