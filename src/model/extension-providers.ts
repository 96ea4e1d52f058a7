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
  | TelemetryProvider
  | { name: string; kind: Exclude<OtherProviderKind, TelemetryProviderKind>; settings: Record<string, unknown> };

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


// --- Telemetry providers (Telemetry API: accessLogging, tracing, metrics) ----------------------

/** The kinds the Telemetry API acts on, validated field by field. */
export const TELEMETRY_PROVIDER_KINDS = ['envoyFileAccessLog', 'zipkin', 'opentelemetry', 'prometheus'] as const;
export type TelemetryProviderKind = (typeof TELEMETRY_PROVIDER_KINDS)[number];

/** envoyFileAccessLog: a file (or /dev/stdout), in a text format or JSON labels; unset: Istio's default text format. */
export interface EnvoyFileAccessLogSettings {
  path: string;
  logFormat?: { text: string } | { labels: Record<string, unknown> };
}

interface TracingCollector {
  /** `[<namespace>/]<hostname>` of the collector service. */
  service: string;
  port: number;
  /** Longest tag value (Envoy's max_path_tag_length); unset: Envoy's 256. */
  maxTagLength?: number;
}

export interface ZipkinSettings extends TracingCollector {
  /** Unset: /api/v2/spans. */
  path: string;
  enable64bitTraceId: boolean;
}

export interface OpenTelemetrySettings extends TracingCollector {
  /** OTLP over gRPC (the default when neither is set) or over HTTP. */
  transport:
    | { kind: 'grpc'; timeout?: string; initialMetadata: { name: string; value: string }[] }
    | { kind: 'http'; path: string; timeout?: string; headers: { name: string; value: string }[] };
}

export type TelemetryProvider =
  | { name: string; kind: 'envoyFileAccessLog'; settings: EnvoyFileAccessLogSettings }
  | { name: string; kind: 'zipkin'; settings: ZipkinSettings }
  | { name: string; kind: 'opentelemetry'; settings: OpenTelemetrySettings }
  | { name: string; kind: 'prometheus'; settings: Record<string, never> };

export function isTelemetryProvider(p: ExtensionProvider): p is TelemetryProvider {
  return (TELEMETRY_PROVIDER_KINDS as readonly string[]).includes(p.kind);
}

/** Istio's built-in providers, there unless the mesh config names its own the same: `envoy` logs to /dev/stdout in the mesh config's format. */
export const BUILTIN_TELEMETRY_PROVIDERS: readonly TelemetryProvider[] = [
  { name: 'envoy', kind: 'envoyFileAccessLog', settings: { path: '/dev/stdout' } },
  { name: 'prometheus', kind: 'prometheus', settings: {} },
];

/** The telemetry provider called `name`: the mesh config's, else a built-in one. */
export function telemetryProviderNamed(providers: readonly ExtensionProvider[], name: string): TelemetryProvider | ExtensionProvider | undefined {
  return providers.find((p) => p.name === name) ?? BUILTIN_TELEMETRY_PROVIDERS.find((p) => p.name === name);
}

const headerValues = z.array(z.strictObject({ name: z.string().min(1, 'must not be empty'), value: z.string() }));
const tagLengthSchema = integer('a tag length', 1, 1_000_000);

// Telemetry providers are loose: Istio's other spellings and newer fields pass, unused.
const fileAccessLogSchema = z.looseObject({
  path: z.string().min(1, 'is required: a file path such as /dev/stdout'),
  logFormat: z
    .strictObject({ text: z.string().optional(), labels: z.record(z.string(), z.unknown()).optional() })
    .refine((f) => (f.text === undefined) !== (f.labels === undefined), 'set exactly one of text and labels')
    .optional(),
});

const zipkinSchema = z.looseObject({
  service: serviceSchema,
  port: portSchema,
  maxTagLength: tagLengthSchema.optional(),
  path: z.string().startsWith('/', 'expected a path starting with "/"').optional(),
  enable64bitTraceId: z.boolean().optional(),
  // Istio fields meshd accepts and does not act on.
  headers: z.array(z.unknown()).optional(),
  traceContextOption: z.string().optional(),
  timeout: timeoutSchema.optional(),
});

