// Objects their source refused (ConfigStore refusals) as findings: IST0106, with the
// refused version's generation and, for files, where it is defined.
import type { Refusal } from '../store.js';
import { schemaFinding, type Finding } from '../finding.js';

export function refusalFindings(refusals: readonly Refusal[]): Finding[] {
  return refusals.flatMap((r) =>
    r.errors.map((e) => {
      const f = schemaFinding({ ...e, kind: r.kind, namespace: r.namespace, name: r.name }, r.generation);
      if (r.origin) f.origin = r.origin;
      return f;
    }),
  );
}
