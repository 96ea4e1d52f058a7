// AuthorizationPolicies as upstream Envoy filters, with Istio's semantics: the policies that
// apply to a proxy (mesh-wide from the root namespace, namespace-wide, by selector, or by
// targetRefs to a Gateway) become, in this order: for CUSTOM policies, a shadow RBAC filter
// that marks the requests their rules match and an ext_authz filter that asks the mesh
// config's extension provider about those only (translate/ext-authz.ts), or, when the provider
// cannot be used (unknown, not ext_authz, no such service, several on one workload), a DENY
// filter that fails closed as Istio does; a LOG filter for AUDIT; a DENY filter; an ALLOW
// filter (`envoy.filters.http.rbac` in HTTP chains, `envoy.filters.network.rbac` in TCP ones).
// An ALLOW filter is present as soon as one ALLOW policy applies, so what no ALLOW rule
// matches is denied. Policies annotated `istio.io/dry-run: "true"` become shadow rules (stats
// only). Pure; sorted by namespace/name.
import type { IstioConfig } from '../model/mesh.js';
import type { AuthorizationPolicyObject } from '../model/objects.js';
import {
  DRY_RUN_ANNOTATION,
  actionOf,
  bracketNames,
  parseCidr,
  type AuthzCondition,
  type AuthzOperation,
  type AuthzRule,
  type AuthzSource,
} from '../model/authorization.js';
import { rootNamespaceOf } from './istio-config.js';
import { policyApplies, type AuthzWorkload } from '../model/authorization-scope.js';

export { policyApplies, type AuthzWorkload } from '../model/authorization-scope.js';
import { anyOf, type Json } from './types.js';
import type { MeshSnapshot } from '../model/mesh.js';
import { isExtAuthz, providerTarget, type ExtAuthzProvider } from '../model/extension-providers.js';
import type { MeshService, MeshServicePort } from '../model/service.js';
import { outboundClusterName } from './names.js';
import { EXT_AUTHZ_POLICY_PREFIX, EXT_AUTHZ_SHADOW_STAT_PREFIX, httpExtAuthzFilter, networkExtAuthzFilter } from './ext-authz.js';

export const RBAC_HTTP_FILTER = 'envoy.filters.http.rbac';
export const RBAC_NETWORK_FILTER = 'envoy.filters.network.rbac';
/**
 * RequestAuthentication's filter: it goes before the RBAC filters in inbound HTTP chains, and
 * must write each verified token's payload to its dynamic metadata under JWT_PAYLOAD_KEY
 * (`payload_in_metadata`), where requestPrincipals and `request.auth.*` conditions look.
 */
export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
export const JWT_PAYLOAD_KEY = 'payload';
/** Istio's stat prefix of the network RBAC filter (`tcp.rbac.allowed`...). */
export const RBAC_TCP_STAT_PREFIX = 'tcp.';
/** Istio's stat prefixes for dry-run (shadow) rules. */
const SHADOW_STAT_PREFIX = { ALLOW: 'istio_dry_run_allow_', DENY: 'istio_dry_run_deny_', LOG: 'istio_dry_run_log_' } as const;

const HTTP_RBAC = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const NETWORK_RBAC = 'envoy.extensions.filters.network.rbac.v3.RBAC';

type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/** The policies that apply to a workload, by action, each sorted by namespace/name. */
export interface AppliedPolicies {
  custom: AuthorizationPolicyObject[];
  deny: AuthorizationPolicyObject[];
  allow: AuthorizationPolicyObject[];
  audit: AuthorizationPolicyObject[];
}

export function appliedPolicies(config: IstioConfig, w: AuthzWorkload): AppliedPolicies {
  const root = rootNamespaceOf(config);
  const out: AppliedPolicies = { custom: [], deny: [], allow: [], audit: [] };
  for (const p of config.authorizationPolicies ?? []) {
    if (!policyApplies(p, root, w)) continue;
    const action = actionOf(p.spec);
    out[action === 'CUSTOM' ? 'custom' : action === 'DENY' ? 'deny' : action === 'ALLOW' ? 'allow' : 'audit'].push(p);
  }
  return out;
}

