// Each object's own validation (model/objects.ts, model/istio.ts, model/security.ts): what
// meshd would refuse to serve, reported as Istio's schema validation errors.
import type { AnalysisContext } from './context.js';
import { finding, type Finding } from './finding.js';

/** IST0106 for every validation error, naming the field. */
export function schemaErrors(ctx: AnalysisContext): Finding[] {
  return ctx.invalid.map((e) =>
    finding('SchemaValidationError', { kind: e.kind, metadata: { namespace: e.namespace, name: e.name } }, e.field, `Schema validation error: ${e.field ? `${e.field}: ` : ''}${e.message}`),
  );
}
