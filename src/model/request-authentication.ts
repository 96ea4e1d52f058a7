// Istio's RequestAuthentication (security.istio.io v1 and v1beta1): which JWTs a workload
// accepts, as a typed value with validation that names the field and what would be valid.
// Which policies apply to which proxy (the scope AuthorizationPolicy has) is decided in
// model/authorization-scope.ts; the jwt_authn filter they become in translate/request-authentication.ts.
import { z } from 'zod';
import { selectorIssues } from './security.js';
import { parseDurationMs } from '../util/duration.js';
import { GATEWAY_API_GROUP, targetRefsOf } from './authorization.js';

const targetRefSchema = z.strictObject({ group: z.string().nullish(), kind: z.string().min(1, 'is required'), name: z.string().min(1, 'is required'), namespace: z.string().nullish() });

const jwtHeaderSchema = z.strictObject({ name: z.string(), prefix: z.string().nullish() });

const claimToHeaderSchema = z.strictObject({ header: z.string(), claim: z.string() });

const jwtRuleSchema = z.strictObject({
  issuer: z.string().nullish(),
  audiences: z.array(z.string()).nullish(),
  jwksUri: z.string().nullish(),
  jwks: z.string().nullish(),
  fromHeaders: z.array(jwtHeaderSchema).nullish(),
  fromParams: z.array(z.string()).nullish(),
  fromCookies: z.array(z.string()).nullish(),
  outputPayloadToHeader: z.string().nullish(),
  forwardOriginalToken: z.boolean().nullish(),
  outputClaimToHeaders: z.array(claimToHeaderSchema).nullish(),
  // Istio's field for a JWKS fetch timeout (a duration such as "5s").
  timeout: z.string().nullish(),
});

export const requestAuthenticationSpecSchema = z.strictObject({
  selector: z.strictObject({ matchLabels: z.record(z.string(), z.string()).nullish() }).nullish(),
  targetRef: targetRefSchema.nullish(),
  targetRefs: z.array(targetRefSchema).nullish(),
  jwtRules: z.array(jwtRuleSchema).nullish(),
});

export type RequestAuthenticationSpec = z.infer<typeof requestAuthenticationSpecSchema>;
export type JwtRule = z.infer<typeof jwtRuleSchema>;

type Issue = { path: (string | number)[]; message: string };

/** The parts of a jwksUri meshd needs to fetch it: scheme, host, port and path. */
export interface JwksLocation {
  tls: boolean;
  host: string;
  port: number;
  /** The URI as written. */
  uri: string;
}

/** A jwksUri's location, or undefined when it is not an absolute http(s) URL with a host. */
export function jwksLocation(uri: string): JwksLocation | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return undefined;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '' || u.username !== '' || u.password !== '') return undefined;
  const tls = u.protocol === 'https:';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { tls, host, port: u.port ? Number(u.port) : tls ? 443 : 80, uri };
}

/** An HTTP header name as Envoy takes it (RFC 7230 token characters, lower case in HTTP/2). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a cookie or query parameter name may be: a token, no separators. */
const TOKEN_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function headerProblem(name: string): string | undefined {
  if (name === '') return 'must not be empty';
  if (name.startsWith(':')) return `"${name}": pseudo-headers cannot carry a token or a claim; name an ordinary header such as "x-jwt-payload"`;
  return HEADER_NAME.test(name) ? undefined : `"${name}" is not an HTTP header name (letters, digits and !#$%&'*+-.^_\`|~, no spaces or colons)`;
}

/** Why `jwks` is not a JSON Web Key Set (an object with a non-empty `keys` list of objects with `kty`), or undefined. */
function jwksProblem(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 'is not JSON: give the JSON Web Key Set as a JSON string, {"keys": [...]}';
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || !Array.isArray(keys)) return 'is not a JSON Web Key Set: expected an object {"keys": [...]}';
  if (keys.length === 0) return 'has no keys: list at least one JSON Web Key';
  const bad = keys.findIndex((k) => k === null || typeof k !== 'object' || typeof (k as { kty?: unknown }).kty !== 'string');
  if (bad >= 0) return `keys[${bad}] is not a JSON Web Key: every key is an object with "kty" ("RSA", "EC", "oct", "OKP")`;
  return undefined;
}

function durationProblem(value: string): string | undefined {
  const ms = parseDurationMs(value);
  return ms !== undefined && ms >= 1 ? undefined : `"${value}" is not a duration of at least 1ms, such as "5s" or "500ms"`;
}

