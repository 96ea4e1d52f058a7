// Istio's AuthorizationPolicy (security.istio.io v1 and v1beta1), as a typed value with
// validation that names the field and what would be valid. Which policies apply to which
// proxy, and the Envoy RBAC filters they become, are decided in translate/authorization.ts.
import { isIP } from 'node:net';
import { z } from 'zod';
import { selectorIssues } from './security.js';

export const AUTHZ_ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;
export type AuthzAction = (typeof AUTHZ_ACTIONS)[number];

/** The annotation that makes a policy a dry run: evaluated (shadow rules, stats) but not enforced. */
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
/** The label Istio puts on a Kubernetes Gateway's deployment; `targetRefs` to a Gateway select proxies by it. */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

const values = z.array(z.string()).nullish();

const sourceSchema = z.strictObject({
  principals: values,
  notPrincipals: values,
  requestPrincipals: values,
  notRequestPrincipals: values,
  namespaces: values,
  notNamespaces: values,
  serviceAccounts: values,
  notServiceAccounts: values,
  ipBlocks: values,
  notIpBlocks: values,
  remoteIpBlocks: values,
  notRemoteIpBlocks: values,
});

const operationSchema = z.strictObject({
  hosts: values,
  notHosts: values,
  ports: values,
  notPorts: values,
  methods: values,
  notMethods: values,
  paths: values,
  notPaths: values,
});

const conditionSchema = z.strictObject({ key: z.string(), values, notValues: values });

const ruleSchema = z.strictObject({
  from: z.array(z.strictObject({ source: sourceSchema.nullish() })).nullish(),
  to: z.array(z.strictObject({ operation: operationSchema.nullish() })).nullish(),
  when: z.array(conditionSchema).nullish(),
});

const targetRefSchema = z.strictObject({ group: z.string().nullish(), kind: z.string().min(1, 'is required'), name: z.string().min(1, 'is required'), namespace: z.string().nullish() });

export const authorizationPolicySpecSchema = z.strictObject({
  selector: z.strictObject({ matchLabels: z.record(z.string(), z.string()).nullish() }).nullish(),
  targetRef: targetRefSchema.nullish(),
  targetRefs: z.array(targetRefSchema).nullish(),
  rules: z.array(ruleSchema).nullish(),
  action: z
    .enum(AUTHZ_ACTIONS, { error: (issue) => `${JSON.stringify(issue.input)} is not an action; use one of ${AUTHZ_ACTIONS.join(', ')}` })
    .nullish(),
  provider: z.strictObject({ name: z.string().nullish() }).nullish(),
});

export type AuthorizationPolicySpec = z.infer<typeof authorizationPolicySpecSchema>;
export type AuthzRule = z.infer<typeof ruleSchema>;
export type AuthzSource = z.infer<typeof sourceSchema>;
export type AuthzOperation = z.infer<typeof operationSchema>;
export type AuthzCondition = z.infer<typeof conditionSchema>;
export type AuthzTargetRef = z.infer<typeof targetRefSchema>;

type Issue = { path: (string | number)[]; message: string };

/** The action of a policy: ALLOW when unset, as in Istio. */
export function actionOf(spec: AuthorizationPolicySpec): AuthzAction {
  return spec.action ?? 'ALLOW';
}

/** `targetRef` and `targetRefs` together, in order. */
export function targetRefsOf(spec: { targetRef?: AuthzTargetRef | null; targetRefs?: readonly AuthzTargetRef[] | null }): AuthzTargetRef[] {
  return [...(spec.targetRef ? [spec.targetRef] : []), ...(spec.targetRefs ?? [])];
}

/** Source fields that need an HTTP request (a JWT): meaningless on a TCP connection. */
export const HTTP_ONLY_SOURCE_FIELDS = ['requestPrincipals', 'notRequestPrincipals'] as const;
/** Operation fields that need an HTTP request. */
export const HTTP_ONLY_OPERATION_FIELDS = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

/**
 * The `when` keys Istio defines, as patterns: `[...]` stands for a bracketed name.
 * `http` marks the keys only an HTTP request has.
 */
export const CONDITION_KEYS: readonly { key: string; pattern: RegExp; http: boolean }[] = [
  { key: 'request.headers[<name>]', pattern: /^request\.headers\[[^\][]+\]$/, http: true },
  { key: 'source.ip', pattern: /^source\.ip$/, http: false },
  { key: 'remote.ip', pattern: /^remote\.ip$/, http: false },
  { key: 'source.namespace', pattern: /^source\.namespace$/, http: false },
  { key: 'source.principal', pattern: /^source\.principal$/, http: false },
  { key: 'source.serviceAccount', pattern: /^source\.serviceAccount$/, http: false },
  { key: 'request.auth.principal', pattern: /^request\.auth\.principal$/, http: true },
  { key: 'request.auth.audiences', pattern: /^request\.auth\.audiences$/, http: true },
  { key: 'request.auth.presenter', pattern: /^request\.auth\.presenter$/, http: true },
  { key: 'request.auth.claims[<claim>]...', pattern: /^request\.auth\.claims(\[[^\][]+\])+$/, http: true },
  { key: 'destination.ip', pattern: /^destination\.ip$/, http: false },
  { key: 'destination.port', pattern: /^destination\.port$/, http: false },
  { key: 'connection.sni', pattern: /^connection\.sni$/, http: false },
];

