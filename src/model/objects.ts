// The Kubernetes objects meshd reads, as typed values, with validation that names
// the object and the field. Sources (file, kube) both produce these.
import { z } from 'zod';
import {
  ISTIO_NETWORKING_API_VERSIONS,
  destinationRuleIssues,
  destinationRuleSpecSchema,
  gatewayIssues,
  gatewaySpecSchema,
  virtualServiceIssues,
  virtualServiceSpecSchema,
  type DestinationRuleSpec,
  type GatewaySpec,
  type VirtualServiceSpec,
} from './istio.js';
import { ISTIO_SECURITY_API_VERSIONS, peerAuthenticationIssues, peerAuthenticationSpecSchema, type PeerAuthenticationSpec } from './security.js';
import { authorizationPolicyIssues, authorizationPolicySpecSchema, type AuthorizationPolicySpec } from './authorization.js';
import { requestAuthenticationIssues, requestAuthenticationSpecSchema, type RequestAuthenticationSpec } from './request-authentication.js';
import { sidecarIssues, sidecarSpecSchema, type SidecarSpec } from './sidecar.js';
import { serviceEntryIssues, serviceEntrySpecSchema, workloadEntryIssues, workloadEntrySpecSchema, type ServiceEntrySpec, type WorkloadEntrySpec } from './service-entry.js';
import { ISTIO_TELEMETRY_API_VERSIONS, telemetryIssues, telemetrySpecSchema, type TelemetrySpec } from './telemetry.js';

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  resourceVersion?: string;
  generation?: number;
  /** As the API server sets it (RFC 3339); absent in most YAML files. Istio's tie-breaker between policies: the oldest wins. */
  creationTimestamp?: string;
}

export interface ServicePort {
  name: string;
  port: number;
  targetPort: number | string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
}

export interface ServiceObject {
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    clusterIP?: string;
    type: string;
    ports: ServicePort[];
    selector?: Record<string, string>;
    externalName?: string;
  };
}

export interface EndpointSliceEndpoint {
  addresses: string[];
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  hostname?: string;
  nodeName?: string;
  zone?: string;
  targetRef?: { kind?: string; name?: string; namespace?: string };
}

export interface EndpointSlicePort {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
}

export interface EndpointSliceObject {
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  /** From the `kubernetes.io/service-name` label. */
  serviceName: string;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: EndpointSliceEndpoint[];
  ports: EndpointSlicePort[];
}

export interface PodObject {
  kind: 'Pod';
  metadata: ObjectMeta;
  serviceAccountName: string;
  nodeName?: string;
  podIPs: string[];
  phase: string;
  ready: boolean;
}

export interface NamespaceObject {
  kind: 'Namespace';
  metadata: ObjectMeta;
}

/** A Secret. Its data is key material: never logged, never shown in debug output. */
export interface SecretObject {
  kind: 'Secret';
  metadata: ObjectMeta;
  type: string;
  /** Base64 values, as the API returns them. */
  data: Record<string, string>;
}

export interface GatewayObject {
  kind: 'Gateway';
  metadata: ObjectMeta;
  spec: GatewaySpec;
}

export interface VirtualServiceObject {
  kind: 'VirtualService';
  metadata: ObjectMeta;
  spec: VirtualServiceSpec;
}

export interface DestinationRuleObject {
  kind: 'DestinationRule';
  metadata: ObjectMeta;
  spec: DestinationRuleSpec;
}

export interface PeerAuthenticationObject {
  kind: 'PeerAuthentication';
  metadata: ObjectMeta;
  spec: PeerAuthenticationSpec;
}

export interface AuthorizationPolicyObject {
  kind: 'AuthorizationPolicy';
  metadata: ObjectMeta;
  spec: AuthorizationPolicySpec;
}

export interface RequestAuthenticationObject {
  kind: 'RequestAuthentication';
  metadata: ObjectMeta;
  spec: RequestAuthenticationSpec;
}

export interface SidecarObject {
  kind: 'Sidecar';
  metadata: ObjectMeta;
  spec: SidecarSpec;
}

export interface TelemetryObject {
  kind: 'Telemetry';
  metadata: ObjectMeta;
  spec: TelemetrySpec;
}

