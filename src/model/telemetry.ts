// Istio's Telemetry (telemetry.istio.io v1, v1alpha1): access logging, tracing and metrics
// settings at three levels: the root namespace (mesh-wide, no selector), a namespace (no
// selector) and workloads (`selector.matchLabels`, or `targetRef(s)` to a Gateway for the
// gateway's proxies). Validation names the field; which Telemetries apply to a proxy, most
// specific last, is decided here too (a pure function of the config), for translation.
import { z } from 'zod';
import { selectorMatches, type Labels } from './labels.js';
import { olderFirst } from './creation-order.js';

export const ISTIO_TELEMETRY_API_VERSIONS = ['telemetry.istio.io/v1', 'telemetry.istio.io/v1alpha1'] as const;

const MODES = ['CLIENT_AND_SERVER', 'CLIENT', 'SERVER'] as const;
export type WorkloadMode = (typeof MODES)[number];
const modeSchema = z.enum(MODES, { error: (i) => `${JSON.stringify(i.input)} is not a workload mode; use one of ${MODES.join(', ')}` });

const METRICS = [
  'ALL_METRICS',
  'REQUEST_COUNT',
  'REQUEST_DURATION',
  'REQUEST_SIZE',
  'RESPONSE_SIZE',
  'TCP_OPENED_CONNECTIONS',
  'TCP_CLOSED_CONNECTIONS',
  'TCP_SENT_BYTES',
  'TCP_RECEIVED_BYTES',
  'GRPC_REQUEST_MESSAGES',
  'GRPC_RESPONSE_MESSAGES',
] as const;

const providerRef = z.object({ name: z.string().min(1, 'is required: the name of an extension provider of the mesh config (or "envoy", "prometheus")') });
const match = z.object({ mode: modeSchema.nullish() });

const accessLoggingSchema = z.object({
  match: match.nullish(),
  providers: z.array(providerRef).nullish(),
  disabled: z.boolean().nullish(),
  filter: z.object({ expression: z.string().min(1, 'must not be empty: a CEL expression such as "response.code >= 400"') }).nullish(),
});

const customTagSchema = z.object({
  literal: z.object({ value: z.string() }).nullish(),
  environment: z.object({ name: z.string().min(1, 'is required: the environment variable'), defaultValue: z.string().nullish() }).nullish(),
  header: z.object({ name: z.string().min(1, 'is required: the request header'), defaultValue: z.string().nullish() }).nullish(),
});

const tracingSchema = z.object({
  match: match.nullish(),
  providers: z.array(providerRef).nullish(),
  customTags: z.record(z.string().min(1, 'tag names must not be empty'), customTagSchema).nullish(),
  disableSpanReporting: z.boolean().nullish(),
  randomSamplingPercentage: z.number().min(0, 'must be a percentage from 0 to 100').max(100, 'must be a percentage from 0 to 100').nullish(),
  useRequestIdForTraceSampling: z.boolean().nullish(),
  enableIstioTags: z.boolean().nullish(),
});

const metricsSchema = z.object({
  providers: z.array(providerRef).nullish(),
  overrides: z
    .array(
      z.object({
        match: z
          .object({
            metric: z.enum(METRICS, { error: (i) => `${JSON.stringify(i.input)} is not one of Istio's standard metrics (${METRICS.join(', ')})` }).nullish(),
            customMetric: z.string().nullish(),
            mode: modeSchema.nullish(),
          })
          .nullish(),
        disabled: z.boolean().nullish(),
        tagOverrides: z.record(z.string(), z.object({ operation: z.enum(['UPSERT', 'REMOVE']).nullish(), value: z.string().nullish() })).nullish(),
      }),
    )
    .nullish(),
  reportingInterval: z.string().nullish(),
});

const targetRefSchema = z.object({
  group: z.string().nullish(),
  kind: z.string().min(1, 'is required (Gateway)'),
  name: z.string().min(1, 'is required: the name of the Gateway'),
  namespace: z.string().nullish(),
});

export const telemetrySpecSchema = z.object({
  selector: z.object({ matchLabels: z.record(z.string(), z.string()).nullish() }).nullish(),
  targetRef: targetRefSchema.nullish(),
  targetRefs: z.array(targetRefSchema).nullish(),
  accessLogging: z.array(accessLoggingSchema).nullish(),
  tracing: z.array(tracingSchema).nullish(),
  metrics: z.array(metricsSchema).nullish(),
});

export type TelemetrySpec = z.infer<typeof telemetrySpecSchema>;
export type TelemetryAccessLogging = z.infer<typeof accessLoggingSchema>;
export type TelemetryTracing = z.infer<typeof tracingSchema>;
export type TelemetryCustomTag = z.infer<typeof customTagSchema>;

type Issue = { path: (string | number)[]; message: string };

