// Which workloads an AuthorizationPolicy (or a RequestAuthentication, scoped alike) applies to, by Istio's scoping rules: mesh-wide from
// the root namespace (its selector, if any, in every namespace), namespace-wide, by selector,
// or by targetRefs to Gateways (whose proxies carry the Gateway's name as a label). Used by
// translation, validation and distribution tracking alike.
import type { AuthorizationPolicyObject, RequestAuthenticationObject } from './objects.js';
import { selectorMatches, type Labels } from './labels.js';
import { GATEWAY_NAME_LABEL, targetRefsOf } from './authorization.js';

/** The proxy a policy may apply to: a sidecar's or a gateway's namespace and labels. */
export interface AuthzWorkload {
  namespace: string;
  labels: Labels;
}

/** Whether `policy` applies to `w`, by Istio's scoping rules. */
export function policyApplies(policy: AuthorizationPolicyObject | RequestAuthenticationObject, rootNamespace: string, w: AuthzWorkload): boolean {
  const ns = policy.metadata.namespace;
  const refs = targetRefsOf(policy.spec);
  // targetRefs name Gateways in the policy's namespace; their proxies carry the Gateway's name.
  if (refs.length > 0) return ns === w.namespace && refs.some((r) => w.labels[GATEWAY_NAME_LABEL] === r.name);
  // A root-namespace policy applies across the mesh (its selector to matching workloads in every namespace).
  if (ns !== rootNamespace && ns !== w.namespace) return false;
  const selector = policy.spec.selector?.matchLabels ?? undefined;
  return !selector || Object.keys(selector).length === 0 || selectorMatches(selector, w.labels);
}