/** The condition key's entry, or undefined for a key Istio does not define. */
export function conditionKey(key: string): (typeof CONDITION_KEYS)[number] | undefined {
  return CONDITION_KEYS.find((k) => k.pattern.test(key));
}

/** The names in brackets after a key's prefix: `request.auth.claims[a][b]` -> ["a", "b"]. */
export function bracketNames(key: string): string[] {
  return [...key.matchAll(/\[([^\][]+)\]/g)].map((m) => m[1]!);
}

/** An HTTP-only field a rule uses, by its path in the rule (`to[0].operation.methods`). */
export interface HttpOnlyUse {
  path: (string | number)[];
  field: string;
}

/** The HTTP-only fields and `when` keys a rule uses. */
export function httpOnlyUses(rule: AuthzRule): HttpOnlyUse[] {
  const out: HttpOnlyUse[] = [];
  (rule.from ?? []).forEach((f, i) => {
    for (const k of HTTP_ONLY_SOURCE_FIELDS) if (f.source?.[k]?.length) out.push({ path: ['from', i, 'source', k], field: k });
  });
  (rule.to ?? []).forEach((t, i) => {
    for (const k of HTTP_ONLY_OPERATION_FIELDS) if (t.operation?.[k]?.length) out.push({ path: ['to', i, 'operation', k], field: k });
  });
  (rule.when ?? []).forEach((c, i) => {
    if (conditionKey(c.key)?.http) out.push({ path: ['when', i, 'key'], field: c.key });
  });
  return out;
}

/** Istio's wildcard rule: `*` alone, or one `*` at the start or the end. */
function wildcardProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value === '*') return undefined;
  const stars = value.split('*').length - 1;
  if (stars === 0) return undefined;
  if (stars === 1 && (value.startsWith('*') || value.endsWith('*'))) return undefined;
  return `"${value}": "*" is only allowed alone, as a prefix ("*.example.com") or as a suffix ("/api/*")`;
}

function pathProblem(path: string): string | undefined {
  // Istio's path templates ({*}, {**}) need Envoy's uri_template matcher, which meshd does not generate.
  if (path.includes('{') || path.includes('}')) return `"${path}": path templates ("{*}", "{**}") are not supported by meshd; use an exact path, a prefix ("/api/*") or a suffix ("*.json")`;
  return wildcardProblem(path);
}

/** An IP address or CIDR range as Istio takes them in ipBlocks and IP conditions. */
export function parseCidr(value: string): { address: string; prefixLen: number } | undefined {
  const slash = value.indexOf('/');
  const address = slash >= 0 ? value.slice(0, slash) : value;
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return { address, prefixLen: max };
  const len = value.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(len) || Number(len) > max) return undefined;
  return { address, prefixLen: Number(len) };
}

function ipProblem(value: string): string | undefined {
  return parseCidr(value) ? undefined : `"${value}" is not an IP address or CIDR range (such as "10.0.0.1" or "10.0.0.0/16")`;
}

function portProblem(value: string): string | undefined {
  return /^[0-9]{1,5}$/.test(value) && Number(value) <= 65535 ? undefined : `"${value}" is not a port number (0-65535, written as a string: "8080")`;
}

function principalProblem(value: string): string | undefined {
  if (value.startsWith('spiffe://')) return `"${value}": write principals without "spiffe://" ("cluster.local/ns/foo/sa/sleep"); Istio adds it`;
  if (/\s/.test(value)) return `"${value}" contains white space`;
  return wildcardProblem(value);
}

function namespaceProblem(value: string): string | undefined {
  const w = wildcardProblem(value);
  if (w) return w;
  const bare = value.replace('*', '');
  return bare === '' || /^[a-z0-9-]+$/.test(bare) ? undefined : `"${value}" is not a namespace name (lower case letters, digits and "-", with an optional "*" at one end)`;
}

