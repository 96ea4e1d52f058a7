// What the Telemetry API (model/telemetry.ts) asks of one proxy: access loggers and the HTTP
// connection manager's tracing, for its client side (outbound listeners, and gateways) and its
// server side (inbound), as Istio merges the levels (root namespace < namespace < workload).
//
// Access logging, per side: the mesh's defaultProviders.accessLogging start enabled; each
// level's entries for that side then enable (or, `disabled`, remove) their providers, an entry
// without providers acting on its parent's (the last list named before it, else the default
// ones); the most specific list named overrides the others (only its providers stay in play); a
// provider keeps the CEL filter of the last entry that set one. With no entry for the side and no
// default providers, the mesh config's accessLogFile applies as before (access-log.ts).
//
// Tracing, per side: each field an entry sets (providers, randomSamplingPercentage,
// disableSpanReporting, customTags, useRequestIdForTraceSampling) overrides the less specific
// one; the provider falls back to defaultProviders.tracing, the sampling to the mesh config's
// defaultConfig.tracing.sampling, then 1%. No provider, or disableSpanReporting: no tracer (request
// ids are still generated and propagated).
//
// Results are memoized per config, mesh config and proxy (type, namespace, labels): proxies of
// one class (proxy-context.ts, whose key has all three) share them.
import type { MeshService, MeshServicePort, MeshSnapshot } from '../model/mesh.js';
import type { MeshConfig } from '../model/mesh-config.js';
import { labelsKey, type Labels } from '../model/labels.js';
import { telemetriesFor, type TelemetryCustomTag, type WorkloadMode } from '../model/telemetry.js';
import { collectorTarget, telemetryProviderNamed, type EnvoyFileAccessLogSettings, type OpenTelemetrySettings, type ZipkinSettings } from '../model/extension-providers.js';
import type { TelemetryObject } from '../model/objects.js';
import { accessLogs, ISTIO_JSON_LOG_FIELDS, ISTIO_TEXT_LOG_FORMAT, meshLogFormat } from './access-log.js';
import { rootNamespaceOf } from './istio-config.js';
import { outboundClusterName } from './names.js';
import { protoDurationOf } from '../util/duration.js';
import { anyOf, type Json } from './types.js';

export type Side = 'client' | 'server';

export interface SideTelemetry {
  /** For HTTP connection managers and TCP proxies; undefined: none. */
  logs: Json[] | undefined;
  /** For listeners (connections no filter chain took, NR); undefined: none. */
  listenerLogs: Json[] | undefined;
  /** The HTTP connection manager's `tracing`; undefined: none. */
  tracing: Json | undefined;
  /** Set when tracing should not use the request id for sampling decisions. */
  requestIdExtension: Json | undefined;
}

export interface ProxyTelemetry {
  client: SideTelemetry;
  server: SideTelemetry;
  /** The collectors' service ports tracing sends spans to: their outbound clusters must exist. */
  collectors: readonly { svc: MeshService; port: MeshServicePort }[];
}

export interface TelemetryProxy {
  type: string;
  namespace: string;
  labels: Labels;
}

const SIDE_MODE: Record<Side, WorkloadMode> = { client: 'CLIENT', server: 'SERVER' };

function applies(mode: WorkloadMode | null | undefined, side: Side): boolean {
  return !mode || mode === 'CLIENT_AND_SERVER' || mode === SIDE_MODE[side];
}