// --- matchers --------------------------------------------------------------------------------

const ANY_VALUE: Json = { safe_regex: { regex: '.+' } };

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** Istio's string matching: `*` any non-empty value, `x*` a prefix, `*x` a suffix, else exact. */
function stringMatcher(value: string, ignoreCase = false): Json {
  const ic = ignoreCase ? { ignore_case: true } : {};
  if (value === '*') return ANY_VALUE;
  if (value.endsWith('*')) return { prefix: value.slice(0, -1), ...ic };
  if (value.startsWith('*')) return { suffix: value.slice(1), ...ic };
  return { exact: value, ...ic };
}

/** A peer principal (`cluster.local/ns/foo/sa/sleep`) against the certificate's SPIFFE URI. */
function principalMatcher(value: string): Json {
  if (value === '*') return ANY_VALUE;
  if (value.endsWith('*')) return { prefix: `spiffe://${value.slice(0, -1)}` };
  if (value.startsWith('*')) return { safe_regex: { regex: `spiffe://.*${escapeRegex(value.slice(1))}` } };
  return { exact: `spiffe://${value}` };
}

function authenticated(m: Json): Json {
  return { authenticated: { principal_name: m } };
}

function namespacePrincipal(ns: string): Json {
  return authenticated({ safe_regex: { regex: `.*/ns/${ns.split('*').map(escapeRegex).join('.*')}/.*` } });
}

function serviceAccountPrincipal(value: string, policyNamespace: string): Json {
  const slash = value.indexOf('/');
  const ns = slash >= 0 ? value.slice(0, slash) : policyNamespace;
  const sa = slash >= 0 ? value.slice(slash + 1) : value;
  return authenticated({ safe_regex: { regex: `spiffe://[^/]+/ns/${escapeRegex(ns)}/sa/${escapeRegex(sa)}` } });
}

function cidr(value: string): Json {
  const c = parseCidr(value)!;
  return { address_prefix: c.address, prefix_len: c.prefixLen };
}

function headerMatcher(name: string, value: string, ignoreCase = false): Json {
  return { header: value === '*' ? { name, present_match: true } : { name, string_match: stringMatcher(value, ignoreCase) } };
}

function pathPermission(value: string): Json {
  return { url_path: { path: stringMatcher(value) } };
}

/** A claim of a verified JWT (jwt_authn's payload metadata): a string, or a list holding one. */
function jwtClaim(claims: string[], m: Json): Json {
  return {
    metadata: {
      filter: JWT_AUTHN_FILTER,
      path: [JWT_PAYLOAD_KEY, ...claims].map((key) => ({ key })),
      value: { or_match: { value_matchers: [{ list_match: { one_of: { string_match: m } } }, { string_match: m }] } },
    },
  };
}

function jwtString(claim: string, m: Json): Json {
  return { metadata: { filter: JWT_AUTHN_FILTER, path: [{ key: JWT_PAYLOAD_KEY }, { key: claim }], value: { string_match: m } } };
}

/** `<iss>/<sub>`, split at the last "/" (issuers are often URLs), as Istio matches request principals. */
function requestPrincipal(value: string): Json {
  const idx = value.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? value.slice(0, idx) : value;
  const sub = found ? value.slice(idx + 1) : '';
  let mIss: Json;
  let mSub: Json;
  if (value === '*') [mIss, mSub] = [ANY_VALUE, ANY_VALUE];
  else if (value.startsWith('*')) {
    if (found) [mIss, mSub] = [iss === '*' ? ANY_VALUE : { suffix: iss.slice(1) }, { exact: sub }];
    else [mIss, mSub] = [ANY_VALUE, { suffix: value.slice(1) }];
  } else if (value.endsWith('*')) {
    if (found) [mIss, mSub] = [{ exact: iss }, sub === '*' ? ANY_VALUE : { prefix: sub.slice(0, -1) }];
    else [mIss, mSub] = [{ prefix: value.slice(0, -1) }, ANY_VALUE];
  } else [mIss, mSub] = [{ exact: iss }, { exact: sub }];
  return { and_ids: { ids: [jwtString('iss', mIss), jwtString('sub', mSub)] } };
}