export interface ServiceEntryObject {
  kind: 'ServiceEntry';
  metadata: ObjectMeta;
  spec: ServiceEntrySpec;
}

export interface WorkloadEntryObject {
  kind: 'WorkloadEntry';
  metadata: ObjectMeta;
  spec: WorkloadEntrySpec;
}

export type IstioObject = GatewayObject | VirtualServiceObject | DestinationRuleObject | PeerAuthenticationObject | AuthorizationPolicyObject | RequestAuthenticationObject | SidecarObject | ServiceEntryObject | WorkloadEntryObject | TelemetryObject;

export type MeshObject = ServiceObject | EndpointSliceObject | PodObject | NamespaceObject | SecretObject | IstioObject;
export type MeshKind = MeshObject['kind'];

/** The API group/version/kind a raw object must carry to be read as each kind. */
export const KIND_API_VERSIONS: Record<MeshKind, readonly string[]> = {
  Service: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
  Pod: ['v1'],
  Namespace: ['v1'],
  Secret: ['v1'],
  Gateway: ISTIO_NETWORKING_API_VERSIONS,
  VirtualService: ISTIO_NETWORKING_API_VERSIONS,
  DestinationRule: ISTIO_NETWORKING_API_VERSIONS,
  PeerAuthentication: ISTIO_SECURITY_API_VERSIONS,
  AuthorizationPolicy: ISTIO_SECURITY_API_VERSIONS,
  RequestAuthentication: ISTIO_SECURITY_API_VERSIONS,
  Sidecar: ISTIO_NETWORKING_API_VERSIONS,
  ServiceEntry: ISTIO_NETWORKING_API_VERSIONS,
  WorkloadEntry: ISTIO_NETWORKING_API_VERSIONS,
  Telemetry: ISTIO_TELEMETRY_API_VERSIONS,
};

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label (lower case letters, digits and "-")').max(63);
const dnsSubdomain = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS-1123 subdomain').max(253);
const stringMap = z.record(z.string(), z.string());
const portNumber = z.number().int().min(1).max(65535);
const protocol = z.enum(['TCP', 'UDP', 'SCTP']).default('TCP');

const metadataSchema = z.object({
  name: dnsSubdomain,
  namespace: dnsLabel.optional(),
  labels: stringMap.nullish(),
  annotations: stringMap.nullish(),
  resourceVersion: z.string().optional(),
  generation: z.number().optional(),
  // `kubectl create --dry-run -o yaml` writes `creationTimestamp: null`.
  creationTimestamp: z
    .string()
    .refine((s) => !Number.isNaN(Date.parse(s)), 'must be an RFC 3339 time such as "2024-05-01T12:00:00Z"')
    .nullish(),
});

const ipv4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const ipv6 = /^[0-9a-fA-F:]+(%\w+)?$/;

const servicePortSchema = z.object({
  name: z.string().optional(),
  port: portNumber,
  targetPort: z.union([portNumber, z.string().min(1)]).optional(),
  protocol,
  appProtocol: z.string().optional(),
  nodePort: z.number().optional(),
});

const serviceSchema = z.object({
  metadata: metadataSchema,
  spec: z
    .object({
      clusterIP: z.string().refine((s) => s === '' || s === 'None' || ipv4.test(s) || ipv6.test(s), 'must be an IP address, "None" or empty').optional(),
      type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).default('ClusterIP'),
      ports: z.array(servicePortSchema).default([]),
      selector: stringMap.nullish(),
      externalName: z.string().optional(),
    })
    .superRefine((spec, ctx) => {
      if (spec.ports.length > 1) {
        spec.ports.forEach((p, i) => {
          if (!p.name) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: 'is required when a Service has more than one port' });
        });
      }
      const seen = new Map<string, number>();
      spec.ports.forEach((p, i) => {
        const key = `${p.port}/${p.protocol}`;
        if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'port'], message: `duplicates ports[${seen.get(key)}] (${key})` });
        seen.set(key, i);
        if (p.name && seen.has(`name:${p.name}`)) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: `duplicate port name "${p.name}"` });
        if (p.name) seen.set(`name:${p.name}`, i);
      });
    }),
});