function defaultProviders(mesh: MeshConfig, field: 'accessLogging' | 'tracing'): string[] {
  const v = mesh.defaultProviders?.[field];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

// --- access logging ------------------------------------------------------------------------------

function fileFormat(mesh: MeshConfig, name: string, s: EnvoyFileAccessLogSettings): Json {
  const f = s.logFormat;
  if (!f) return name === 'envoy' ? meshLogFormat(mesh) : { text_format_source: { inline_string: ISTIO_TEXT_LOG_FORMAT } };
  if ('text' in f) return { text_format_source: { inline_string: f.text.endsWith('\n') ? f.text : `${f.text}\n` } };
  return { json_format: Object.keys(f.labels).length ? (f.labels as Json) : { ...ISTIO_JSON_LOG_FIELDS } };
}

function celFilter(expression: string): Json {
  return { extension_filter: { name: 'envoy.access_loggers.extension_filters.cel', typed_config: anyOf('envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter', { expression }) } };
}

const NR_FILTER: Json = { response_flag_filter: { flags: ['NR'] } };

function telemetryLogs(mesh: MeshConfig, levels: readonly TelemetryObject[], side: Side): { logs: Json[] | undefined; listenerLogs: Json[] | undefined } | undefined {
  const entries = levels.flatMap((t) => (t.spec.accessLogging ?? []).filter((e) => applies(e.match?.mode, side)));
  const defaults = defaultProviders(mesh, 'accessLogging');
  if (entries.length === 0 && defaults.length === 0) return undefined;
  // The most specific entry naming providers decides which are in play (its list overrides the parents').
  const named = entries.filter((e) => e.providers?.length);
  const inScope = new Set(named.length ? named[named.length - 1]!.providers!.map((p) => p.name) : defaults);
  const enabled = new Map<string, { filter: string | undefined }>(defaults.map((d) => [d, { filter: undefined }]));
  let parent = defaults;
  for (const e of entries) {
    const names = e.providers?.length ? e.providers.map((p) => p.name) : parent;
    parent = names;
    for (const name of names) {
      if (e.disabled) enabled.delete(name);
      else enabled.set(name, { filter: e.filter?.expression ?? enabled.get(name)?.filter });
    }
  }
  for (const name of [...enabled.keys()]) if (!inScope.has(name)) enabled.delete(name);
  const logs: Json[] = [];
  const listenerLogs: Json[] = [];
  for (const name of [...enabled.keys()].sort()) {
    const p = telemetryProviderNamed(mesh.extensionProviders, name);
    // Other kinds (and unknown names) are reported by validation (model/validation/telemetries.ts).
    if (p?.kind !== 'envoyFileAccessLog') continue;
    const settings = p.settings as EnvoyFileAccessLogSettings;
    const typed = { name: 'envoy.access_loggers.file', typed_config: anyOf('envoy.extensions.access_loggers.file.v3.FileAccessLog', { path: settings.path, log_format: fileFormat(mesh, name, settings) }) };
    const filter = enabled.get(name)!.filter;
    logs.push(filter ? { ...typed, filter: celFilter(filter) } : typed);
    listenerLogs.push({ ...typed, filter: filter ? { and_filter: { filters: [NR_FILTER, celFilter(filter)] } } : NR_FILTER });
  }
  return { logs: logs.length ? logs : undefined, listenerLogs: logs.length && !mesh.disableEnvoyListenerLog ? listenerLogs : undefined };
}

// --- tracing -------------------------------------------------------------------------------------

interface MergedTracing {
  provider: string | undefined;
  sampling: number | undefined;
  disableSpanReporting: boolean;
  customTags: Record<string, TelemetryCustomTag>;
  useRequestIdForTraceSampling: boolean | undefined;
}

function mergedTracing(mesh: MeshConfig, levels: readonly TelemetryObject[], side: Side): MergedTracing {
  const m: MergedTracing = { provider: defaultProviders(mesh, 'tracing')[0], sampling: undefined, disableSpanReporting: false, customTags: {}, useRequestIdForTraceSampling: undefined };
  for (const t of levels) {
    for (const e of t.spec.tracing ?? []) {
      if (!applies(e.match?.mode, side)) continue;
      if (e.providers?.length) m.provider = e.providers[0]!.name;
      if (e.randomSamplingPercentage != null) m.sampling = e.randomSamplingPercentage;
      if (e.disableSpanReporting != null) m.disableSpanReporting = e.disableSpanReporting;
      if (e.customTags) m.customTags = e.customTags;
      if (e.useRequestIdForTraceSampling != null) m.useRequestIdForTraceSampling = e.useRequestIdForTraceSampling;
    }
  }
  return m;
}

/** The mesh config's defaultConfig.tracing.sampling (a percentage), when set. */
function meshSampling(mesh: MeshConfig): number | undefined {
  const tracing = mesh.defaultConfig.tracing as { sampling?: unknown } | undefined;
  const s = tracing?.sampling;
  return typeof s === 'number' && s >= 0 && s <= 100 ? s : undefined;
}

function customTags(tags: Record<string, TelemetryCustomTag>): Json[] {
  return Object.keys(tags)
    .sort()
    .map((tag) => {
      const t = tags[tag]!;
      if (t.literal) return { tag, literal: { value: t.literal.value } };
      if (t.environment) return { tag, environment: { name: t.environment.name, ...(t.environment.defaultValue ? { default_value: t.environment.defaultValue } : {}) } };
      return { tag, request_header: { name: t.header!.name, ...(t.header!.defaultValue ? { default_value: t.header!.defaultValue } : {}) } };
    });
}

/** The service name spans carry: Istio's `<app>.<namespace>` (its service cluster). */
function serviceName(proxy: TelemetryProxy): string {
  const app = proxy.labels['service.istio.io/canonical-name'] ?? proxy.labels.app ?? proxy.labels['app.kubernetes.io/name'] ?? 'istio-proxy';
  return `${app}.${proxy.namespace}`;
}

function zipkinTracer(s: ZipkinSettings, cluster: string, hostname: string): Json {
  return {
    name: 'envoy.tracers.zipkin',
    typed_config: anyOf('envoy.config.trace.v3.ZipkinConfig', {
      collector_cluster: cluster,
      collector_endpoint: s.path,
      collector_endpoint_version: 'HTTP_JSON',
      collector_hostname: hostname,
      trace_id_128bit: !s.enable64bitTraceId,
      shared_span_context: false,
    }),
  };
}

function openTelemetryTracer(s: OpenTelemetrySettings, cluster: string, hostname: string, port: number, name: string): Json {
  const t = s.transport;
  const config: Json =
    t.kind === 'grpc'
      ? {
          grpc_service: {
            envoy_grpc: { cluster_name: cluster, authority: hostname },
            ...(t.timeout ? { timeout: protoDurationOf(t.timeout) } : {}),
            ...(t.initialMetadata.length ? { initial_metadata: t.initialMetadata.map((h) => ({ key: h.name, value: h.value })) } : {}),
          },
        }
      : {
          http_service: {
            http_uri: { uri: `http://${hostname}:${port}${t.path}`, cluster, timeout: protoDurationOf(t.timeout ?? '') ?? '1s' },
            ...(t.headers.length ? { request_headers_to_add: t.headers.map((h) => ({ header: { key: h.name, value: h.value } })) } : {}),
          },
        };
  return { name: 'envoy.tracers.opentelemetry', typed_config: anyOf('envoy.config.trace.v3.OpenTelemetryConfig', { ...config, service_name: name }) };
}

function telemetryTracing(snapshot: MeshSnapshot, proxy: TelemetryProxy, levels: readonly TelemetryObject[], side: Side, collectors: Map<string, { svc: MeshService; port: MeshServicePort }>): Pick<SideTelemetry, 'tracing' | 'requestIdExtension'> {
  const mesh = snapshot.meshConfig;
  const m = mergedTracing(mesh, levels, side);
  const requestIdExtension =
    m.useRequestIdForTraceSampling === false
      ? { typed_config: anyOf('envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig', { pack_trace_reason: true, use_request_id_for_trace_sampling: false }) }
      : undefined;
  if (!m.provider || m.disableSpanReporting) return { tracing: undefined, requestIdExtension };
  const p = telemetryProviderNamed(mesh.extensionProviders, m.provider);
  if (p?.kind !== 'zipkin' && p?.kind !== 'opentelemetry') return { tracing: undefined, requestIdExtension };
  const settings = p.settings as ZipkinSettings | OpenTelemetrySettings;
  const target = collectorTarget({ name: p.name, kind: p.kind, settings }, snapshot.serviceByHost);
  // A collector that is no mesh service is reported by validation; nothing to send spans to.
  if (!target.ok) return { tracing: undefined, requestIdExtension };
  const cluster = outboundClusterName(target.port.port, target.service.hostname);
  collectors.set(cluster, { svc: target.service, port: target.port });
  const provider = p.kind === 'zipkin' ? zipkinTracer(p.settings, cluster, target.service.hostname) : openTelemetryTracer(p.settings, cluster, target.service.hostname, target.port.port, serviceName(proxy));
  const tags = customTags(m.customTags);
  const tracing: Json = {
    provider,
    random_sampling: { value: m.sampling ?? meshSampling(mesh) ?? 1 },
    ...(tags.length ? { custom_tags: tags } : {}),
    ...(settings.maxTagLength !== undefined ? { max_path_tag_length: settings.maxTagLength } : {}),
  };
  return { tracing, requestIdExtension };
}

// --- per proxy -----------------------------------------------------------------------------------

function legacySide(mesh: MeshConfig): Pick<SideTelemetry, 'logs' | 'listenerLogs'> {
  const l = accessLogs(mesh);
  return { logs: l.filter, listenerLogs: l.listener };
}

function compute(snapshot: MeshSnapshot, proxy: TelemetryProxy): ProxyTelemetry {
  const mesh = snapshot.meshConfig;
  const all = snapshot.config.telemetries ?? [];
  const levels = all.length ? telemetriesFor(all, { namespace: proxy.namespace, labels: proxy.labels, type: proxy.type === 'router' ? 'router' : 'sidecar' }, rootNamespaceOf(snapshot.config)) : [];
  const collectors = new Map<string, { svc: MeshService; port: MeshServicePort }>();
  const side = (s: Side): SideTelemetry => ({ ...(telemetryLogs(mesh, levels, s) ?? legacySide(mesh)), ...telemetryTracing(snapshot, proxy, levels, s, collectors) });
  const client = side('client');
  const server = proxy.type === 'router' ? client : side('server');
  return { client, server, collectors: [...collectors.keys()].sort().map((k) => collectors.get(k)!) };
}

const memo = new WeakMap<MeshSnapshot['config'], WeakMap<MeshConfig, Map<string, ProxyTelemetry>>>();

/** What the Telemetry API (and the mesh config) ask of this proxy; computed once per proxy class. */
export function proxyTelemetry(snapshot: MeshSnapshot, proxy: TelemetryProxy): ProxyTelemetry {
  let byMesh = memo.get(snapshot.config);
  if (!byMesh) memo.set(snapshot.config, (byMesh = new WeakMap()));
  let byProxy = byMesh.get(snapshot.meshConfig);
  if (!byProxy) byMesh.set(snapshot.meshConfig, (byProxy = new Map()));
  const key = `${proxy.type}|${proxy.namespace}|${labelsKey(proxy.labels)}`;
  let out = byProxy.get(key);
  if (!out) byProxy.set(key, (out = compute(snapshot, proxy)));
  return out;
}

/** `access_log` for a listener body, or nothing. */
export function listenerLogsOf(side: SideTelemetry): Json {
  return side.listenerLogs ? { access_log: side.listenerLogs } : {};
}