const openTelemetrySchema = z
  .looseObject({
    service: serviceSchema,
    port: portSchema,
    maxTagLength: tagLengthSchema.optional(),
    grpc: z.strictObject({ timeout: timeoutSchema.optional(), initialMetadata: headerValues.optional() }).optional(),
    http: z.strictObject({ path: z.string().startsWith('/', 'expected a path starting with "/"'), timeout: timeoutSchema.optional(), headers: headerValues.optional() }).optional(),
    // Istio fields meshd accepts and does not act on (upstream Envoy has them, meshd does not set them yet).
    resourceDetectors: z.record(z.string(), z.unknown()).optional(),
    dynatraceSampler: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((o) => !(o.grpc && o.http), 'set at most one of grpc and http');

const TELEMETRY_SCHEMAS = { envoyFileAccessLog: fileAccessLogSchema, zipkin: zipkinSchema, opentelemetry: openTelemetrySchema, prometheus: z.looseObject({}) } as const;

function telemetryProviderFields(): Record<TelemetryProviderKind, z.ZodOptional<z.ZodType>> {
  return Object.fromEntries(TELEMETRY_PROVIDER_KINDS.map((k) => [k, TELEMETRY_SCHEMAS[k].optional()])) as unknown as Record<TelemetryProviderKind, z.ZodOptional<z.ZodType>>;
}

function collector(s: { service: string; port: number; maxTagLength?: number | undefined }): TracingCollector {
  return { service: s.service, port: s.port, ...(s.maxTagLength !== undefined ? { maxTagLength: s.maxTagLength } : {}) };
}

/** The model of a parsed telemetry provider entry, or undefined for other kinds. */
function toTelemetryProvider(name: string, raw: Record<string, unknown>): TelemetryProvider | undefined {
  if (raw.envoyFileAccessLog !== undefined) {
    const f = raw.envoyFileAccessLog as z.infer<typeof fileAccessLogSchema>;
    const settings: EnvoyFileAccessLogSettings = { path: f.path };
    if (f.logFormat?.text !== undefined) settings.logFormat = { text: f.logFormat.text };
    else if (f.logFormat?.labels !== undefined) settings.logFormat = { labels: f.logFormat.labels };
    return { name, kind: 'envoyFileAccessLog', settings };
  }
  if (raw.zipkin !== undefined) {
    const z0 = raw.zipkin as z.infer<typeof zipkinSchema>;
    return { name, kind: 'zipkin', settings: { ...collector(z0), path: z0.path ?? '/api/v2/spans', enable64bitTraceId: z0.enable64bitTraceId ?? false } };
  }
  if (raw.opentelemetry !== undefined) {
    const o = raw.opentelemetry as z.infer<typeof openTelemetrySchema>;
    const transport: OpenTelemetrySettings['transport'] = o.http
      ? { kind: 'http', path: o.http.path, ...(o.http.timeout !== undefined ? { timeout: o.http.timeout } : {}), headers: o.http.headers ?? [] }
      : { kind: 'grpc', ...(o.grpc?.timeout !== undefined ? { timeout: o.grpc.timeout } : {}), initialMetadata: o.grpc?.initialMetadata ?? [] };
    return { name, kind: 'opentelemetry', settings: { ...collector(o), transport } };
  }
  if (raw.prometheus !== undefined) return { name, kind: 'prometheus', settings: {} };
  return undefined;
}

/** Where a tracing provider's spans go: the mesh service and port its `service` names, or why there is none. */
export function collectorTarget(p: { name: string; kind: string; settings: TracingCollector }, serviceByHost: ReadonlyMap<string, MeshService>): ProviderTarget {
  return serviceTarget(p, serviceByHost);
}

/** One entry of extensionProviders, as written: `name` and one provider kind. */
export const extensionProviderSchema = z
  .looseObject({
    name: z.string().min(1, 'is required: the name policies use to refer to this provider'),
    envoyExtAuthzHttp: httpSchema.optional(),
    envoyExtAuthzGrpc: grpcSchema.optional(),
    ...Object.fromEntries(OTHER_PROVIDER_KINDS.map((k) => [k, z.record(z.string(), z.unknown()).optional()])),
    ...telemetryProviderFields(),
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
  const telemetry = toTelemetryProvider(p.name, raw);
  if (telemetry) return telemetry;
  const kind = OTHER_PROVIDER_KINDS.find((k) => raw[k] !== undefined)!;
  return { name: p.name, kind: kind as Exclude<OtherProviderKind, TelemetryProviderKind>, settings: raw[kind] as Record<string, unknown> };
}

/** Where an ext_authz provider's checks go: a mesh service port, or why there is none. */
export type ProviderTarget = { ok: true; service: MeshService; port: MeshServicePort } | { ok: false; reason: string };

/**
 * The mesh service and port of a provider's `service`: the service whose hostname it names
 * (in the namespace it names, if any) with that port, as Istio looks the cluster up.
 */
export function providerTarget(p: ExtAuthzProvider, serviceByHost: ReadonlyMap<string, MeshService>): ProviderTarget {
  return serviceTarget(p, serviceByHost);
}

function serviceTarget(p: { name: string; kind: string; settings: { service: string; port: number } }, serviceByHost: ReadonlyMap<string, MeshService>): ProviderTarget {
  const { namespace, hostname } = splitProviderService(p.settings.service);
  const svc = serviceByHost.get(hostname);
  const where = `extension provider "${p.name}" (${p.kind}): service "${p.settings.service}"`;
  if (!svc || (namespace !== undefined && svc.namespace !== namespace)) return { ok: false, reason: `${where} is no service of the mesh` };
  const port = svc.ports.find((x) => x.port === p.settings.port);
  if (!port) return { ok: false, reason: `${where} has no port ${p.settings.port} (it has ${svc.ports.map((x) => x.port).join(', ') || 'none'})` };
  return { ok: true, service: svc, port };
}