// --- rules -----------------------------------------------------------------------------------

/** One condition of a rule: Envoy matchers ORed, negated for `not` fields; `http` when TCP cannot evaluate it. */
interface Part {
  matchers: Json[];
  negate: boolean;
  http: boolean;
}

function part(list: readonly string[] | null | undefined, negate: boolean, http: boolean, build: (v: string) => Json): Part[] {
  return list?.length ? [{ matchers: list.map(build), negate, http }] : [];
}

function permissionParts(o: AuthzOperation): Part[] {
  return [
    ...part(o.hosts, false, true, (v) => headerMatcher(':authority', v, true)),
    ...part(o.notHosts, true, true, (v) => headerMatcher(':authority', v, true)),
    ...part(o.ports, false, false, (v) => ({ destination_port: Number(v) })),
    ...part(o.notPorts, true, false, (v) => ({ destination_port: Number(v) })),
    ...part(o.methods, false, true, (v) => headerMatcher(':method', v)),
    ...part(o.notMethods, true, true, (v) => headerMatcher(':method', v)),
    ...part(o.paths, false, true, pathPermission),
    ...part(o.notPaths, true, true, pathPermission),
  ];
}

function principalParts(s: AuthzSource, policyNamespace: string): Part[] {
  const sa = (v: string): Json => serviceAccountPrincipal(v, policyNamespace);
  return [
    ...part(s.principals, false, false, (v) => authenticated(principalMatcher(v))),
    ...part(s.notPrincipals, true, false, (v) => authenticated(principalMatcher(v))),
    ...part(s.requestPrincipals, false, true, requestPrincipal),
    ...part(s.notRequestPrincipals, true, true, requestPrincipal),
    ...part(s.namespaces, false, false, namespacePrincipal),
    ...part(s.notNamespaces, true, false, namespacePrincipal),
    ...part(s.serviceAccounts, false, false, sa),
    ...part(s.notServiceAccounts, true, false, sa),
    ...part(s.ipBlocks, false, false, (v) => ({ direct_remote_ip: cidr(v) })),
    ...part(s.notIpBlocks, true, false, (v) => ({ direct_remote_ip: cidr(v) })),
    ...part(s.remoteIpBlocks, false, false, (v) => ({ remote_ip: cidr(v) })),
    ...part(s.notRemoteIpBlocks, true, false, (v) => ({ remote_ip: cidr(v) })),
  ];
}

/** `when` conditions on the destination (permissions) or the source (principals). */
function conditionParts(c: AuthzCondition, side: 'permission' | 'principal', policyNamespace: string): Part[] {
  const key = c.key;
  const both = (http: boolean, build: (v: string) => Json): Part[] => [...part(c.values, false, http, build), ...part(c.notValues, true, http, build)];
  if (side === 'permission') {
    if (key === 'destination.ip') return both(false, (v) => ({ destination_ip: cidr(v) }));
    if (key === 'destination.port') return both(false, (v) => ({ destination_port: Number(v) }));
    if (key === 'connection.sni') return both(false, (v) => ({ requested_server_name: stringMatcher(v) }));
    return [];
  }
  if (key === 'source.ip') return both(false, (v) => ({ direct_remote_ip: cidr(v) }));
  if (key === 'remote.ip') return both(false, (v) => ({ remote_ip: cidr(v) }));
  if (key === 'source.namespace') return both(false, namespacePrincipal);
  if (key === 'source.principal') return both(false, (v) => authenticated(principalMatcher(v)));
  if (key === 'source.serviceAccount') return both(false, (v) => serviceAccountPrincipal(v, policyNamespace));
  if (key.startsWith('request.headers[')) return both(true, (v) => headerMatcher(bracketNames(key)[0]!, v));
  if (key === 'request.auth.principal') return both(true, requestPrincipal);
  if (key === 'request.auth.audiences') return both(true, (v) => jwtClaim(['aud'], stringMatcher(v)));
  if (key === 'request.auth.presenter') return both(true, (v) => jwtClaim(['azp'], stringMatcher(v)));
  if (key.startsWith('request.auth.claims[')) return both(true, (v) => jwtClaim(bracketNames(key), stringMatcher(v)));
  return [];
}

