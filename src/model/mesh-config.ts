// Istio's mesh config (MeshConfig, as istiod reads it from ConfigMap `istio`, key `mesh`):
// the fields meshd acts on, validated, with Istio's defaults. Unknown fields are tolerated
// (istiod tolerates them too) and reported by name; a field of the wrong type or value refuses
// the whole document, naming the field, so the last good mesh config keeps serving.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDurationMs } from '../util/duration.js';
import { formatFieldPath } from './objects.js';

export type AccessLogEncoding = 'TEXT' | 'JSON';
export type OutboundTrafficMode = 'ALLOW_ANY' | 'REGISTRY_ONLY';

/** Istio's HTTPRetry, as `defaultHttpRetryPolicy` holds it. */
export interface MeshRetryPolicy {
  attempts?: number;
  retryOn?: string;
  /** Go-style duration text. */
  perTryTimeout?: string;
  retryRemoteLocalities?: boolean;
}

export interface MeshConfig {
  /** Where proxies write access logs (`/dev/stdout`...); empty: no access logs. */
  accessLogFile: string;
  accessLogEncoding: AccessLogEncoding;
  /** Envoy format string (TEXT) or a JSON object of fields (JSON); empty: Istio's default. */
  accessLogFormat: string;
  /** No listener-level access log (the one for connections no filter chain takes, flag NR). */
  disableEnvoyListenerLog: boolean;
  outboundTrafficPolicy: { mode: OutboundTrafficMode };
  /** The ProxyConfig injection and bootstraps start from. */
  defaultConfig: Record<string, unknown>;
  trustDomain: string;
  rootNamespace: string;
  enableAutoMtls: boolean;
  /** Unset: Istio's default retry policy. */
  defaultHttpRetryPolicy?: MeshRetryPolicy;
  /** Cluster connect timeout, Go-style duration text. */
  connectTimeout: string;
  /** How long listeners wait for a client's first bytes to detect its protocol; 0s: no limit (Istio's default). */
  protocolDetectionTimeout: string;
}

export function defaultMeshConfig(): MeshConfig {
  return {
    accessLogFile: '',
    accessLogEncoding: 'TEXT',
    accessLogFormat: '',
    disableEnvoyListenerLog: false,
    outboundTrafficPolicy: { mode: 'ALLOW_ANY' },
    defaultConfig: {},
    trustDomain: 'cluster.local',
    rootNamespace: 'istio-system',
    enableAutoMtls: true,
    connectTimeout: '10s',
    protocolDetectionTimeout: '0s',
  };
}

/** The fields meshd reads; the other fields of Istio's MeshConfig are accepted and not used. */
const SUPPORTED = new Set([
  'accessLogFile',
  'accessLogEncoding',
  'accessLogFormat',
  'disableEnvoyListenerLog',
  'outboundTrafficPolicy',
  'defaultConfig',
  'trustDomain',
  'rootNamespace',
  'enableAutoMtls',
  'defaultHttpRetryPolicy',
  'connectTimeout',
  'protocolDetectionTimeout',
]);

/** Istio's MeshConfig fields meshd does not act on (accepted quietly, listed by `ignoredFields`). */
const ISTIO_ONLY = new Set([
  'proxyListenPort', 'proxyInboundListenPort', 'proxyHttpPort', 'tcpKeepalive', 'ingressClass',
  'ingressService', 'ingressControllerMode', 'ingressSelector', 'enableTracing', 'enableEnvoyAccessLogService', 'inboundTrafficPolicy',
  'configSources', 'trustDomainAliases', 'caCertificates', 'defaultServiceExportTo', 'defaultVirtualServiceExportTo',
  'defaultDestinationRuleExportTo', 'localityLbSetting', 'dnsRefreshRate', 'h2UpgradePolicy', 'inboundClusterStatName',
  'outboundClusterStatName', 'certificates', 'serviceSettings', 'enablePrometheusMerge', 'verifyCertificateAtClient', 'ca',
  'extensionProviders', 'defaultProviders', 'discoverySelectors', 'pathNormalization', 'meshMTLS', 'tlsDefaults',
  'compliancePolicy', 'serviceScopeConfigs',
]);

const duration = (field: string, minMs: number) =>
  z.string().refine((s) => {
    const ms = parseDurationMs(s);
    return ms !== undefined && ms >= minMs;
  }, `expected a duration of at least ${minMs === 0 ? '0s' : `${minMs}ms`} (e.g. 10s, 500ms), for ${field}`);

function oneOf<T extends string>(values: readonly [T, ...T[]]) {
  return z.enum(values, { error: (iss) => `${JSON.stringify(iss.input)} is not one of ${values.join(', ')}` });
}

const stringMap = z.record(z.string(), z.string());

/** The ProxyConfig fields meshd reads (injection, bootstraps) are checked; others pass through to the proxy as they are. */
const proxyConfigSchema = z.looseObject({
  discoveryAddress: z.string().min(1).optional(),
  holdApplicationUntilProxyStarts: z.boolean().optional(),
  proxyMetadata: stringMap.optional(),
  concurrency: z.number().int().min(0).optional(),
  interceptionMode: oneOf(['REDIRECT', 'TPROXY', 'NONE']).optional(),
  proxyAdminPort: z.number().int().min(1).max(65535).optional(),
  statusPort: z.number().int().min(0).max(65535).optional(),
  drainDuration: duration('defaultConfig.drainDuration', 1).optional(),
  terminationDrainDuration: duration('defaultConfig.terminationDrainDuration', 0).optional(),
  meshId: z.string().optional(),
});