function ruleIssues(rule: JwtRule, r: number): Issue[] {
  const out: Issue[] = [];
  const at = (...p: (string | number)[]): (string | number)[] => ['jwtRules', r, ...p];
  if (!rule.issuer) out.push({ path: at('issuer'), message: 'is required: the "iss" a token must carry, such as "https://accounts.example.com"' });
  else if (/\s/.test(rule.issuer)) out.push({ path: at('issuer'), message: `"${rule.issuer}" contains white space` });
  if (rule.jwksUri !== null && rule.jwksUri !== undefined && !jwksLocation(rule.jwksUri)) {
    out.push({ path: at('jwksUri'), message: `"${rule.jwksUri}" is not an http or https URL with a host, such as "https://example.com/.well-known/jwks.json"` });
  }
  if (rule.jwks !== null && rule.jwks !== undefined) {
    const problem = jwksProblem(rule.jwks);
    if (problem) out.push({ path: at('jwks'), message: problem });
  }
  if (rule.jwks && rule.jwksUri) out.push({ path: at('jwks'), message: 'cannot be set together with jwksUri: give the keys inline (jwks) or where to fetch them (jwksUri)' });
  if (!rule.jwks && !rule.jwksUri) out.push({ path: at('jwksUri'), message: 'is required (or jwks): meshd does not discover keys from the issuer (OpenID discovery); give the JWKS URL or the keys inline' });
  (rule.audiences ?? []).forEach((a, i) => {
    if (a === '') out.push({ path: at('audiences', i), message: 'must not be empty' });
  });
  (rule.fromHeaders ?? []).forEach((h, i) => {
    const problem = headerProblem(h.name);
    if (problem) out.push({ path: at('fromHeaders', i, 'name'), message: problem });
  });
  (rule.fromParams ?? []).forEach((p, i) => {
    if (!TOKEN_NAME.test(p)) out.push({ path: at('fromParams', i), message: `"${p}" is not a query parameter name (letters, digits, "-", "_", ".")` });
  });
  (rule.fromCookies ?? []).forEach((c, i) => {
    if (!TOKEN_NAME.test(c)) out.push({ path: at('fromCookies', i), message: `"${c}" is not a cookie name (letters, digits, "-", "_", ".")` });
  });
  if (rule.outputPayloadToHeader !== null && rule.outputPayloadToHeader !== undefined) {
    const problem = headerProblem(rule.outputPayloadToHeader);
    if (problem) out.push({ path: at('outputPayloadToHeader'), message: problem });
  }
  const outHeaders = new Map<string, number>();
  (rule.outputClaimToHeaders ?? []).forEach((c, i) => {
    const problem = headerProblem(c.header);
    if (problem) out.push({ path: at('outputClaimToHeaders', i, 'header'), message: problem });
    const lower = c.header.toLowerCase();
    if (outHeaders.has(lower)) out.push({ path: at('outputClaimToHeaders', i, 'header'), message: `"${c.header}" is already written by outputClaimToHeaders[${outHeaders.get(lower)}]` });
    outHeaders.set(lower, i);
    if (c.claim === '') out.push({ path: at('outputClaimToHeaders', i, 'claim'), message: 'is required: the claim whose value the header carries, such as "sub"' });
  });
  if (rule.timeout !== null && rule.timeout !== undefined) {
    const problem = durationProblem(rule.timeout);
    if (problem) out.push({ path: at('timeout'), message: problem });
  }
  return out;
}

/** Checks beyond the schema for a RequestAuthentication, as Istio's validation makes them. */
export function requestAuthenticationIssues(spec: RequestAuthenticationSpec): Issue[] {
  const out: Issue[] = selectorIssues(spec.selector?.matchLabels);
  if (spec.targetRef && spec.targetRefs) out.push({ path: ['targetRefs'], message: 'cannot be set together with targetRef; list every target in targetRefs' });
  if (spec.selector && (spec.targetRef || spec.targetRefs)) out.push({ path: ['selector'], message: 'cannot be set together with targetRef(s): a policy selects workloads by labels or targets a Gateway, not both' });
  targetRefsOf(spec).forEach((ref, i) => {
    const path: (string | number)[] = spec.targetRef ? ['targetRef'] : ['targetRefs', i];
    if (ref.kind !== 'Gateway' || (ref.group ?? '') !== GATEWAY_API_GROUP) {
      out.push({ path: [...path, 'kind'], message: `${ref.group ?? ''}/${ref.kind}: meshd takes targetRefs to Gateways only (group ${GATEWAY_API_GROUP}, kind Gateway); select sidecars with selector.matchLabels` });
    }
    if (ref.namespace) out.push({ path: [...path, 'namespace'], message: 'must be left out: a policy targets objects in its own namespace' });
  });
  const issuers = new Map<string, number>();
  (spec.jwtRules ?? []).forEach((rule, r) => {
    out.push(...ruleIssues(rule, r));
    if (!rule.issuer) return;
    const first = issuers.get(rule.issuer);
    if (first !== undefined) out.push({ path: ['jwtRules', r, 'issuer'], message: `"${rule.issuer}" is already the issuer of jwtRules[${first}]: one rule per issuer` });
    else issuers.set(rule.issuer, r);
  });
  return out;
}
