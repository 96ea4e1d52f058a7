// VirtualService HTTP routes as Envoy routes: matches, weighted destinations,
// redirects, direct responses, rewrites, timeouts, retries, faults, mirrors, CORS and
// header operations. One Envoy route per match condition, in the VirtualService's order.
import type { MeshSnapshot } from '../model/mesh.js';
import type { HttpRoute, StringMatch } from '../model/istio.js';
import type { VirtualServiceObject } from '../model/objects.js';
import { selectorMatches, type Labels } from '../model/labels.js';
import { parseDurationMs, protoDurationOf } from '../util/duration.js';
import { destinationRuleFor, resolveGateway, resolveHost } from './istio-config.js';
import { istioConfigPath, outboundClusterName } from './names.js';
import { effectivePolicy, hashPolicy } from './traffic-policy.js';
import { anyOf, type Json } from './types.js';
import type { MeshConfig, MeshRetryPolicy } from '../model/mesh-config.js';

export interface RouteContext {
  snapshot: MeshSnapshot;
  /** The gateway being built ("mesh" for sidecars, or "ns/name"). */
  gateway: string;
  /** The port of the listener this route configuration serves. */
  port: number;
  clientNamespace: string;
  clientLabels: Labels;
}

/** Istio's default retry policy for mesh traffic. */
export function defaultRetryPolicy(): Json {
  return {
    retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
    num_retries: 2,
    retriable_status_codes: [503],
    retry_host_predicate: [
      { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: anyOf('envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate', {}) },
    ],
    host_selection_retry_max_attempts: '5',
  };
}

/** `retryOn` as Istio reads it: HTTP status codes among the conditions become retriable_status_codes. */
function parseRetryOn(retryOn: string): { retry_on: string; retriable_status_codes?: number[] } {
  const codes: number[] = [];
  const conditions: string[] = [];
  for (const part of retryOn.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    if (/^\d{3}$/.test(part) && Number(part) >= 100 && Number(part) <= 599) codes.push(Number(part));
    else conditions.push(part);
  }
  if (codes.length && !conditions.includes('retriable-status-codes')) conditions.push('retriable-status-codes');
  return { retry_on: conditions.join(','), ...(codes.length ? { retriable_status_codes: codes } : {}) };
}

/**
 * An Istio HTTPRetry as Envoy's retry policy, as Istio converts it: none given, Istio's
 * default; `attempts` 0, no retries (undefined); otherwise the default with its fields.
 */
export function retryPolicyOf(r: MeshRetryPolicy | undefined): Json | undefined {
  if (!r) return defaultRetryPolicy();
  if ((r.attempts ?? 0) <= 0) return undefined;
  const out: Json = { ...defaultRetryPolicy(), num_retries: r.attempts };
  if (r.retryOn) {
    const parsed = parseRetryOn(r.retryOn);
    out.retry_on = parsed.retry_on;
    if (parsed.retriable_status_codes) out.retriable_status_codes = parsed.retriable_status_codes;
    else delete out.retriable_status_codes;
  }
  const perTry = protoDurationOf(r.perTryTimeout);
  if (perTry) out.per_try_timeout = perTry;
  return out;
}

/** The retry policy of routes without one of their own: the mesh config's defaultHttpRetryPolicy, else Istio's default. */
export function meshRetryPolicy(mesh: MeshConfig): Json | undefined {
  return retryPolicyOf(mesh.defaultHttpRetryPolicy);
}


function stringMatcher(m: StringMatch, ignoreCase = false): Json {
  const base = m.exact !== undefined ? { exact: m.exact } : m.prefix !== undefined ? { prefix: m.prefix } : { safe_regex: { regex: m.regex ?? '' } };
  return ignoreCase && m.regex === undefined ? { ...base, ignore_case: true } : base;
}

/** An empty prefix or regex matches any value: the header (or parameter) just has to be present. */
function matchesAnything(m: StringMatch): boolean {
  return m.prefix === '' || m.regex === '' || m.regex === '.*';
}

function headerMatcher(name: string, m: StringMatch, invert = false): Json {
  if (matchesAnything(m)) return { name, present_match: true, ...(invert ? { invert_match: true } : {}) };
  return { name, string_match: stringMatcher(m), ...(invert ? { invert_match: true } : {}) };
}

type HttpMatch = NonNullable<HttpRoute['match']>[number];