const endpointSliceSchema = z.object({
  metadata: metadataSchema,
  addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
  endpoints: z
    .array(
      z.object({
        addresses: z.array(z.string().min(1)).min(1),
        conditions: z.object({ ready: z.boolean().nullish(), serving: z.boolean().nullish(), terminating: z.boolean().nullish() }).nullish(),
        hostname: z.string().optional(),
        nodeName: z.string().optional(),
        zone: z.string().optional(),
        targetRef: z.object({ kind: z.string().optional(), name: z.string().optional(), namespace: z.string().optional() }).passthrough().nullish(),
      }),
    )
    .nullish(),
  ports: z
    .array(z.object({ name: z.string().nullish(), port: portNumber.nullish(), protocol, appProtocol: z.string().optional() }))
    .nullish(),
});

const podSchema = z.object({
  metadata: metadataSchema,
  spec: z.object({ serviceAccountName: z.string().optional(), serviceAccount: z.string().optional(), nodeName: z.string().optional() }).passthrough().nullish(),
  status: z
    .object({
      phase: z.string().optional(),
      podIP: z.string().optional(),
      podIPs: z.array(z.object({ ip: z.string() })).nullish(),
      conditions: z.array(z.object({ type: z.string(), status: z.string() }).passthrough()).nullish(),
    })
    .passthrough()
    .nullish(),
});

const namespaceSchema = z.object({ metadata: metadataSchema.extend({ name: dnsLabel }) });

const secretSchema = z.object({
  metadata: metadataSchema,
  type: z.string().default('Opaque'),
  data: z.record(z.string(), z.string()).nullish(),
  stringData: z.record(z.string(), z.string()).nullish(),
});

/** A validation failure, naming the object and the field. */
export interface ObjectError {
  kind: string;
  name: string;
  namespace: string;
  field: string;
  message: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: ObjectError[] };

function zodErrors(kind: string, raw: unknown, err: z.ZodError, pathPrefix: string[] = []): ObjectError[] {
  const meta = (raw as { metadata?: { name?: unknown; namespace?: unknown } })?.metadata ?? {};
  return err.issues.map((issue) => ({
    kind,
    name: typeof meta.name === 'string' ? meta.name : '<unnamed>',
    namespace: typeof meta.namespace === 'string' ? meta.namespace : 'default',
    field: formatFieldPath([...pathPrefix, ...issue.path]),
    message: issue.message,
  }));
}

