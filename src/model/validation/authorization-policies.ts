// What an AuthorizationPolicy does not do as written, found across objects: HTTP-only fields
// on the TCP ports of the workloads it selects (left out of an ALLOW, ignored by a DENY, as
// translate/authorization.ts compiles them, as Istio does), and CUSTOM policies whose extension
// provider cannot be used (none of that name in the mesh config, not an ext_authz provider,
// no such service, or several providers on one workload): they fail closed; and CUSTOM
// policies with an HTTP provider on workloads with TCP ports, which no ext_authz checks. Pure;
// a rule of the validation stage.
import type { AuthorizationPolicyObject, PodObject } from '../objects.js';
import { DRY_RUN_ANNOTATION, actionOf, httpOnlyUses } from '../authorization.js';
import { finding, notFound, type Finding } from '../finding.js';
import { formatFieldPath } from '../objects.js';
import { mayCarryHttp } from '../protocol.js';
import { selectorMatches } from '../labels.js';
import { policyApplies } from '../authorization-scope.js';
import type { MeshService } from '../service.js';
import { isExtAuthz, providerTarget, type ExtensionProvider } from '../extension-providers.js';

export interface AuthorizationPolicyInput {
  policies: readonly AuthorizationPolicyObject[];
  services: readonly MeshService[];
  pods: Iterable<PodObject>;
  rootNamespace: string;
  /** The mesh config's extensionProviders (CUSTOM policies name one). */
  extensionProviders?: readonly ExtensionProvider[];
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

function isDryRun(p: AuthorizationPolicyObject): boolean {
  return p.metadata.annotations[DRY_RUN_ANNOTATION]?.toLowerCase() === 'true';
}

/** IST0101 for a CUSTOM policy whose provider cannot be used: the policy denies what its rules match, as in Istio. */
function providerFindings(p: AuthorizationPolicyObject, providers: readonly ExtensionProvider[], serviceByHost: ReadonlyMap<string, MeshService>): Finding[] {
  const name = p.spec.provider?.name ?? '';
  const provider = providers.find((x) => x.name === name);
  if (!provider) return [notFound(p, 'spec.provider.name', 'extension provider', name)];
  const denies = 'requests its rules match are denied (fail closed)';
  if (!isExtAuthz(provider)) {
    return [finding('ReferencedResourceNotFound', p, 'spec.provider.name', `Referenced extension provider ${JSON.stringify(name)} is ${provider.kind}, not an ext_authz provider (envoyExtAuthzHttp, envoyExtAuthzGrpc): ${denies}.`)];
  }
  const target = providerTarget(provider, serviceByHost);
  if (!target.ok) return [finding('ReferencedResourceNotFound', p, 'spec.provider.name', `Referenced ${target.reason}: ${denies}.`)];
  return [];
}

/** CUSTOM policies naming different providers on one pod: Istio takes one provider per workload, so CUSTOM fails closed there. */
function providerConflicts(input: AuthorizationPolicyInput): Finding[] {
  const custom = input.policies.filter((p) => actionOf(p.spec) === 'CUSTOM' && !isDryRun(p));
  if (new Set(custom.map((p) => p.spec.provider?.name ?? '')).size < 2) return [];
  const reported = new Map<AuthorizationPolicyObject, string>();
  for (const pod of input.pods) {
    const w = { namespace: pod.metadata.namespace, labels: pod.metadata.labels };
    const applying = custom.filter((p) => policyApplies(p, input.rootNamespace, w));
    const names = [...new Set(applying.map((p) => p.spec.provider?.name ?? ''))].sort();
    if (names.length < 2) continue;
    for (const p of applying) if (!reported.has(p)) reported.set(p, `${pod.metadata.namespace}/${pod.metadata.name}`);
  }
  return [...reported].map(([p, pod]) =>
    finding('IneffectivePolicy', p, 'spec.provider.name', `The policy has no impact as written: pod ${pod} is under CUSTOM policies naming different extension providers, and a workload takes one; its CUSTOM rules deny what they match (fail closed).`, 'Error'),
  );
}

/**
 * Findings about AuthorizationPolicies: IST0167 (IneffectivePolicy) for
 * each HTTP-only field a policy uses where it selects a workload with TCP ports, and for CUSTOM
 * policies naming different providers on one pod; IST0101 for a CUSTOM policy's extension
 * provider that the mesh config lacks or that cannot be used (the policy denies what its rules
 * match, as Istio does with a provider it cannot find).
 */
export function authorizationPolicyFindings(input: AuthorizationPolicyInput): Finding[] {
  const out: Finding[] = [];
  const root = input.rootNamespace;
  let index: WorkloadIndex | undefined;
  const serviceByHost = new Map(input.services.map((s) => [s.hostname, s]));
  for (const p of input.policies) {
    const action = actionOf(p.spec);
    let provider: ExtensionProvider | undefined;
    if (action === 'CUSTOM') {
      const found = providerFindings(p, input.extensionProviders ?? [], serviceByHost);
      out.push(...found);
      if (found.length === 0) provider = (input.extensionProviders ?? []).find((x) => x.name === p.spec.provider?.name);
    }
    // An HTTP ext_authz provider checks no TCP connection (Envoy checks those over gRPC only).
    if (provider?.kind === 'envoyExtAuthzHttp' && !isDryRun(p)) {
      const ports = (index ??= new WorkloadIndex(input)).tcpPortsUnder(p, root);
      if (ports.length > 0) {
        out.push(
          finding('IneffectivePolicy', p, 'spec.provider.name', `The policy has no impact on TCP ports ${ports.join(', ')} of the workloads it selects: extension provider "${provider.name}" is envoyExtAuthzHttp, and TCP connections are checked only by an envoyExtAuthzGrpc provider.`),
        );
      }
      continue;
    }
    const rules = p.spec.rules ?? [];
    const uses = rules.flatMap((rule, i) => httpOnlyUses(rule).map((u) => ({ ...u, path: ['spec', 'rules', i, ...u.path] })));
    if (uses.length === 0) continue;
    const ports = (index ??= new WorkloadIndex(input)).tcpPortsUnder(p, root);
    if (ports.length === 0) continue;
    const portList = ports.join(', ');
    for (const u of uses) {
      const field = formatFieldPath(u.path);
      const effect =
        action === 'CUSTOM' && provider
          ? `the CUSTOM rule applies there without it, so the extension provider checks more connections than on HTTP ports`
          : action === 'DENY' || action === 'CUSTOM'
            ? `the ${action} rule applies there without it, so it denies more than on HTTP ports`
            : `Envoy's TCP filter leaves out the source, operation or rule that uses it, so that part ${action === 'ALLOW' ? 'allows' : 'audits'} nothing there`;
      out.push(finding('IneffectivePolicy', p, field, `The policy has no impact: ${field} ("${u.field}") is HTTP-only and the policy selects TCP ports ${portList}; ${effect}.`));
    }
  }
  out.push(...providerConflicts(input));
  return out;
}