const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
/** The label Gateway API deployments carry, naming their Gateway (Istio's gateway proxies too). */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/** Checks beyond the schema, as Istio's validation makes them. */
export function telemetryIssues(spec: TelemetrySpec): Issue[] {
  const out: Issue[] = [];
  const refs = [...(spec.targetRef ? [{ ref: spec.targetRef, path: ['targetRef'] as (string | number)[] }] : []), ...(spec.targetRefs ?? []).map((ref, i) => ({ ref, path: ['targetRefs', i] as (string | number)[] }))];
  if (spec.targetRef && spec.targetRefs?.length) out.push({ path: ['targetRefs'], message: 'set only one of targetRef and targetRefs' });
  if (spec.selector && refs.length > 0) out.push({ path: ['selector'], message: 'set only one of selector and targetRef(s)' });
  for (const { ref, path } of refs) {
    if (ref.kind !== 'Gateway' || (ref.group ?? '') !== GATEWAY_API_GROUP) {
      out.push({ path: [...path, 'kind'], message: `${ref.group ? `${ref.group}/` : ''}${ref.kind} is not supported by meshd: a targetRef names a Gateway (group ${GATEWAY_API_GROUP}, kind Gateway)` });
    }
    if (ref.namespace) out.push({ path: [...path, 'namespace'], message: 'must be unset: a Telemetry applies to a Gateway of its own namespace' });
  }
  spec.tracing?.forEach((t, i) => {
    for (const [tag, v] of Object.entries(t.customTags ?? {})) {
      const set = [v.literal, v.environment, v.header].filter((x) => x != null).length;
      if (set !== 1) out.push({ path: ['tracing', i, 'customTags', tag], message: 'set exactly one of literal, environment and header' });
    }
    if ((t.providers?.length ?? 0) > 1) out.push({ path: ['tracing', i, 'providers'], message: 'at most one tracing provider is supported (as in Istio)' });
  });
  spec.metrics?.forEach((m, i) => {
    m.overrides?.forEach((o, j) => {
      if (o.match?.metric && o.match.customMetric) out.push({ path: ['metrics', i, 'overrides', j, 'match'], message: 'set only one of metric and customMetric' });
    });
  });
  return out;
}

/** A Telemetry as resolution needs it. */
export interface TelemetryLike {
  metadata: { namespace: string; name: string; creationTimestamp?: string };
  spec: TelemetrySpec;
}

/** Whether the Telemetry is for chosen workloads (selector or targetRef), not a whole namespace. */
export function hasWorkloadScope(t: TelemetryLike): boolean {
  return Object.keys(t.spec.selector?.matchLabels ?? {}).length > 0 || t.spec.targetRef != null || (t.spec.targetRefs?.length ?? 0) > 0;
}

/** Oldest first; equal times by name. */
export const olderTelemetryFirst: (a: TelemetryLike, b: TelemetryLike) => number = olderFirst;

/** The proxy a Telemetry is resolved for. */
export interface TelemetryTarget {
  namespace: string;
  labels: Labels;
  /** Gateways (`router`) are matched by targetRef too. */
  type: 'sidecar' | 'router';
}

function selects(t: TelemetryLike, target: TelemetryTarget): boolean {
  const labels = t.spec.selector?.matchLabels;
  if (labels && Object.keys(labels).length > 0) return selectorMatches(labels, target.labels);
  const refs = [...(t.spec.targetRef ? [t.spec.targetRef] : []), ...(t.spec.targetRefs ?? [])];
  const gatewayName = target.labels[GATEWAY_NAME_LABEL];
  return target.type === 'router' && gatewayName !== undefined && refs.some((r) => r.kind === 'Gateway' && (r.group ?? '') === GATEWAY_API_GROUP && r.name === gatewayName);
}

/**
 * The Telemetries that apply to a proxy, least specific first: the root namespace's oldest
 * without a selector, its namespace's oldest without a selector, then its namespace's oldest
 * one selecting it (by labels or targetRef). Selectors in the root namespace are ignored (as in
 * Istio, where they only select workloads of the root namespace itself).
 */
export function telemetriesFor<T extends TelemetryLike>(telemetries: readonly T[], target: TelemetryTarget, rootNamespace: string): T[] {
  const byNs = byNamespace(telemetries);
  const wide = (ns: string): T | undefined => byNs.get(ns)?.find((t) => !hasWorkloadScope(t));
  const out: T[] = [];
  const root = wide(rootNamespace);
  if (root) out.push(root);
  if (target.namespace !== rootNamespace) {
    const ns = wide(target.namespace);
    if (ns) out.push(ns);
  }
  const own = byNs.get(target.namespace)?.find((t) => hasWorkloadScope(t) && selects(t, target));
  if (own) out.push(own);
  return out;
}

/** Per list of Telemetries (a config's), each namespace's, oldest first: built once. */
const indexes = new WeakMap<readonly TelemetryLike[], Map<string, TelemetryLike[]>>();

function byNamespace<T extends TelemetryLike>(telemetries: readonly T[]): Map<string, T[]> {
  let index = indexes.get(telemetries);
  if (!index) {
    index = new Map();
    for (const t of telemetries) {
      const list = index.get(t.metadata.namespace);
      if (list) list.push(t);
      else index.set(t.metadata.namespace, [t]);
    }
    for (const list of index.values()) list.sort(olderTelemetryFirst);
    indexes.set(telemetries, index);
  }
  return index as Map<string, T[]>;
}