const schema = z.object({
  accessLogFile: z.string().optional(),
  accessLogEncoding: oneOf(['TEXT', 'JSON']).optional(),
  accessLogFormat: z.string().optional(),
  disableEnvoyListenerLog: z.boolean().optional(),
  outboundTrafficPolicy: z.object({ mode: oneOf(['ALLOW_ANY', 'REGISTRY_ONLY']).optional() }).optional(),
  defaultConfig: proxyConfigSchema.optional(),
  trustDomain: z.string().regex(/^[a-zA-Z0-9._-]+$/, 'expected a trust domain (letters, digits, ".", "_", "-")').optional(),
  rootNamespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a namespace name (a DNS-1123 label)').max(63).optional(),
  enableAutoMtls: z.boolean().optional(),
  defaultHttpRetryPolicy: z
    .object({
      attempts: z.number().int().min(0).optional(),
      retryOn: z.string().optional(),
      perTryTimeout: duration('defaultHttpRetryPolicy.perTryTimeout', 1).optional(),
      retryRemoteLocalities: z.boolean().optional(),
    })
    .optional(),
  // Istio requires at least 1ms.
  connectTimeout: duration('connectTimeout', 1).optional(),
  protocolDetectionTimeout: duration('protocolDetectionTimeout', 0).optional(),
});

export class MeshConfigError extends Error {
  constructor(
    /** Where the mesh config came from, e.g. `ConfigMap istio-system/istio, key mesh`. */
    readonly where: string,
    /** One line per problem: `field: what is wrong`. */
    readonly problems: readonly string[],
  ) {
    super(`mesh config (${where}): ${problems.join('; ')}`);
    this.name = 'MeshConfigError';
  }
}

export interface ParsedMeshConfig {
  config: MeshConfig;
  /** Top-level fields that are not Istio MeshConfig fields (typos, newer fields): tolerated. */
  unknownFields: string[];
  /** Istio MeshConfig fields meshd does not act on. */
  ignoredFields: string[];
}

/** YAML `field:` with no value means unset, as in istiod. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = withoutNulls(x);
  return out;
}

function describe(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object' && input !== null) return 'an object';
  return JSON.stringify(input);
}

/** The JSON access log format: an object of fields (Envoy's json_format). */
function jsonFormatProblem(format: string): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(format);
  } catch (err) {
    return `with accessLogEncoding JSON, expected a JSON object of log fields, but it is not JSON (${(err as Error).message})`;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return `with accessLogEncoding JSON, expected a JSON object of log fields, got ${describe(v)}`;
  if (Object.keys(v).length === 0) return 'with accessLogEncoding JSON, expected at least one log field (or an empty format for Istio\'s default fields)';
  return undefined;
}

/**
 * Reads a mesh config document (YAML or JSON) on top of Istio's defaults. Throws a
 * MeshConfigError naming every bad field: `outboundTrafficPolicy.mode: "ALLOWANY" is not
 * one of ALLOW_ANY, REGISTRY_ONLY`.
 */
export function parseMeshConfig(text: string, where: string): ParsedMeshConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new MeshConfigError(where, [`not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new MeshConfigError(where, [`expected a MeshConfig (an object of fields), got ${describe(doc)}`]);
  const raw = withoutNulls(doc) as Record<string, unknown>;
  const unknownFields = Object.keys(raw).filter((k) => !SUPPORTED.has(k) && !ISTIO_ONLY.has(k)).sort();
  const ignoredFields = Object.keys(raw).filter((k) => ISTIO_ONLY.has(k)).sort();
  const known = Object.fromEntries(Object.entries(raw).filter(([k]) => SUPPORTED.has(k)));
  const r = schema.safeParse(known, {
    error: (iss) => (iss.code === 'invalid_type' ? `expected ${iss.expected === 'record' ? 'a map' : iss.expected}, got ${describe(iss.input)}` : undefined),
  });
  if (!r.success) throw new MeshConfigError(where, r.error.issues.map((i) => `${formatFieldPath(i.path)}: ${i.message}`));
  const m = r.data;
  const base = defaultMeshConfig();
  const config: MeshConfig = {
    accessLogFile: m.accessLogFile ?? base.accessLogFile,
    accessLogEncoding: m.accessLogEncoding ?? base.accessLogEncoding,
    accessLogFormat: m.accessLogFormat ?? base.accessLogFormat,
    disableEnvoyListenerLog: m.disableEnvoyListenerLog ?? base.disableEnvoyListenerLog,
    outboundTrafficPolicy: { mode: m.outboundTrafficPolicy?.mode ?? base.outboundTrafficPolicy.mode },
    defaultConfig: (m.defaultConfig as Record<string, unknown> | undefined) ?? base.defaultConfig,
    trustDomain: m.trustDomain || base.trustDomain,
    rootNamespace: m.rootNamespace || base.rootNamespace,
    enableAutoMtls: m.enableAutoMtls ?? base.enableAutoMtls,
    connectTimeout: m.connectTimeout ?? base.connectTimeout,
    protocolDetectionTimeout: m.protocolDetectionTimeout ?? base.protocolDetectionTimeout,
  };
  if (m.defaultHttpRetryPolicy) config.defaultHttpRetryPolicy = m.defaultHttpRetryPolicy;
  if (config.accessLogEncoding === 'JSON' && config.accessLogFormat.trim() !== '') {
    const problem = jsonFormatProblem(config.accessLogFormat);
    if (problem) throw new MeshConfigError(where, [`accessLogFormat: ${problem}`]);
  }
  return { config, unknownFields, ignoredFields };
}
