// What an AuthorizationPolicy does not do as written, found across objects: HTTP-only fields
// on the TCP ports of the workloads it selects (left out of an ALLOW, ignored by a DENY, as
// translate/authorization.ts compiles them, as Istio does), and CUSTOM policies whose extension
// provider meshd cannot have (they fail closed). Pure; a rule of the validation stage.
import type { AuthorizationPolicyObject, PodObject } from '../objects.js';
import { actionOf, httpOnlyUses } from '../authorization.js';
import { finding, notFound, type Finding } from '../finding.js';
import { formatFieldPath } from '../objects.js';
import { mayCarryHttp } from '../protocol.js';
import { selectorMatches } from '../labels.js';
import { policyApplies } from '../authorization-scope.js';
import type { MeshService } from '../service.js';

export interface AuthorizationPolicyInput {
  policies: readonly AuthorizationPolicyObject[];
  services: readonly MeshService[];
  pods: Iterable<PodObject>;
  rootNamespace: string;
}

/** Pods and services by namespace, built once, and only when a policy uses an HTTP-only field. */
class WorkloadIndex {
  readonly pods = new Map<string, PodObject[]>();
  readonly services = new Map<string, MeshService[]>();

  constructor(input: AuthorizationPolicyInput) {
    for (const pod of input.pods) push(this.pods, pod.metadata.namespace, pod);
    for (const svc of input.services) push(this.services, svc.namespace, svc);
  }

  /** Per pod, the non-HTTP target ports of the services selecting it (computed once per pod). */
  private readonly podPorts = new Map<PodObject, readonly number[]>();

  /** The non-HTTP workload ports (target ports) of the pods `policy` applies to, sorted. */
  tcpPortsUnder(policy: AuthorizationPolicyObject, root: string): number[] {
    const ports = new Set<number>();
    // Only a root-namespace policy (without targetRefs) reaches pods of other namespaces.
    const namespaces = policy.metadata.namespace === root ? [...this.pods.keys()] : [policy.metadata.namespace];
    for (const ns of namespaces) {
      for (const pod of this.pods.get(ns) ?? []) {
        if (!policyApplies(policy, root, { namespace: ns, labels: pod.metadata.labels })) continue;
        for (const port of this.tcpPortsOf(pod)) ports.add(port);
      }
    }
    return [...ports].sort((a, b) => a - b);
  }

  private tcpPortsOf(pod: PodObject): readonly number[] {
    let ports = this.podPorts.get(pod);
    if (ports) return ports;
    const found = new Set<number>();
    for (const svc of this.services.get(pod.metadata.namespace) ?? []) {
      if (!selectorMatches(svc.selector, pod.metadata.labels)) continue;
      for (const p of svc.ports) {
        if (p.protocol === 'UDP' || mayCarryHttp(p.protocol)) continue;
        found.add(typeof p.targetPort === 'number' ? p.targetPort : p.port);
      }
    }
    ports = [...found];
    this.podPorts.set(pod, ports);
    return ports;
  }
}

function push<T>(m: Map<string, T[]>, key: string, value: T): void {
  const list = m.get(key);
  if (list) list.push(value);
  else m.set(key, [value]);
}

/**
 * Findings about AuthorizationPolicies: IST0167 (IneffectivePolicy) for
 * each HTTP-only field a policy uses where it selects a workload with TCP ports, and IST0101
 * for a CUSTOM policy's extension provider (meshd configures none: the policy denies what its
 * rules match, as Istio does with a provider it cannot find).
 */
export function authorizationPolicyFindings(input: AuthorizationPolicyInput): Finding[] {
  const out: Finding[] = [];
  const root = input.rootNamespace;
  let index: WorkloadIndex | undefined;
  for (const p of input.policies) {
    const action = actionOf(p.spec);
    if (action === 'CUSTOM') out.push(notFound(p, 'spec.provider.name', 'extension provider', p.spec.provider?.name ?? ''));
    const rules = p.spec.rules ?? [];
    const uses = rules.flatMap((rule, i) => httpOnlyUses(rule).map((u) => ({ ...u, path: ['spec', 'rules', i, ...u.path] })));
    if (uses.length === 0) continue;
    const ports = (index ??= new WorkloadIndex(input)).tcpPortsUnder(p, root);
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