function combine(parts: Part[], kind: 'rules' | 'ids'): Json {
  const or = kind === 'rules' ? 'or_rules' : 'or_ids';
  const not = kind === 'rules' ? 'not_rule' : 'not_id';
  const and = kind === 'rules' ? 'and_rules' : 'and_ids';
  if (parts.length === 0) return { any: true };
  const items = parts.map((p) => {
    const m = { [or]: { [kind]: p.matchers } };
    return p.negate ? { [not]: m } : m;
  });
  return { [and]: { [kind]: items } };
}

/**
 * The parts a TCP chain keeps: for a DENY (or a CUSTOM, which denies) the HTTP-only ones are
 * dropped, so it matches more; for ALLOW and AUDIT an entry with one is left out entirely
 * (undefined), so it grants nothing.
 */
function forChain(parts: Part[], tcp: boolean, action: RbacAction): Part[] | undefined {
  if (!tcp || !parts.some((p) => p.http)) return parts;
  return action === 'DENY' ? parts.filter((p) => !p.http) : undefined;
}

/** The Envoy policy for one rule, or undefined when nothing of it applies on this chain. */
function rulePolicy(rule: AuthzRule, policyNamespace: string, tcp: boolean, action: RbacAction): Json | undefined {
  const when = rule.when ?? [];
  const whenPermission = when.flatMap((c) => conditionParts(c, 'permission', policyNamespace));
  const whenPrincipal = when.flatMap((c) => conditionParts(c, 'principal', policyNamespace));
  const tos = rule.to?.length ? rule.to.map((t) => [...permissionParts(t.operation ?? {}), ...whenPermission]) : [whenPermission];
  const froms = rule.from?.length ? rule.from.map((f) => [...principalParts(f.source ?? {}, policyNamespace), ...whenPrincipal]) : [whenPrincipal];
  const permissions = tos.map((p) => forChain(p, tcp, action)).filter((p): p is Part[] => p !== undefined).map((p) => combine(p, 'rules'));
  const principals = froms.map((p) => forChain(p, tcp, action)).filter((p): p is Part[] => p !== undefined).map((p) => combine(p, 'ids'));
  if (permissions.length === 0 || principals.length === 0) return undefined;
  return { permissions, principals };
}

/** A policy no request matches: what a policy without rules contributes (an ALLOW one then allows nothing). */
const MATCH_NEVER: Json = { permissions: [{ not_rule: { any: true } }], principals: [{ not_id: { any: true } }] };

export function rbacPolicyName(p: AuthorizationPolicyObject, rule: number): string {
  return `ns[${p.metadata.namespace}]-policy[${p.metadata.name}]-rule[${rule}]`;
}

function isDryRun(p: AuthorizationPolicyObject): boolean {
  return p.metadata.annotations[DRY_RUN_ANNOTATION]?.toLowerCase() === 'true';
}

interface BuiltRules {
  action: RbacAction;
  rules?: Json;
  shadow?: Json;
}

function buildRules(policies: readonly AuthorizationPolicyObject[], action: RbacAction, tcp: boolean, suffix = ''): BuiltRules | undefined {
  if (policies.length === 0) return undefined;
  const enforce: Record<string, Json> = {};
  const shadow: Record<string, Json> = {};
  let hasEnforce = false;
  let hasShadow = false;
  for (const p of policies) {
    const target = isDryRun(p) ? shadow : enforce;
    if (isDryRun(p)) hasShadow = true;
    else hasEnforce = true;
    const rules = p.spec.rules ?? [];
    rules.forEach((rule, i) => {
      const built = rulePolicy(rule, p.metadata.namespace, tcp, action);
      if (built) target[rbacPolicyName(p, i) + suffix] = built;
    });
    if (rules.length === 0) target[rbacPolicyName(p, 0) + suffix] = MATCH_NEVER;
  }
  return {
    action,
    ...(hasEnforce ? { rules: { action, policies: enforce } } : {}),
    ...(hasShadow ? { shadow: { action, policies: shadow } } : {}),
  };
}