function envoyMatch(m: HttpMatch | undefined): Json {
  const match: Json = {};
  const uri = m?.uri;
  if (!uri) match.prefix = '/';
  else if (uri.exact !== undefined) match.path = uri.exact;
  else if (uri.prefix !== undefined) match.prefix = uri.prefix;
  else match.safe_regex = { regex: uri.regex || '.*' };
  if (m?.ignoreUriCase) match.case_sensitive = false;
  const headers: Json[] = [];
  if (m?.authority) headers.push(headerMatcher(':authority', m.authority));
  if (m?.method) headers.push(headerMatcher(':method', m.method));
  if (m?.scheme) headers.push(headerMatcher(':scheme', m.scheme));
  for (const [name, sm] of Object.entries(m?.headers ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) headers.push(headerMatcher(name.toLowerCase(), sm));
  for (const [name, sm] of Object.entries(m?.withoutHeaders ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const isAny = sm.exact === undefined && sm.prefix === undefined && sm.regex === undefined;
    headers.push(isAny ? { name: name.toLowerCase(), present_match: true, invert_match: true } : headerMatcher(name.toLowerCase(), sm, true));
  }
  if (headers.length) match.headers = headers;
  const query = Object.entries(m?.queryParams ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  if (query.length) match.query_parameters = query.map(([name, sm]) => (matchesAnything(sm) ? { name, present_match: true } : { name, string_match: stringMatcher(sm) }));
  return match;
}

/** The conditions HTTP, TCP and TLS matches share: listener port, gateway and client. */
export interface PlacementMatch {
  port?: number | undefined;
  gateways?: readonly string[] | undefined;
  sourceLabels?: Readonly<Record<string, string>> | undefined;
  sourceNamespace?: string | undefined;
}

/** Whether a match condition applies to this listener, gateway and client. */
export function matchApplies(m: PlacementMatch, rc: RouteContext, vsNamespace: string): boolean {
  if (m.port !== undefined && m.port !== rc.port) return false;
  if (m.gateways?.length && !m.gateways.some((g) => resolveGateway(g, vsNamespace) === rc.gateway)) return false;
  if (m.sourceLabels && rc.gateway === 'mesh' && !selectorMatches(m.sourceLabels, rc.clientLabels)) return false;
  if (m.sourceNamespace && m.sourceNamespace !== rc.clientNamespace) return false;
  return true;
}

/** The cluster a VirtualService destination points at. */
export function destinationCluster(rc: RouteContext, dest: { host: string; subset?: string | undefined; port?: { number: number } | undefined }, vsNamespace: string): { cluster: string; host: string } {
  const host = resolveHost(dest.host, vsNamespace, rc.snapshot.domain);
  const svc = rc.snapshot.serviceByHost.get(host);
  let port = dest.port?.number;
  if (port === undefined) {
    if (svc && svc.ports.length === 1) port = svc.ports[0]!.port;
    else if (svc?.ports.some((p) => p.port === rc.port)) port = rc.port;
    else port = svc?.ports[0]?.port ?? rc.port;
  }
  return { cluster: outboundClusterName(port, host, dest.subset ?? ''), host };
}

function headerValues(set: Record<string, string> | undefined, append: 'OVERWRITE_IF_EXISTS_OR_ADD' | 'APPEND_IF_EXISTS_OR_ADD'): Json[] {
  return Object.entries(set ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, value]) => ({ header: { key, value }, append_action: append }));
}

type HeaderOps = NonNullable<HttpRoute['headers']>;

function headerOperations(h: HeaderOps | undefined): Json {
  const out: Json = {};
  const reqAdd = [...headerValues(h?.request?.set, 'OVERWRITE_IF_EXISTS_OR_ADD'), ...headerValues(h?.request?.add, 'APPEND_IF_EXISTS_OR_ADD')];
  const respAdd = [...headerValues(h?.response?.set, 'OVERWRITE_IF_EXISTS_OR_ADD'), ...headerValues(h?.response?.add, 'APPEND_IF_EXISTS_OR_ADD')];
  if (reqAdd.length) out.request_headers_to_add = reqAdd;
  if (h?.request?.remove?.length) out.request_headers_to_remove = h.request.remove;
  if (respAdd.length) out.response_headers_to_add = respAdd;
  if (h?.response?.remove?.length) out.response_headers_to_remove = h.response.remove;
  return out;
}

const REDIRECT_CODES: Record<number, string> = { 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };

const GRPC_CODES: Record<string, number> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

function fraction(percent: number | undefined): Json {
  return { numerator: Math.round((percent ?? 100) * 10_000), denominator: 'MILLION' };
}

function faultConfig(f: NonNullable<HttpRoute['fault']>): Json | undefined {
  const fault: Json = {};
  if (f.delay) {
    const fixed = protoDurationOf(f.delay.fixedDelay);
    if (fixed) fault.delay = { fixed_delay: fixed, percentage: fraction(f.delay.percentage?.value ?? f.delay.percent) };
  }
  if (f.abort) {
    const pct = fraction(f.abort.percentage?.value);
    if (f.abort.httpStatus !== undefined) fault.abort = { http_status: f.abort.httpStatus, percentage: pct };
    else if (f.abort.grpcStatus !== undefined) fault.abort = { grpc_status: GRPC_CODES[f.abort.grpcStatus] ?? (Number(f.abort.grpcStatus) || 2), percentage: pct };
  }
  return Object.keys(fault).length ? anyOf('envoy.extensions.filters.http.fault.v3.HTTPFault', fault) : undefined;
}

function corsConfig(c: NonNullable<HttpRoute['corsPolicy']>): Json {
  const origins = [...(c.allowOrigins ?? []).map((m) => (matchesAnything(m) ? { safe_regex: { regex: '.*' } } : stringMatcher(m))), ...(c.allowOrigin ?? []).map((o) => ({ exact: o }))];
  const maxAge = parseDurationMs(c.maxAge ?? '');
  return anyOf('envoy.extensions.filters.http.cors.v3.CorsPolicy', {
    ...(origins.length ? { allow_origin_string_match: origins } : {}),
    ...(c.allowMethods?.length ? { allow_methods: c.allowMethods.join(',') } : {}),
    ...(c.allowHeaders?.length ? { allow_headers: c.allowHeaders.join(',') } : {}),
    ...(c.exposeHeaders?.length ? { expose_headers: c.exposeHeaders.join(',') } : {}),
    ...(maxAge !== undefined ? { max_age: String(Math.round(maxAge / 1000)) } : {}),
    ...(c.allowCredentials !== undefined ? { allow_credentials: c.allowCredentials } : {}),
  });
}

function routeAction(r: HttpRoute, rc: RouteContext, vs: VirtualServiceObject, firstMatch: HttpMatch | undefined): Json {
  const dests = (r.route ?? []).filter((d) => d.weight === undefined || d.weight > 0);
  const resolved = dests.map((d) => ({ d, ...destinationCluster(rc, d.destination, vs.metadata.namespace) }));
  const action: Json = {};
  if (resolved.length === 1) {
    action.cluster = resolved[0]!.cluster;
  } else {
    action.weighted_clusters = {
      clusters: resolved.map(({ d, cluster }) => ({ name: cluster, weight: d.weight ?? Math.floor(100 / resolved.length), ...headerOperations(d.headers) })),
    };
  }
  action.timeout = protoDurationOf(r.timeout) ?? '0s';
  // Without `retries` the route keeps its virtual host's policy (the mesh default, see
  // meshRetryPolicy); a route's own policy replaces that one entirely.
  if (r.retries) action.retry_policy = retryPolicyOf(r.retries) ?? { num_retries: 0 };
  if (r.rewrite?.uri !== undefined) {
    if (firstMatch?.uri?.regex !== undefined) action.regex_rewrite = { pattern: { regex: firstMatch.uri.regex }, substitution: r.rewrite.uri };
    else action.prefix_rewrite = r.rewrite.uri;
  }
  if (r.rewrite?.uriRegexRewrite) action.regex_rewrite = { pattern: { regex: r.rewrite.uriRegexRewrite.match }, substitution: r.rewrite.uriRegexRewrite.rewrite };
  if (r.rewrite?.authority) action.host_rewrite_literal = r.rewrite.authority;
  const mirrors = [
    ...(r.mirror ? [{ destination: r.mirror, percentage: r.mirrorPercentage?.value ?? r.mirrorPercent }] : []),
    ...(r.mirrors ?? []).map((m) => ({ destination: m.destination, percentage: m.percentage?.value })),
  ];
  if (mirrors.length) {
    action.request_mirror_policies = mirrors.map((m) => ({ cluster: destinationCluster(rc, m.destination, vs.metadata.namespace).cluster, runtime_fraction: { default_value: fraction(m.percentage) } }));
  }
  const first = resolved[0];
  if (first) {
    const svc = rc.snapshot.serviceByHost.get(first.host);
    const dr = destinationRuleFor(rc.snapshot.config, first.host, rc.clientNamespace, svc?.namespace ?? vs.metadata.namespace, rc.snapshot.domain);
    const hp = hashPolicy(effectivePolicy(dr?.spec, rc.port, first.d.destination.subset));
    if (hp) action.hash_policy = hp;
  }
  // With max_stream_duration present Envoy takes the stream's limit from it, not from
  // `timeout`: carry the same value, also as the cap on a client's grpc-timeout (as Istio does).
  action.max_stream_duration = { max_stream_duration: action.timeout, grpc_timeout_header_max: action.timeout };
  return action;
}

function redirectAction(r: NonNullable<HttpRoute['redirect']>): Json {
  return {
    ...(r.uri !== undefined ? { path_redirect: r.uri } : {}),
    ...(r.authority !== undefined ? { host_redirect: r.authority } : {}),
    ...(r.port !== undefined ? { port_redirect: r.port } : {}),
    ...(r.scheme !== undefined ? { scheme_redirect: r.scheme } : {}),
    response_code: REDIRECT_CODES[r.redirectCode ?? 301] ?? 'MOVED_PERMANENTLY',
  };
}

/**
 * Everything `virtualServiceRoutes` reads beyond the VirtualService and the route context's
 * fixed fields: the service and the DestinationRule behind each destination (and mirror).
 * Routes built from equal lists are equal (translate/memo.ts reuses them).
 */
export function virtualServiceRouteInputs(vs: VirtualServiceObject, rc: RouteContext): unknown[] {
  const out: unknown[] = [rc.snapshot.domain, rc.snapshot.meshConfig];
  const add = (host: string): void => {
    const resolved = resolveHost(host, vs.metadata.namespace, rc.snapshot.domain);
    const svc = rc.snapshot.serviceByHost.get(resolved);
    out.push(resolved, svc, destinationRuleFor(rc.snapshot.config, resolved, rc.clientNamespace, svc?.namespace ?? vs.metadata.namespace, rc.snapshot.domain));
  };
  for (const r of vs.spec.http ?? []) {
    for (const d of r.route ?? []) add(d.destination.host);
    if (r.mirror) add(r.mirror.host);
    for (const m of r.mirrors ?? []) add(m.destination.host);
  }
  return out;
}

/** Whether a VirtualService's HTTP routes depend on the client's labels (a `sourceLabels` match). */
export function readsClientLabels(vs: VirtualServiceObject): boolean {
  return (vs.spec.http ?? []).some((r) => (r.match ?? []).some((m) => m.sourceLabels !== undefined));
}

/** The Envoy routes of one VirtualService for one listener port and client. */
export function virtualServiceRoutes(vs: VirtualServiceObject, rc: RouteContext): Json[] {
  const out: Json[] = [];
  const metadata = { filter_metadata: { istio: { config: istioConfigPath('virtual-service', vs.metadata) } } };
  for (const [i, r] of (vs.spec.http ?? []).entries()) {
    const matches = r.match?.length ? r.match.filter((m) => matchApplies(m, rc, vs.metadata.namespace)) : [undefined];
    if (matches.length === 0) continue;
    const perFilter: Json = {};
    if (r.fault) {
      const f = faultConfig(r.fault);
      if (f) perFilter['envoy.filters.http.fault'] = f;
    }
    if (r.corsPolicy) perFilter['envoy.filters.http.cors'] = corsConfig(r.corsPolicy);
    for (const m of matches) {
      const route: Json = { name: r.name ?? `${vs.metadata.namespace}/${vs.metadata.name}.${i}`, match: envoyMatch(m) };
      if (r.redirect) route.redirect = redirectAction(r.redirect);
      else if (r.directResponse) {
        route.direct_response = {
          status: r.directResponse.status,
          ...(r.directResponse.body?.string !== undefined ? { body: { inline_string: r.directResponse.body.string } } : r.directResponse.body?.bytes !== undefined ? { body: { inline_bytes: r.directResponse.body.bytes } } : {}),
        };
      } else route.route = routeAction(r, rc, vs, m);
      Object.assign(route, headerOperations(r.headers));
      if (Object.keys(perFilter).length) route.typed_per_filter_config = perFilter;
      route.metadata = metadata;
      out.push(route);
    }
  }
  return out;
}