function meta(m: z.infer<typeof metadataSchema>, defaultNamespace: string): ObjectMeta {
  const out: ObjectMeta = {
    name: m.name,
    namespace: m.namespace ?? defaultNamespace,
    labels: m.labels ?? {},
    annotations: m.annotations ?? {},
  };
  if (m.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  if (m.generation !== undefined) out.generation = m.generation;
  if (m.creationTimestamp) out.creationTimestamp = m.creationTimestamp;
  return out;
}

export function parseService(raw: unknown, defaultNamespace = 'default'): ParseResult<ServiceObject> {
  const r = serviceSchema.safeParse(raw);
  if (!r.success) return { ok: false, errors: zodErrors('Service', raw, r.error) };
  const s = r.data;
  const spec: ServiceObject['spec'] = {
    type: s.spec.type,
    ports: s.spec.ports.map((p) => {
      const port: ServicePort = { name: p.name ?? '', port: p.port, targetPort: p.targetPort ?? p.port, protocol: p.protocol };
      if (p.appProtocol !== undefined) port.appProtocol = p.appProtocol;
      return port;
    }),
  };
  if (s.spec.clusterIP !== undefined) spec.clusterIP = s.spec.clusterIP;
  if (s.spec.selector) spec.selector = s.spec.selector;
  if (s.spec.externalName !== undefined) spec.externalName = s.spec.externalName;
  return { ok: true, value: { kind: 'Service', metadata: meta(s.metadata, defaultNamespace), spec } };
}

export function parseEndpointSlice(raw: unknown, defaultNamespace = 'default'): ParseResult<EndpointSliceObject> {
  const r = endpointSliceSchema.safeParse(raw);
  if (!r.success) return { ok: false, errors: zodErrors('EndpointSlice', raw, r.error) };
  const s = r.data;
  const m = meta(s.metadata, defaultNamespace);
  const serviceName = m.labels[SERVICE_NAME_LABEL];
  if (!serviceName) {
    return {
      ok: false,
      errors: [{ kind: 'EndpointSlice', name: m.name, namespace: m.namespace, field: `metadata.labels["${SERVICE_NAME_LABEL}"]`, message: 'is required: it names the Service these endpoints belong to' }],
    };
  }
  return {
    ok: true,
    value: {
      kind: 'EndpointSlice',
      metadata: m,
      serviceName,
      addressType: s.addressType,
      endpoints: (s.endpoints ?? []).map((e) => {
        // Kubernetes: a nil "ready" condition means ready.
        const ready = e.conditions?.ready ?? true;
        const ep: EndpointSliceEndpoint = {
          addresses: e.addresses,
          ready,
          serving: e.conditions?.serving ?? ready,
          terminating: e.conditions?.terminating ?? false,
        };
        if (e.hostname !== undefined) ep.hostname = e.hostname;
        if (e.nodeName !== undefined) ep.nodeName = e.nodeName;
        if (e.zone !== undefined) ep.zone = e.zone;
        if (e.targetRef) {
          const ref: NonNullable<EndpointSliceEndpoint['targetRef']> = {};
          if (e.targetRef.kind !== undefined) ref.kind = e.targetRef.kind;
          if (e.targetRef.name !== undefined) ref.name = e.targetRef.name;
          if (e.targetRef.namespace !== undefined) ref.namespace = e.targetRef.namespace;
          ep.targetRef = ref;
        }
        return ep;
      }),
      ports: (s.ports ?? []).filter((p) => p.port != null).map((p) => {
        const port: EndpointSlicePort = { name: p.name ?? '', port: p.port!, protocol: p.protocol };
        if (p.appProtocol !== undefined) port.appProtocol = p.appProtocol;
        return port;
      }),
    },
  };
}

export function parsePod(raw: unknown, defaultNamespace = 'default'): ParseResult<PodObject> {
  const r = podSchema.safeParse(raw);
  if (!r.success) return { ok: false, errors: zodErrors('Pod', raw, r.error) };
  const p = r.data;
  const ips = (p.status?.podIPs ?? []).map((x) => x.ip);
  if (ips.length === 0 && p.status?.podIP) ips.push(p.status.podIP);
  const pod: PodObject = {
    kind: 'Pod',
    metadata: meta(p.metadata, defaultNamespace),
    serviceAccountName: p.spec?.serviceAccountName ?? p.spec?.serviceAccount ?? 'default',
    podIPs: ips,
    phase: p.status?.phase ?? 'Pending',
    ready: (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
  };
  if (p.spec?.nodeName) pod.nodeName = p.spec.nodeName;
  return { ok: true, value: pod };
}

export function parseNamespace(raw: unknown): ParseResult<NamespaceObject> {
  const r = namespaceSchema.safeParse(raw);
  if (!r.success) return { ok: false, errors: zodErrors('Namespace', raw, r.error) };
  const m = meta(r.data.metadata, '');
  m.namespace = '';
  return { ok: true, value: { kind: 'Namespace', metadata: m } };
}

export function parseSecret(raw: unknown, defaultNamespace = 'default'): ParseResult<SecretObject> {
  const r = secretSchema.safeParse(raw);
  if (!r.success) {
    // Never echo secret values: report only the paths.
    return { ok: false, errors: zodErrors('Secret', raw, r.error).map((e) => ({ ...e, message: e.field.startsWith('data') ? 'must be a map of base64 strings' : e.message })) };
  }
  const data: Record<string, string> = { ...(r.data.data ?? {}) };
  for (const [k, v] of Object.entries(r.data.stringData ?? {})) data[k] = Buffer.from(v, 'utf8').toString('base64');
  return { ok: true, value: { kind: 'Secret', metadata: meta(r.data.metadata, defaultNamespace), type: r.data.type, data } };
}

type IssueFinder<S> = (spec: S) => { path: (string | number)[]; message: string }[];

function parseIstio<K extends IstioObject['kind'], S>(kind: K, schema: z.ZodType<S>, issues: IssueFinder<S> | undefined, raw: unknown, defaultNamespace: string): ParseResult<Extract<IstioObject, { kind: K }>> {
  const m = metadataSchema.safeParse((raw as { metadata?: unknown })?.metadata);
  if (!m.success) return { ok: false, errors: zodErrors(kind, raw, m.error, ['metadata']) };
  const spec = schema.safeParse((raw as { spec?: unknown })?.spec ?? {});
  if (!spec.success) return { ok: false, errors: zodErrors(kind, raw, spec.error, ['spec']) };
  const metadata = meta(m.data, defaultNamespace);
  const found = issues?.(spec.data) ?? [];
  if (found.length > 0) {
    return {
      ok: false,
      errors: found.map((f) => ({
        kind,
        name: metadata.name,
        namespace: metadata.namespace,
        field: formatFieldPath(['spec', ...f.path]),
        message: f.message,
      })),
    };
  }
  return { ok: true, value: { kind, metadata, spec: spec.data } as unknown as Extract<IstioObject, { kind: K }> };
}

/** Parses a raw object by its apiVersion and kind; unknown kinds are reported as such. */
export function parseMeshObject(raw: unknown, defaultNamespace = 'default'): ParseResult<MeshObject> | { ok: 'ignored'; reason: string } {
  const r = raw as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return { ok: 'ignored', reason: 'not a Kubernetes object (expected a mapping with apiVersion and kind)' };
  const kind = r.kind;
  const apiVersion = r.apiVersion;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') {
    return { ok: false, errors: [{ kind: String(kind ?? '<no kind>'), name: typeof r.metadata?.name === 'string' ? r.metadata.name : '<unnamed>', namespace: defaultNamespace, field: typeof kind !== 'string' ? 'kind' : 'apiVersion', message: 'is required' }] };
  }
  const accepted = (KIND_API_VERSIONS as Record<string, readonly string[]>)[kind];
  if (!accepted || !accepted.includes(apiVersion)) return { ok: 'ignored', reason: `unsupported kind ${apiVersion}/${kind}` };
  switch (kind as MeshKind) {
    case 'Service':
      return parseService(raw, defaultNamespace);
    case 'EndpointSlice':
      return parseEndpointSlice(raw, defaultNamespace);
    case 'Pod':
      return parsePod(raw, defaultNamespace);
    case 'Namespace':
      return parseNamespace(raw);
    case 'Secret':
      return parseSecret(raw, defaultNamespace);
    case 'Gateway':
      return parseIstio('Gateway', gatewaySpecSchema, gatewayIssues, raw, defaultNamespace);
    case 'VirtualService':
      return parseIstio('VirtualService', virtualServiceSpecSchema, virtualServiceIssues, raw, defaultNamespace);
    case 'DestinationRule':
      return parseIstio('DestinationRule', destinationRuleSpecSchema, destinationRuleIssues, raw, defaultNamespace);
    case 'PeerAuthentication':
      return parseIstio('PeerAuthentication', peerAuthenticationSpecSchema, peerAuthenticationIssues, raw, defaultNamespace);
    case 'AuthorizationPolicy':
      return parseIstio('AuthorizationPolicy', authorizationPolicySpecSchema, authorizationPolicyIssues, raw, defaultNamespace);
    case 'RequestAuthentication':
      return parseIstio('RequestAuthentication', requestAuthenticationSpecSchema, requestAuthenticationIssues, raw, defaultNamespace);
    case 'Sidecar':
      return parseIstio('Sidecar', sidecarSpecSchema, sidecarIssues, raw, defaultNamespace);
    case 'ServiceEntry':
      return parseIstio('ServiceEntry', serviceEntrySpecSchema, serviceEntryIssues, raw, defaultNamespace);
    case 'WorkloadEntry':
      return parseIstio('WorkloadEntry', workloadEntrySpecSchema, workloadEntryIssues, raw, defaultNamespace);
    case 'Telemetry':
      return parseIstio('Telemetry', telemetrySpecSchema, telemetryIssues, raw, defaultNamespace);
  }
}

/** A field path as errors name it: `spec.http[0].route[1].weight`. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

export function objectKey(o: { kind: string; metadata: { namespace: string; name: string } }): string {
  return keyOf(o.kind, o.metadata.namespace, o.metadata.name);
}

/** `kind/namespace/name`: how the store and sources name an object. */
export function keyOf(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

export function formatObjectError(e: ObjectError): string {
  return `${e.kind} ${e.namespace}/${e.name}: ${e.field || '<object>'}: ${e.message}`;
}