function serviceAccountProblem(value: string): string | undefined {
  return /^([a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(value) ? undefined : `"${value}" is not a service account: "<name>" (in the policy's namespace) or "<namespace>/<name>", without wildcards`;
}

type Check = (value: string) => string | undefined;

const SOURCE_CHECKS: Record<keyof AuthzSource, Check> = {
  principals: principalProblem,
  notPrincipals: principalProblem,
  requestPrincipals: wildcardProblem,
  notRequestPrincipals: wildcardProblem,
  namespaces: namespaceProblem,
  notNamespaces: namespaceProblem,
  serviceAccounts: serviceAccountProblem,
  notServiceAccounts: serviceAccountProblem,
  ipBlocks: ipProblem,
  notIpBlocks: ipProblem,
  remoteIpBlocks: ipProblem,
  notRemoteIpBlocks: ipProblem,
};

const OPERATION_CHECKS: Record<keyof AuthzOperation, Check> = {
  hosts: wildcardProblem,
  notHosts: wildcardProblem,
  ports: portProblem,
  notPorts: portProblem,
  methods: wildcardProblem,
  notMethods: wildcardProblem,
  paths: pathProblem,
  notPaths: pathProblem,
};

function conditionCheck(key: string): Check {
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
    case 'destination.ip':
      return ipProblem;
    case 'destination.port':
      return portProblem;
    case 'source.namespace':
      return namespaceProblem;
    case 'source.principal':
      return principalProblem;
    case 'source.serviceAccount':
      return serviceAccountProblem;
    default:
      return wildcardProblem;
  }
}

function checkValues(out: Issue[], path: (string | number)[], list: readonly string[] | null | undefined, check: Check): void {
  if (list === null || list === undefined) return;
  if (list.length === 0) out.push({ path, message: 'is empty: list at least one value, or leave the field out' });
  list.forEach((v, i) => {
    const problem = check(v);
    if (problem) out.push({ path: [...path, i], message: problem });
  });
}

function fieldsSet(o: Record<string, unknown> | null | undefined): number {
  return Object.values(o ?? {}).filter((v) => v !== null && v !== undefined).length;
}

function ruleIssues(rule: AuthzRule, r: number): Issue[] {
  const out: Issue[] = [];
  (rule.from ?? []).forEach((f, i) => {
    const path = ['rules', r, 'from', i, 'source'];
    if (fieldsSet(f.source) === 0) out.push({ path, message: 'must set at least one field (principals, namespaces, ipBlocks...); to match any source leave `from` out' });
    for (const [k, check] of Object.entries(SOURCE_CHECKS)) checkValues(out, [...path, k], f.source?.[k as keyof AuthzSource], check);
  });
  (rule.to ?? []).forEach((t, i) => {
    const path = ['rules', r, 'to', i, 'operation'];
    if (fieldsSet(t.operation) === 0) out.push({ path, message: 'must set at least one field (methods, paths, ports, hosts...); to match any operation leave `to` out' });
    for (const [k, check] of Object.entries(OPERATION_CHECKS)) checkValues(out, [...path, k], t.operation?.[k as keyof AuthzOperation], check);
  });
  (rule.when ?? []).forEach((c, i) => {
    const path = ['rules', r, 'when', i];
    if (!conditionKey(c.key)) {
      out.push({ path: [...path, 'key'], message: `"${c.key}" is not a condition key; use one of ${CONDITION_KEYS.map((k) => k.key).join(', ')}` });
      return;
    }
    if (!c.values?.length && !c.notValues?.length) out.push({ path, message: 'must set values or notValues' });
    const check = conditionCheck(c.key);
    checkValues(out, [...path, 'values'], c.values, check);
    checkValues(out, [...path, 'notValues'], c.notValues, check);
  });
  return out;
}

/** Checks beyond the schema for an AuthorizationPolicy, as Istio's validation makes them. */
export function authorizationPolicyIssues(spec: AuthorizationPolicySpec): Issue[] {
  const out: Issue[] = selectorIssues(spec.selector?.matchLabels);
  const action = actionOf(spec);
  if (action === 'CUSTOM' && !spec.provider?.name) out.push({ path: ['provider', 'name'], message: 'is required with action CUSTOM: name an extension provider of the mesh config (extensionProviders)' });
  if (action !== 'CUSTOM' && spec.provider) out.push({ path: ['provider'], message: `is only allowed with action CUSTOM (this policy's action is ${action})` });
  if (spec.targetRef && spec.targetRefs) out.push({ path: ['targetRefs'], message: 'cannot be set together with targetRef; list every target in targetRefs' });
  if (spec.selector && (spec.targetRef || spec.targetRefs)) out.push({ path: ['selector'], message: 'cannot be set together with targetRef(s): a policy selects workloads by labels or targets a Gateway, not both' });
  const refsField = spec.targetRef ? 'targetRef' : 'targetRefs';
  targetRefsOf(spec).forEach((ref, i) => {
    const path: (string | number)[] = spec.targetRef ? [refsField] : [refsField, i];
    if (ref.kind !== 'Gateway' || (ref.group ?? '') !== GATEWAY_API_GROUP) {
      out.push({ path: [...path, 'kind'], message: `${ref.group ?? ''}/${ref.kind}: meshd takes targetRefs to Gateways only (group ${GATEWAY_API_GROUP}, kind Gateway); select sidecars with selector.matchLabels` });
    }
    if (ref.namespace) out.push({ path: [...path, 'namespace'], message: "must be left out: a policy targets objects in its own namespace" });
  });
  (spec.rules ?? []).forEach((rule, r) => out.push(...ruleIssues(rule, r)));
  return out;
}
