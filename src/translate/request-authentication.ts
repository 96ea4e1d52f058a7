// RequestAuthentications as Envoy's upstream `jwt_authn` HTTP filter, with Istio's semantics:
// every jwtRule of every policy that applies to a proxy (scoped as AuthorizationPolicies are:
// mesh-wide from the root namespace, namespace-wide, by selector, by targetRefs to a Gateway)
// is one provider, `origins-<i>` in namespace/name then rule order. One requirement covers
// every request: any provider, or no token at all (`allow_missing`). So a request without a
// token passes (an AuthorizationPolicy can still require requestPrincipals), and one whose
// token no provider verifies is refused with 401. Each verified payload goes to the filter's
// dynamic metadata under JWT_PAYLOAD_KEY, where the RBAC filters' requestPrincipals and
// `request.auth.*` matchers look (translate/authorization.ts). A jwksUri is fetched by Envoy
// through a cluster named `outbound|<port>||<host>` (the mesh Service's own cluster, when the
// JWKS host is one). Pure; sorted.
import type { IstioConfig, MeshSnapshot } from '../model/mesh.js';
import type { RequestAuthenticationObject } from '../model/objects.js';
import { jwksLocation, type JwksLocation, type JwtRule } from '../model/request-authentication.js';
import { policyApplies, type AuthzWorkload } from '../model/authorization-scope.js';
import { unlimitedThresholds } from './traffic-policy.js';
import { protoDurationOf } from '../util/duration.js';
import { JWT_AUTHN_FILTER, JWT_PAYLOAD_KEY } from './authorization.js';
import { rootNamespaceOf } from './istio-config.js';
import { outboundClusterName } from './names.js';
import { anyOf, type EnvoyResource, type Json } from './types.js';

const JWT_AUTHN = 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
/** How long Envoy waits for a JWKS fetch, unless the rule sets `timeout` (Istio's default). */
const DEFAULT_JWKS_TIMEOUT = '5s';
/** How long a fetched JWKS is kept before Envoy fetches it again (Istio's refresh interval). */
const JWKS_CACHE_DURATION = '1200s';
/** Where Debian and Ubuntu (and Istio's proxy image) keep the system's trusted roots: a jwksUri over https is verified against them. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** The jwtRules that apply to a workload, in namespace/name then rule order. */
export function appliedJwtRules(config: IstioConfig, w: AuthzWorkload): { policy: RequestAuthenticationObject; rule: JwtRule }[] {
  const policies = config.requestAuthentications ?? [];
  if (policies.length === 0) return [];
  const root = rootNamespaceOf(config);
  return policies.filter((p) => policyApplies(p, root, w)).flatMap((policy) => (policy.spec.jwtRules ?? []).map((rule) => ({ policy, rule })));
}

/** The cluster Envoy fetches a JWKS through: the name Istio gives the outbound cluster of that host and port. */
export function jwksClusterName(loc: JwksLocation): string {
  return outboundClusterName(loc.port, loc.host);
}

function provider(rule: JwtRule): Json {
  const loc = rule.jwksUri ? jwksLocation(rule.jwksUri) : undefined;
  return {
    issuer: rule.issuer,
    ...(rule.audiences?.length ? { audiences: rule.audiences } : {}),
    ...(loc
      ? { remote_jwks: { http_uri: { uri: loc.uri, cluster: jwksClusterName(loc), timeout: protoDurationOf(rule.timeout ?? undefined) ?? DEFAULT_JWKS_TIMEOUT }, cache_duration: JWKS_CACHE_DURATION } }
      : { local_jwks: { inline_string: rule.jwks ?? '' } }),
    ...(rule.forwardOriginalToken ? { forward: true } : {}),
    ...(rule.fromHeaders?.length ? { from_headers: rule.fromHeaders.map((h) => ({ name: h.name, ...(h.prefix ? { value_prefix: h.prefix } : {}) })) } : {}),
    ...(rule.fromParams?.length ? { from_params: rule.fromParams } : {}),
    ...(rule.fromCookies?.length ? { from_cookies: rule.fromCookies } : {}),
    ...(rule.outputPayloadToHeader ? { forward_payload_header: rule.outputPayloadToHeader } : {}),
    payload_in_metadata: JWT_PAYLOAD_KEY,
    ...(rule.outputClaimToHeaders?.length ? { claim_to_headers: rule.outputClaimToHeaders.map((c) => ({ header_name: c.header, claim_name: c.claim })) } : {}),
  };
}

/** The jwt_authn filter for a workload's inbound HTTP chains (or a gateway's), or none when no RequestAuthentication applies. */
export function jwtAuthnFilters(config: IstioConfig, w: AuthzWorkload): Json[] {
  const rules = appliedJwtRules(config, w);
  if (rules.length === 0) return [];
  const providers: Record<string, Json> = {};
  rules.forEach(({ rule }, i) => (providers[`origins-${i}`] = provider(rule)));
  const requirements: Json[] = [...Object.keys(providers).map((name) => ({ provider_name: name })), { allow_missing: {} }];
  return [
    {
      name: JWT_AUTHN_FILTER,
      typed_config: anyOf(JWT_AUTHN, { providers, rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements } } }] }),
    },
  ];
}

function jwksCluster(loc: JwksLocation, connectTimeout: string): EnvoyResource {
  const name = jwksClusterName(loc);
  const ip = /^[0-9.]+$/.test(loc.host) || loc.host.includes(':');
  return {
    name,
    body: {
      name,
      type: ip ? 'STATIC' : 'STRICT_DNS',
      ...(ip ? {} : { dns_lookup_family: 'V4_PREFERRED' }),
      connect_timeout: connectTimeout,
      lb_policy: 'ROUND_ROBIN',
      circuit_breakers: { thresholds: [unlimitedThresholds()] },
      load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: loc.host, port_value: loc.port } } } }] }] },
      ...(loc.tls
        ? {
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: anyOf('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
                sni: loc.host,
                common_tls_context: {
                  validation_context: {
                    trusted_ca: { filename: SYSTEM_CA_BUNDLE },
                    ...(ip ? {} : { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: loc.host } }] }),
                  },
                },
              }),
            },
          }
        : {}),
    },
  };
}

/**
 * The clusters a proxy fetches its remote JWKS through, one per host and port, leaving out
 * those `existing` already has (a JWKS served by a mesh Service goes through its own cluster).
 */
export function jwksClusters(snapshot: MeshSnapshot, w: AuthzWorkload, existing: ReadonlySet<string>, connectTimeout: string): EnvoyResource[] {
  const out = new Map<string, EnvoyResource>();
  for (const { rule } of appliedJwtRules(snapshot.config, w)) {
    const loc = rule.jwksUri ? jwksLocation(rule.jwksUri) : undefined;
    if (!loc) continue;
    const name = jwksClusterName(loc);
    if (existing.has(name) || out.has(name)) continue;
    out.set(name, jwksCluster(loc, connectTimeout));
  }
  return [...out.values()];
}
