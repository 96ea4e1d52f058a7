// The validation stage's findings (model/validation/), exactly as `meshd serve` reports them
// for the same objects: each object's own errors (IST0106), subsets no DestinationRule
// defines (IST0101), Gateway servers another Gateway keeps (IST0145), hosts an earlier mesh
// VirtualService holds (IST0109) and PeerAuthentications that never apply (IST0167).
import type { AnalysisContext } from './context.js';
import type { Finding } from './finding.js';

export function validationFindings(ctx: AnalysisContext): Finding[] {
  return [...ctx.snapshot.findings];
}