function httpFilter(b: BuiltRules): Json {
  return {
    name: RBAC_HTTP_FILTER,
    typed_config: anyOf(HTTP_RBAC, {
      ...(b.rules ? { rules: b.rules } : {}),
      ...(b.shadow ? { shadow_rules: b.shadow, shadow_rules_stat_prefix: SHADOW_STAT_PREFIX[b.action] } : {}),
    }),
  };
}

function networkFilter(b: BuiltRules): Json {
  return {
    name: RBAC_NETWORK_FILTER,
    typed_config: anyOf(NETWORK_RBAC, {
      stat_prefix: RBAC_TCP_STAT_PREFIX,
      ...(b.rules ? { rules: b.rules } : {}),
      ...(b.shadow ? { shadow_rules: b.shadow, shadow_rules_stat_prefix: SHADOW_STAT_PREFIX[b.action] } : {}),
    }),
  };
}

/** Istio's suffix for the deny rules a CUSTOM policy fails closed with. */
const BAD_CUSTOM_SUFFIX = '-bad-custom-action';

/** What the mesh config and services say about extension providers (a snapshot has both). */
export type ExtAuthzSources = Pick<MeshSnapshot, 'meshConfig' | 'serviceByHost'>;

/**
 * What the CUSTOM policies of one workload do: nothing (none apply); ask one ext_authz
 * provider at its service port; or fail closed (deny what their rules match) with the reason.
 */
export type CustomDecision =
  | { kind: 'none' }
  | { kind: 'ext-authz'; policies: AuthorizationPolicyObject[]; provider: ExtAuthzProvider; service: MeshService; port: MeshServicePort }
  | { kind: 'fail-closed'; policies: AuthorizationPolicyObject[]; reason: string };

/** Dry-run CUSTOM policies are not enforced and not sent to the authorizer. */
function enforcedCustom(applied: AppliedPolicies): AuthorizationPolicyObject[] {
  return applied.custom.filter((p) => !isDryRun(p));
}

function decideCustom(policies: AuthorizationPolicyObject[], sources: ExtAuthzSources | undefined): CustomDecision {
  if (policies.length === 0) return { kind: 'none' };
  const names = [...new Set(policies.map((p) => p.spec.provider?.name ?? ''))].sort();
  // Istio allows one provider per workload.
  if (names.length > 1) return { kind: 'fail-closed', policies, reason: `CUSTOM policies name several extension providers (${names.join(', ')}); one per workload` };
  const provider = sources?.meshConfig.extensionProviders.find((p) => p.name === names[0]);
  if (!provider) return { kind: 'fail-closed', policies, reason: `no extension provider "${names[0]}" in the mesh config` };
  if (!isExtAuthz(provider)) return { kind: 'fail-closed', policies, reason: `extension provider "${provider.name}" is ${provider.kind}, not envoyExtAuthzHttp or envoyExtAuthzGrpc` };
  const target = providerTarget(provider, sources!.serviceByHost);
  if (!target.ok) return { kind: 'fail-closed', policies, reason: target.reason };
  return { kind: 'ext-authz', policies, provider, service: target.service, port: target.port };
}

/** The CUSTOM decision for a workload. */
export function customDecision(config: IstioConfig, w: AuthzWorkload, sources: ExtAuthzSources | undefined): CustomDecision {
  if (!config.authorizationPolicies?.length) return { kind: 'none' };
  return decideCustom(enforcedCustom(appliedPolicies(config, w)), sources);
}

/** The outbound cluster a CUSTOM decision sends checks to, if it does. */
export function extAuthzCluster(d: CustomDecision): { service: MeshService; port: MeshServicePort; name: string } | undefined {
  return d.kind === 'ext-authz' ? { service: d.service, port: d.port, name: outboundClusterName(d.port.port, d.service.hostname) } : undefined;
}

