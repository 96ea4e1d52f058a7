// What an AuthorizationPolicy does not do as written, found across objects: HTTP-only fields
// on the TCP ports of the workloads it selects (left out of an ALLOW, ignored by a DENY, as
// authorization.ts compiles them, as Istio does), and CUSTOM policies whose extension
// provider meshd cannot have (they fail closed). Pure; for validation and analysis.
import type { MeshSnapshot } from '../model/mesh.js';
import type { AuthorizationPolicyObject } from '../model/objects.js';
import { actionOf, httpOnlyUses } from '../model/authorization.js';
import { finding, notFound, type Finding } from '../model/finding.js';
import { formatFieldPath } from '../model/objects.js';
import { isHttpProtocol } from '../model/protocol.js';
import { selectorMatches } from '../model/labels.js';
import { policyApplies } from './authorization.js';
import { rootNamespaceOf } from './istio-config.js';

/** The non-HTTP workload ports (target ports) of the pods `policy` applies to, sorted. */
function tcpPortsUnder(snapshot: MeshSnapshot, policy: AuthorizationPolicyObject, root: string): number[] {
  const ports = new Set<number>();
  for (const pod of snapshot.pods.values()) {
    const w = { namespace: pod.metadata.namespace, labels: pod.metadata.labels };
    if (!policyApplies(policy, root, w)) continue;
    for (const svc of snapshot.services) {
      if (svc.namespace !== w.namespace || !selectorMatches(svc.selector, w.labels)) continue;
      for (const p of svc.ports) {
        if (p.protocol === 'UDP' || isHttpProtocol(p.protocol)) continue;
        ports.add(typeof p.targetPort === 'number' ? p.targetPort : p.port);
      }
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * Findings about the AuthorizationPolicies of `snapshot`: IST0167 (IneffectivePolicy) for
 * each HTTP-only field a policy uses where it selects a workload with TCP ports, and IST0101
 * for a CUSTOM policy's extension provider (meshd configures none: the policy denies what its
 * rules match, as Istio does with a provider it cannot find).
 */
export function authorizationPolicyFindings(snapshot: MeshSnapshot): Finding[] {
  const out: Finding[] = [];
  const root = rootNamespaceOf(snapshot.config);
  for (const p of snapshot.config.authorizationPolicies ?? []) {
    const action = actionOf(p.spec);
    if (action === 'CUSTOM') out.push(notFound(p, 'spec.provider.name', 'extension provider', p.spec.provider?.name ?? ''));
    const rules = p.spec.rules ?? [];
    const uses = rules.flatMap((rule, i) => httpOnlyUses(rule).map((u) => ({ ...u, path: ['spec', 'rules', i, ...u.path] })));
    if (uses.length === 0) continue;
    const ports = tcpPortsUnder(snapshot, p, root);
    if (ports.length === 0) continue;
    const portList = ports.join(', ');
    for (const u of uses) {
      const field = formatFieldPath(u.path);
      const effect =
        action === 'DENY' || action === 'CUSTOM'
          ? `the ${action} rule applies there without it, so it denies more than on HTTP ports`
          : `Envoy's TCP filter leaves out the source, operation or rule that uses it, so that part ${action === 'ALLOW' ? 'allows' : 'audits'} nothing there`;
      out.push(finding('IneffectivePolicy', p, field, `The policy has no impact: ${field} ("${u.field}") is HTTP-only and the policy selects TCP ports ${portList}; ${effect}.`));
    }
  }
  return out;
}
