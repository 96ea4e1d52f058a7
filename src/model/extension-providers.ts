// Istio's mesh config `extensionProviders`: named external services that policies refer to.
// The two ext_authz kinds (envoyExtAuthzHttp, envoyExtAuthzGrpc), which AuthorizationPolicy
// CUSTOM uses, are validated field by field; the other kinds (tracing, access logging,
// metrics providers) are kept as written for later use and not translated. Also: which mesh
// service and port a provider's `service` (`[<namespace>/]<hostname>`) names.
import { z } from 'zod';
import { parseDurationMs } from '../util/duration.js';
import type { MeshService, MeshServicePort } from './service.js';

export const EXT_AUTHZ_KINDS = ['envoyExtAuthzHttp', 'envoyExtAuthzGrpc'] as const;
export type ExtAuthzKind = (typeof EXT_AUTHZ_KINDS)[number];

/** Istio's other provider kinds: accepted as written, not acted on yet. */
export const OTHER_PROVIDER_KINDS = [
  'zipkin',
  'lightstep',
  'datadog',
  'stackdriver',
  'opencensus',
  'skywalking',
  'opentelemetry',
  'prometheus',
  'envoyFileAccessLog',
  'envoyHttpAls',
  'envoyTcpAls',
  'envoyOtelAls',
  'sds',
] as const;
export type OtherProviderKind = (typeof OTHER_PROVIDER_KINDS)[number];
export type ProviderKind = ExtAuthzKind | OtherProviderKind;
const ALL_KINDS: readonly ProviderKind[] = [...EXT_AUTHZ_KINDS, ...OTHER_PROVIDER_KINDS];

/** includeRequestBodyInCheck: the request body sent to the authorizer. */
export interface ExtAuthzBody {
  maxRequestBytes: number;
  allowPartialMessage: boolean;
  packAsBytes: boolean;
}

interface ExtAuthzCommon {
  /** `[<namespace>/]<hostname>` of a mesh service. */
  service: string;
  port: number;
  /** Go-style duration text; unset: Istio's 600s. */
  timeout?: string;
  failOpen: boolean;
  /** The HTTP status returned when the authorizer cannot be reached (unset: Envoy's 403). */
  statusOnError?: number;
  /** Recompute the route after the authorizer changed headers. */
  clearRouteCache: boolean;
  includeRequestBodyInCheck?: ExtAuthzBody;
}

export interface ExtAuthzHttpSettings extends ExtAuthzCommon {
  pathPrefix?: string;
  includeRequestHeadersInCheck: string[];
  /** Headers added to the check request, by name. */
  includeAdditionalHeadersInCheck: Record<string, string>;
  headersToUpstreamOnAllow: string[];
  headersToDownstreamOnDeny: string[];
  headersToDownstreamOnAllow: string[];
}

export type ExtAuthzGrpcSettings = ExtAuthzCommon;

export type ExtensionProvider =
  | { name: string; kind: 'envoyExtAuthzHttp'; settings: ExtAuthzHttpSettings }
  | { name: string; kind: 'envoyExtAuthzGrpc'; settings: ExtAuthzGrpcSettings }
  | { name: string; kind: OtherProviderKind; settings: Record<string, unknown> };

export type ExtAuthzProvider = Extract<ExtensionProvider, { kind: ExtAuthzKind }>;

export function isExtAuthz(p: ExtensionProvider): p is ExtAuthzProvider {
  return p.kind === 'envoyExtAuthzHttp' || p.kind === 'envoyExtAuthzGrpc';
}

const HOST = /^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `[<namespace>/]<hostname>`, split. */
export function splitProviderService(service: string): { namespace?: string; hostname: string } {
  const slash = service.indexOf('/');
  return slash < 0 ? { hostname: service } : { namespace: service.slice(0, slash), hostname: service.slice(slash + 1) };
}

const serviceSchema = z.string().refine((s) => {
  const { namespace, hostname } = splitProviderService(s);
  return (namespace === undefined || NAMESPACE.test(namespace)) && HOST.test(hostname) && !hostname.startsWith('*');
}, 'expected "[<namespace>/]<hostname>" of a mesh service, such as "ext-authz.foo.svc.cluster.local" or "foo/ext-authz.foo.svc.cluster.local"');

// Proto3 JSON takes integers as numbers or decimal strings ("9000"), as istiod does.
function integer(what: string, min: number, max: number) {
  const message = `expected ${what} from ${min} to ${max}`;
  return z.preprocess((v) => (typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v), z.number({ error: message }).int(message).min(min, message).max(max, message));
}

const portSchema = integer('a port', 1, 65535);

const timeoutSchema = z.string().refine((s) => {
  const ms = parseDurationMs(s);
  return ms !== undefined && ms >= 1;
}, 'expected a duration of at least 1ms (e.g. 500ms, 2s)');

/** An HTTP status code as Istio takes it: a string ("503"); a number is accepted too. */
const statusSchema = integer('an HTTP status code (such as "503")', 100, 599);

const headerNames = z.array(z.string().min(1, 'must not be empty'));

const bodySchema = z.strictObject({
  maxRequestBytes: z.number().int().min(1, 'expected at least 1 byte (Envoy refuses 0)'),
  allowPartialMessage: z.boolean().optional(),
  packAsBytes: z.boolean().optional(),
});