/** The shadow RBAC rules marking what CUSTOM policies match, under names the ext_authz filter recognises. */
function customShadowRules(policies: readonly AuthorizationPolicyObject[], tcp: boolean): Json {
  const policiesByName: Record<string, Json> = {};
  for (const p of policies) {
    const rules = p.spec.rules ?? [];
    rules.forEach((rule, i) => {
      // On TCP, HTTP-only parts are dropped as for DENY: the authorizer is asked about more, not less.
      const built = rulePolicy(rule, p.metadata.namespace, tcp, 'DENY');
      if (built) policiesByName[`${EXT_AUTHZ_POLICY_PREFIX}-${rbacPolicyName(p, i)}`] = built;
    });
  }
  return { action: 'DENY', policies: policiesByName };
}

function customHttpFilters(d: CustomDecision): Json[] {
  if (d.kind === 'none') return [];
  if (d.kind === 'fail-closed') return [httpFilter(buildRules(d.policies, 'DENY', false, BAD_CUSTOM_SUFFIX)!)];
  const shadow = { name: RBAC_HTTP_FILTER, typed_config: anyOf(HTTP_RBAC, { shadow_rules: customShadowRules(d.policies, false), shadow_rules_stat_prefix: EXT_AUTHZ_SHADOW_STAT_PREFIX }) };
  return [shadow, httpExtAuthzFilter(d.provider, extAuthzCluster(d)!.name, d.service.hostname, RBAC_HTTP_FILTER)];
}

function customTcpFilters(d: CustomDecision): Json[] {
  if (d.kind === 'none') return [];
  if (d.kind === 'fail-closed') return [networkFilter(buildRules(d.policies, 'DENY', true, BAD_CUSTOM_SUFFIX)!)];
  // Envoy checks TCP connections over gRPC only: an HTTP provider leaves TCP ports unchecked, as in Istio.
  if (d.provider.kind !== 'envoyExtAuthzGrpc') return [];
  const shadow = {
    name: RBAC_NETWORK_FILTER,
    typed_config: anyOf(NETWORK_RBAC, { stat_prefix: RBAC_TCP_STAT_PREFIX, shadow_rules: customShadowRules(d.policies, true), shadow_rules_stat_prefix: EXT_AUTHZ_SHADOW_STAT_PREFIX }),
  };
  return [shadow, networkExtAuthzFilter(d.provider, extAuthzCluster(d)!.name, d.service.hostname, RBAC_NETWORK_FILTER, RBAC_TCP_STAT_PREFIX)];
}

function allRules(applied: AppliedPolicies, tcp: boolean): BuiltRules[] {
  return [buildRules(applied.audit, 'LOG', tcp), buildRules(applied.deny, 'DENY', tcp), buildRules(applied.allow, 'ALLOW', tcp)].filter((b): b is BuiltRules => b !== undefined);
}

/** The authorization filters of one proxy's inbound side (or a gateway's listeners). */
export interface AuthzFilters {
  /** HTTP filters, in order, before the router (and after RequestAuthentication's jwt_authn). */
  http: Json[];
  /** Network filters, in order, before the TCP proxy. */
  tcp: Json[];
}

const NONE: AuthzFilters = Object.freeze({ http: [], tcp: [] }) as AuthzFilters;

/**
 * The authorization filters for a workload: none when no policy applies. CUSTOM policies ask
 * the extension provider `sources` (the snapshot) name; without them they fail closed.
 */
export function authorizationFilters(config: IstioConfig, w: AuthzWorkload, sources?: ExtAuthzSources): AuthzFilters {
  if (!config.authorizationPolicies?.length) return NONE;
  const applied = appliedPolicies(config, w);
  const custom = decideCustom(enforcedCustom(applied), sources);
  return {
    http: [...customHttpFilters(custom), ...allRules(applied, false).map(httpFilter)],
    tcp: [...customTcpFilters(custom), ...allRules(applied, true).map(networkFilter)],
  };
}
