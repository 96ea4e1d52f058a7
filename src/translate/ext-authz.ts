// An ext_authz extension provider (mesh config extensionProviders) as upstream Envoy's
// external authorization filters: `envoy.filters.http.ext_authz` (HTTP or gRPC service) in HTTP
// chains, `envoy.filters.network.ext_authz` (gRPC service only) in TCP ones. Each filter asks
// the authorizer only when the shadow RBAC filter in front of it (translate/authorization.ts)
// matched a CUSTOM policy's rule: that filter writes the matched policy's name into its
// dynamic metadata, and `filter_enabled_metadata` reads it. Pure.
import type { ExtAuthzHttpSettings, ExtAuthzProvider, ExtAuthzBody } from '../model/extension-providers.js';
import { protoDurationOf } from '../util/duration.js';
import { anyOf, type Json } from './types.js';

export const EXT_AUTHZ_HTTP_FILTER = 'envoy.filters.http.ext_authz';
export const EXT_AUTHZ_NETWORK_FILTER = 'envoy.filters.network.ext_authz';
/** Istio's shadow stat prefix of the RBAC filter that marks requests for the authorizer. */
export const EXT_AUTHZ_SHADOW_STAT_PREFIX = 'istio_ext_authz_';
/** Istio's prefix of the shadow policy names: the metadata matcher looks for it. */
export const EXT_AUTHZ_POLICY_PREFIX = 'istio-ext-authz';
/** Istio's timeout for a check when the provider sets none. */
const DEFAULT_TIMEOUT = '600s';

const HTTP_EXT_AUTHZ = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const NETWORK_EXT_AUTHZ = 'envoy.extensions.filters.network.ext_authz.v3.ExtAuthz';

/** The RBAC filter's dynamic metadata key for the shadow policy that matched (prefixed by its shadow stat prefix). */
function enabledWhenShadowMatched(rbacFilter: string): Json {
  return {
    filter: rbacFilter,
    path: [{ key: `${EXT_AUTHZ_SHADOW_STAT_PREFIX}shadow_effective_policy_id` }],
    value: { string_match: { prefix: EXT_AUTHZ_POLICY_PREFIX } },
  };
}

/** Header names as Istio matches them: case-insensitive, `x-*` a prefix, `*-id` a suffix, else exact. */
function headerList(names: readonly string[]): Json | undefined {
  if (names.length === 0) return undefined;
  return {
    patterns: names.map((n) => {
      if (n.startsWith('*')) return { suffix: n.slice(1), ignore_case: true };
      if (n.endsWith('*')) return { prefix: n.slice(0, -1), ignore_case: true };
      return { exact: n, ignore_case: true };
    }),
  };
}

function timeoutOf(p: ExtAuthzProvider): string {
  return (p.settings.timeout !== undefined ? protoDurationOf(p.settings.timeout) : undefined) ?? DEFAULT_TIMEOUT;
}

function withRequestBody(b: ExtAuthzBody | undefined): Json {
  return b ? { with_request_body: { max_request_bytes: b.maxRequestBytes, allow_partial_message: b.allowPartialMessage, pack_as_bytes: b.packAsBytes } } : {};
}

function httpService(s: ExtAuthzHttpSettings, cluster: string, hostname: string, timeout: string): Json {
  const headersToAdd = Object.keys(s.includeAdditionalHeadersInCheck)
    .sort()
    .map((key) => ({ key, value: s.includeAdditionalHeadersInCheck[key]! }));
  const upstream = headerList(s.headersToUpstreamOnAllow);
  const onDeny = headerList(s.headersToDownstreamOnDeny);
  const onAllow = headerList(s.headersToDownstreamOnAllow);
  const response = {
    ...(upstream ? { allowed_upstream_headers: upstream } : {}),
    ...(onDeny ? { allowed_client_headers: onDeny } : {}),
    ...(onAllow ? { allowed_client_headers_on_success: onAllow } : {}),
  };
  return {
    // Envoy requires a URI; the cluster decides where the check goes.
    server_uri: { uri: `http://${hostname}`, cluster, timeout },
    ...(s.pathPrefix !== undefined ? { path_prefix: s.pathPrefix } : {}),
    ...(headersToAdd.length ? { authorization_request: { headers_to_add: headersToAdd } } : {}),
    ...(Object.keys(response).length ? { authorization_response: response } : {}),
  };
}

/** The call's :authority is the service's hostname (Envoy would send the cluster name, which has "|" in it: servers refuse it). */
function grpcService(cluster: string, hostname: string, timeout: string): Json {
  return { envoy_grpc: { cluster_name: cluster, authority: hostname }, timeout };
}

/** The HTTP ext_authz filter asking `provider` at `cluster` (the outbound cluster of its service `hostname`). */
export function httpExtAuthzFilter(provider: ExtAuthzProvider, cluster: string, hostname: string, rbacFilter: string): Json {
  const timeout = timeoutOf(provider);
  const s = provider.settings;
  const service = provider.kind === 'envoyExtAuthzHttp' ? { http_service: httpService(provider.settings, cluster, hostname, timeout) } : { grpc_service: grpcService(cluster, hostname, timeout) };
  const allowed = provider.kind === 'envoyExtAuthzHttp' ? headerList(provider.settings.includeRequestHeadersInCheck) : undefined;
  return {
    name: EXT_AUTHZ_HTTP_FILTER,
    typed_config: anyOf(HTTP_EXT_AUTHZ, {
      ...service,
      transport_api_version: 'V3',
      failure_mode_allow: s.failOpen,
      ...(s.clearRouteCache ? { clear_route_cache: true } : {}),
      ...(s.statusOnError !== undefined ? { status_on_error: { code: s.statusOnError } } : {}),
      ...withRequestBody(s.includeRequestBodyInCheck),
      ...(allowed ? { allowed_headers: allowed } : {}),
      filter_enabled_metadata: enabledWhenShadowMatched(rbacFilter),
    }),
  };
}

/** The network ext_authz filter (gRPC providers only: Envoy's TCP check is a gRPC call). */
export function networkExtAuthzFilter(provider: ExtAuthzProvider, cluster: string, hostname: string, rbacFilter: string, statPrefix: string): Json {
  return {
    name: EXT_AUTHZ_NETWORK_FILTER,
    typed_config: anyOf(NETWORK_EXT_AUTHZ, {
      stat_prefix: statPrefix,
      grpc_service: grpcService(cluster, hostname, timeoutOf(provider)),
      transport_api_version: 'V3',
      failure_mode_allow: provider.settings.failOpen,
      filter_enabled_metadata: enabledWhenShadowMatched(rbacFilter),
    }),
  };
}