const commonFields = {
  service: serviceSchema,
  port: portSchema,
  timeout: timeoutSchema.optional(),
  failOpen: z.boolean().optional(),
  clearRouteCache: z.boolean().optional(),
  statusOnError: statusSchema.optional(),
  includeRequestBodyInCheck: bodySchema.optional(),
};

const httpSchema = z.strictObject({
  ...commonFields,
  pathPrefix: z.string().startsWith('/', 'expected a path starting with "/"').optional(),
  includeRequestHeadersInCheck: headerNames.optional(),
  // Deprecated in Istio for includeRequestHeadersInCheck, still read when that is unset.
  includeHeadersInCheck: headerNames.optional(),
  includeAdditionalHeadersInCheck: z.record(z.string().min(1, 'header names must not be empty'), z.string()).optional(),
  headersToUpstreamOnAllow: headerNames.optional(),
  headersToDownstreamOnDeny: headerNames.optional(),
  headersToDownstreamOnAllow: headerNames.optional(),
});

const grpcSchema = z.strictObject(commonFields);

/** One entry of extensionProviders, as written: `name` and one provider kind. */
export const extensionProviderSchema = z
  .looseObject({
    name: z.string().min(1, 'is required: the name policies use to refer to this provider'),
    envoyExtAuthzHttp: httpSchema.optional(),
    envoyExtAuthzGrpc: grpcSchema.optional(),
    ...Object.fromEntries(OTHER_PROVIDER_KINDS.map((k) => [k, z.record(z.string(), z.unknown()).optional()])),
  })
  .superRefine((p, ctx) => {
    const kinds = ALL_KINDS.filter((k) => (p as Record<string, unknown>)[k] !== undefined);
    if (kinds.length === 0) ctx.addIssue({ code: 'custom', message: `sets no provider: set one of ${ALL_KINDS.join(', ')}` });
    if (kinds.length > 1) ctx.addIssue({ code: 'custom', message: `sets ${kinds.join(' and ')}: set exactly one provider per entry` });
  });

export const extensionProvidersSchema = z.array(extensionProviderSchema).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((p, i) => {
    if (seen.has(p.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `"${p.name}" names another provider too: names must be unique` });
    seen.add(p.name);
  });
});

type ParsedProvider = z.infer<typeof extensionProviderSchema>;

function common(s: z.infer<typeof grpcSchema>): ExtAuthzCommon {
  const out: ExtAuthzCommon = { service: s.service, port: s.port, failOpen: s.failOpen ?? false, clearRouteCache: s.clearRouteCache ?? false };
  if (s.timeout !== undefined) out.timeout = s.timeout;
  if (s.statusOnError !== undefined) out.statusOnError = s.statusOnError;
  const b = s.includeRequestBodyInCheck;
  if (b) out.includeRequestBodyInCheck = { maxRequestBytes: b.maxRequestBytes, allowPartialMessage: b.allowPartialMessage ?? false, packAsBytes: b.packAsBytes ?? false };
  return out;
}

/** The model of a parsed entry (the schema has checked it sets exactly one kind). */
export function toExtensionProvider(p: ParsedProvider): ExtensionProvider {
  const raw = p as Record<string, unknown>;
  if (p.envoyExtAuthzHttp) {
    const h = p.envoyExtAuthzHttp;
    return {
      name: p.name,
      kind: 'envoyExtAuthzHttp',
      settings: {
        ...common(h),
        ...(h.pathPrefix !== undefined ? { pathPrefix: h.pathPrefix } : {}),
        includeRequestHeadersInCheck: h.includeRequestHeadersInCheck?.length ? h.includeRequestHeadersInCheck : (h.includeHeadersInCheck ?? []),
        includeAdditionalHeadersInCheck: h.includeAdditionalHeadersInCheck ?? {},
        headersToUpstreamOnAllow: h.headersToUpstreamOnAllow ?? [],
        headersToDownstreamOnDeny: h.headersToDownstreamOnDeny ?? [],
        headersToDownstreamOnAllow: h.headersToDownstreamOnAllow ?? [],
      },
    };
  }
  if (p.envoyExtAuthzGrpc) return { name: p.name, kind: 'envoyExtAuthzGrpc', settings: common(p.envoyExtAuthzGrpc) };
  const kind = OTHER_PROVIDER_KINDS.find((k) => raw[k] !== undefined)!;
  return { name: p.name, kind, settings: raw[kind] as Record<string, unknown> };
}

/** Where an ext_authz provider's checks go: a mesh service port, or why there is none. */
export type ProviderTarget = { ok: true; service: MeshService; port: MeshServicePort } | { ok: false; reason: string };

/**
 * The mesh service and port of a provider's `service`: the service whose hostname it names
 * (in the namespace it names, if any) with that port, as Istio looks the cluster up.
 */
export function providerTarget(p: ExtAuthzProvider, serviceByHost: ReadonlyMap<string, MeshService>): ProviderTarget {
  const { namespace, hostname } = splitProviderService(p.settings.service);
  const svc = serviceByHost.get(hostname);
  const where = `extension provider "${p.name}" (${p.kind}): service "${p.settings.service}"`;
  if (!svc || (namespace !== undefined && svc.namespace !== namespace)) return { ok: false, reason: `${where} is no service of the mesh` };
  const port = svc.ports.find((x) => x.port === p.settings.port);
  if (!port) return { ok: false, reason: `${where} has no port ${p.settings.port} (it has ${svc.ports.map((x) => x.port).join(', ') || 'none'})` };
  return { ok: true, service: svc, port };
}
