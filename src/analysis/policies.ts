// Checks of AuthorizationPolicies across objects (HTTP-only fields on TCP ports, CUSTOM
// without a provider). PeerAuthentication checks are the validation stage's (validation.ts).
import { authorizationPolicyFindings } from '../translate/authorization-findings.js';
import type { AnalysisContext } from './context.js';
import type { Finding } from './finding.js';

/** IST0167 and IST0101 for AuthorizationPolicies, as translate/authorization-findings.ts finds them. */
export function authorizationPolicies(ctx: AnalysisContext): Finding[] {
  return authorizationPolicyFindings(ctx.snapshot);
}
