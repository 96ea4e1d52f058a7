// Checks of PeerAuthentications (a valid policy that another one makes ineffective) and of
// AuthorizationPolicies (HTTP-only fields on TCP ports, CUSTOM without a provider).
import { peerAuthenticationConflicts } from '../translate/peer-authentication.js';
import { authorizationPolicyFindings } from '../translate/authorization-findings.js';
import type { AnalysisContext } from './context.js';
import { finding, type Finding } from './finding.js';

/**
 * IST0167: a PeerAuthentication that never applies (a second mesh-wide or namespace-wide
 * policy, a workload policy in the root namespace, one an older policy always wins over),
 * as translate/peer-authentication.ts decides it.
 */
export function ineffectivePeerAuthentications(ctx: AnalysisContext): Finding[] {
  return peerAuthenticationConflicts(ctx.snapshot.config).map((c) =>
    finding('IneffectivePolicy', { kind: c.kind, metadata: { namespace: c.namespace, name: c.name } }, c.field, `The policy has no impact: ${c.field} ${c.message}.`),
  );
}

/** IST0167 and IST0101 for AuthorizationPolicies, as translate/authorization-findings.ts finds them. */
export function authorizationPolicies(ctx: AnalysisContext): Finding[] {
  return authorizationPolicyFindings(ctx.snapshot);
}
