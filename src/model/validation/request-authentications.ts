// What a RequestAuthentication does not do as written, found across objects: a jwksUri naming
// a mesh Service (`<name>.<namespace>.svc.<domain>`) that does not exist, or a port that
// Service does not have. Envoy could not fetch those keys, so every request carrying a token
// of that issuer would be refused (401). And an AuthorizationPolicy reading a verified JWT
// (requestPrincipals, request.auth.*) on pods no RequestAuthentication applies to, where it
// can never match. Pure; rules of the validation stage.
import type { AuthorizationPolicyObject, PodObject, RequestAuthenticationObject } from '../objects.js';
import { formatFieldPath } from '../objects.js';
import { jwksLocation } from '../request-authentication.js';
import { policyApplies } from '../authorization-scope.js';
import { finding, notFound, type Finding } from '../finding.js';
import type { MeshService } from '../service.js';

export interface RequestAuthenticationInput {
  policies: readonly RequestAuthenticationObject[];
  services: readonly MeshService[];
  domain: string;
}

/** IST0101 (ReferencedResourceNotFound) for each jwksUri whose mesh Service, or its port, does not exist. */
export function requestAuthenticationFindings(input: RequestAuthenticationInput): Finding[] {
  const out: Finding[] = [];
  const suffix = `.svc.${input.domain}`;
  let byHost: Map<string, MeshService> | undefined;
  for (const p of input.policies) {
    (p.spec.jwtRules ?? []).forEach((rule, i) => {
      const loc = rule.jwksUri ? jwksLocation(rule.jwksUri) : undefined;
      if (!loc || !loc.host.endsWith(suffix)) return;
      byHost ??= new Map(input.services.map((s) => [s.hostname, s]));
      const svc = byHost.get(loc.host);
      const field = `spec.jwtRules[${i}].jwksUri`;
      if (!svc) {
        const f = notFound(p, field, 'host', loc.host);
        f.message += ' (no Service has it: Envoy cannot fetch the keys, and tokens of this issuer get 401)';
        out.push(f);
      } else if (!svc.ports.some((sp) => sp.port === loc.port)) {
        const f = notFound(p, field, 'port', `${loc.host}:${loc.port}`);
        f.message += ` (the Service's ports are ${svc.ports.map((sp) => sp.port).join(', ')})`;
        out.push(f);
      }
    });
  }
  return out;
}

export interface RequestPrincipalInput {
  authorizationPolicies: readonly AuthorizationPolicyObject[];
  requestAuthentications: readonly RequestAuthenticationObject[];
  pods: Iterable<PodObject>;
  rootNamespace: string;
}

/** Where a rule reads the verified JWT: requestPrincipals (and not…) and the request.auth.* keys. */
function requestAuthUses(p: AuthorizationPolicyObject): string[] {
  const out: string[] = [];
  (p.spec.rules ?? []).forEach((rule, r) => {
    (rule.from ?? []).forEach((f, i) => {
      for (const k of ['requestPrincipals', 'notRequestPrincipals'] as const) if (f.source?.[k]?.length) out.push(formatFieldPath(['spec', 'rules', r, 'from', i, 'source', k]));
    });
    (rule.when ?? []).forEach((c, i) => {
      if (c.key.startsWith('request.auth.')) out.push(formatFieldPath(['spec', 'rules', r, 'when', i, 'key']));
    });
  });
  return out;
}

const MAX_NAMED_PODS = 3;

/**
 * IST0167 (IneffectivePolicy), a Warning, for each place an AuthorizationPolicy reads a
 * verified JWT (requestPrincipals, `request.auth.*`) when it applies to pods that no
 * RequestAuthentication applies to: no request there carries a verified token, so those
 * matchers never match (their `not…` forms always do). Pods are listed only for such policies.
 */
export function requestPrincipalFindings(input: RequestPrincipalInput): Finding[] {
  const out: Finding[] = [];
  const root = input.rootNamespace;
  let byNamespace: Map<string, PodObject[]> | undefined;
  const authenticated = new Map<PodObject, boolean>();
  for (const p of input.authorizationPolicies) {
    const uses = requestAuthUses(p);
    if (uses.length === 0) continue;
    if (!byNamespace) {
      byNamespace = new Map();
      for (const pod of input.pods) {
        const list = byNamespace.get(pod.metadata.namespace);
        if (list) list.push(pod);
        else byNamespace.set(pod.metadata.namespace, [pod]);
      }
    }
    // Only a root-namespace policy reaches pods of other namespaces.
    const pods = p.metadata.namespace === root ? [...byNamespace.values()].flat() : (byNamespace.get(p.metadata.namespace) ?? []);
    const without: string[] = [];
    for (const pod of pods) {
      const w = { namespace: pod.metadata.namespace, labels: pod.metadata.labels };
      if (!policyApplies(p, root, w)) continue;
      let has = authenticated.get(pod);
      if (has === undefined) authenticated.set(pod, (has = input.requestAuthentications.some((ra) => policyApplies(ra, root, w))));
      if (!has) without.push(`${pod.metadata.namespace}/${pod.metadata.name}`);
    }
    if (without.length === 0) continue;
    const named = without.slice(0, MAX_NAMED_PODS).join(', ') + (without.length > MAX_NAMED_PODS ? ` and ${without.length - MAX_NAMED_PODS} more` : '');
    for (const field of uses) {
      out.push(
        finding(
          'IneffectivePolicy',
          p,
          field,
          `${field} reads a JWT verified by a RequestAuthentication, and none applies to pod${without.length > 1 ? 's' : ''} ${named}: no request there has one, so it never matches (a not… form always does).`,
          'Warning',
        ),
      );
    }
  }
  return out;
}
