// Istio's networking.istio.io objects (Gateway, VirtualService, DestinationRule), as
// typed values with validation that names the object, the field and what is valid.
import { z } from 'zod';
import { re2Issue } from './re2.js';

export const ISTIO_NETWORKING_API_VERSIONS = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'] as const;

const stringMap = z.record(z.string(), z.string());
const portNumber = z.number().int().min(1).max(65535);
const duration = z.string().regex(/^(\d+(\.\d+)?(h|m|s|ms|us|µs|ns))+$/, 'must be a duration such as "1s", "500ms" or "1m30s"');
const percentage = z.object({ value: z.number().min(0).max(100) });

export const stringMatchSchema = z
  .object({ exact: z.string().optional(), prefix: z.string().optional(), regex: z.string().optional() })
  .refine((m) => [m.exact, m.prefix, m.regex].filter((x) => x !== undefined).length === 1, 'must set exactly one of exact, prefix or regex');
export type StringMatch = z.infer<typeof stringMatchSchema>;

const headerOperations = z.object({ set: stringMap.optional(), add: stringMap.optional(), remove: z.array(z.string()).optional() });
const headers = z.object({ request: headerOperations.optional(), response: headerOperations.optional() });

const destination = z.object({
  host: z.string().min(1, 'is required'),
  subset: z.string().optional(),
  port: z.object({ number: portNumber }).optional(),
});

const httpMatch = z.object({
  name: z.string().optional(),
  uri: stringMatchSchema.optional(),
  scheme: stringMatchSchema.optional(),
  method: stringMatchSchema.optional(),
  authority: stringMatchSchema.optional(),
  headers: z.record(z.string(), stringMatchSchema).optional(),
  withoutHeaders: z.record(z.string(), stringMatchSchema).optional(),
  queryParams: z.record(z.string(), stringMatchSchema).optional(),
  port: portNumber.optional(),
  sourceLabels: stringMap.optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
  ignoreUriCase: z.boolean().optional(),
});

const httpRouteDestination = z.object({ destination, weight: z.number().int().min(0).max(100).optional(), headers: headers.optional() });

const httpRoute = z.object({
  name: z.string().optional(),
  match: z.array(httpMatch).optional(),
  route: z.array(httpRouteDestination).optional(),
  redirect: z
    .object({
      uri: z.string().optional(),
      authority: z.string().optional(),
      port: portNumber.optional(),
      derivePort: z.enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']).optional(),
      scheme: z.string().optional(),
      redirectCode: z.number().int().min(300).max(399).optional(),
    })
    .optional(),
  directResponse: z
    .object({ status: z.number().int().min(200).max(599), body: z.object({ string: z.string().optional(), bytes: z.string().optional() }).optional() })
    .optional(),
  delegate: z.object({ name: z.string(), namespace: z.string().optional() }).optional(),
  rewrite: z.object({ uri: z.string().optional(), authority: z.string().optional(), uriRegexRewrite: z.object({ match: z.string(), rewrite: z.string() }).optional() }).optional(),
  timeout: duration.optional(),
  retries: z.object({ attempts: z.number().int().min(0).optional(), perTryTimeout: duration.optional(), retryOn: z.string().optional(), retryRemoteLocalities: z.boolean().optional() }).optional(),
  fault: z
    .object({
      delay: z.object({ fixedDelay: duration.optional(), exponentialDelay: duration.optional(), percentage: percentage.optional(), percent: z.number().int().min(0).max(100).optional() }).optional(),
      abort: z.object({ httpStatus: z.number().int().min(200).max(599).optional(), grpcStatus: z.string().optional(), http2Error: z.string().optional(), percentage: percentage.optional() }).optional(),
    })
    .optional(),
  mirror: destination.optional(),
  mirrors: z.array(z.object({ destination, percentage: percentage.optional() })).optional(),
  mirrorPercentage: percentage.optional(),
  mirrorPercent: z.number().int().min(0).max(100).optional(),
  corsPolicy: z
    .object({
      allowOrigins: z.array(stringMatchSchema).optional(),
      allowOrigin: z.array(z.string()).optional(),
      allowMethods: z.array(z.string()).optional(),
      allowHeaders: z.array(z.string()).optional(),
      exposeHeaders: z.array(z.string()).optional(),
      maxAge: duration.optional(),
      allowCredentials: z.boolean().optional(),
      unmatchedPreflights: z.enum(['UNSPECIFIED', 'FORWARD', 'IGNORE']).optional(),
    })
    .optional(),
  headers: headers.optional(),
});

const l4Match = z.object({
  destinationSubnets: z.array(z.string()).optional(),
  port: portNumber.optional(),
  sourceLabels: stringMap.optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
});
const routeDestination = z.object({ destination, weight: z.number().int().min(0).max(100).optional() });
const tcpRoute = z.object({ match: z.array(l4Match).optional(), route: z.array(routeDestination).optional() });
const tlsRoute = z.object({ match: z.array(l4Match.extend({ sniHosts: z.array(z.string()).min(1) })).min(1), route: z.array(routeDestination).optional() });

export const virtualServiceSpecSchema = z.object({
  hosts: z.array(z.string().min(1)).optional(),
  gateways: z.array(z.string().min(1)).optional(),
  http: z.array(httpRoute).optional(),
  tcp: z.array(tcpRoute).optional(),
  tls: z.array(tlsRoute).optional(),
  exportTo: z.array(z.string()).optional(),
});

const serverTls = z.object({
  httpsRedirect: z.boolean().optional(),
  mode: z.enum(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']).optional(),
  serverCertificate: z.string().optional(),
  privateKey: z.string().optional(),
  caCertificates: z.string().optional(),
  credentialName: z.string().optional(),
  subjectAltNames: z.array(z.string()).optional(),
  minProtocolVersion: z.enum(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']).optional(),
  maxProtocolVersion: z.enum(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']).optional(),
  cipherSuites: z.array(z.string()).optional(),
});

export const gatewaySpecSchema = z.object({
  selector: stringMap.optional(),
  servers: z
    .array(
      z.object({
        port: z.object({ number: portNumber, name: z.string().optional(), protocol: z.string().min(1), targetPort: portNumber.optional() }),
        hosts: z.array(z.string().min(1)).min(1, 'must list at least one host'),
        bind: z.string().optional(),
        defaultEndpoint: z.string().optional(),
        name: z.string().optional(),
        tls: serverTls.optional(),
      }),
    )
    .min(1, 'must have at least one server'),
});

const loadBalancer = z.object({
  simple: z.enum(['UNSPECIFIED', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN']).optional(),
  consistentHash: z
    .object({
      httpHeaderName: z.string().optional(),
      httpCookie: z.object({ name: z.string(), path: z.string().optional(), ttl: duration.optional() }).optional(),
      useSourceIp: z.boolean().optional(),
      httpQueryParameterName: z.string().optional(),
      minimumRingSize: z.number().int().optional(),
      ringHash: z.object({ minimumRingSize: z.number().int().optional() }).optional(),
      maglev: z.object({ tableSize: z.number().int().optional() }).optional(),
    })
    .optional(),
  localityLbSetting: z.record(z.string(), z.unknown()).optional(),
  warmupDurationSecs: duration.optional(),
});

const connectionPool = z.object({
  tcp: z
    .object({
      maxConnections: z.number().int().min(0).optional(),
      connectTimeout: duration.optional(),
      tcpKeepalive: z.object({ probes: z.number().int().optional(), time: duration.optional(), interval: duration.optional() }).optional(),
      maxConnectionDuration: duration.optional(),
      idleTimeout: duration.optional(),
    })
    .optional(),
  http: z
    .object({
      http1MaxPendingRequests: z.number().int().min(0).optional(),
      http2MaxRequests: z.number().int().min(0).optional(),
      maxRequestsPerConnection: z.number().int().min(0).optional(),
      maxRetries: z.number().int().min(0).optional(),
      idleTimeout: duration.optional(),
      h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
      useClientProtocol: z.boolean().optional(),
      maxConcurrentStreams: z.number().int().optional(),
    })
    .optional(),
});

const outlierDetection = z.object({
  consecutiveErrors: z.number().int().min(0).optional(),
  consecutive5xxErrors: z.number().int().min(0).optional(),
  consecutiveGatewayErrors: z.number().int().min(0).optional(),
  consecutiveLocalOriginFailures: z.number().int().min(0).optional(),
  splitExternalLocalOriginErrors: z.boolean().optional(),
  interval: duration.optional(),
  baseEjectionTime: duration.optional(),
  maxEjectionPercent: z.number().int().min(0).max(100).optional(),
  minHealthPercent: z.number().int().min(0).max(100).optional(),
});

const clientTls = z.object({
  mode: z.enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']).optional(),
  clientCertificate: z.string().optional(),
  privateKey: z.string().optional(),
  caCertificates: z.string().optional(),
  credentialName: z.string().optional(),
  subjectAltNames: z.array(z.string()).optional(),
  sni: z.string().optional(),
  insecureSkipVerify: z.boolean().optional(),
});

const portTrafficPolicy = z.object({
  port: z.object({ number: portNumber }).optional(),
  loadBalancer: loadBalancer.optional(),
  connectionPool: connectionPool.optional(),
  outlierDetection: outlierDetection.optional(),
  tls: clientTls.optional(),
});

const trafficPolicy = z.object({
  loadBalancer: loadBalancer.optional(),
  connectionPool: connectionPool.optional(),
  outlierDetection: outlierDetection.optional(),
  tls: clientTls.optional(),
  portLevelSettings: z.array(portTrafficPolicy).optional(),
});

export const destinationRuleSpecSchema = z.object({
  host: z.string().min(1, 'is required'),
  trafficPolicy: trafficPolicy.optional(),
  subsets: z.array(z.object({ name: z.string().min(1), labels: stringMap.optional(), trafficPolicy: trafficPolicy.optional() })).optional(),
  exportTo: z.array(z.string()).optional(),
  workloadSelector: z.object({ matchLabels: stringMap.optional() }).optional(),
});

export type VirtualServiceSpec = z.infer<typeof virtualServiceSpecSchema>;
export type GatewaySpec = z.infer<typeof gatewaySpecSchema>;
export type DestinationRuleSpec = z.infer<typeof destinationRuleSpecSchema>;
export type HttpRoute = VirtualServiceSpec extends { http?: (infer R)[] } ? R : never;
export type TrafficPolicy = NonNullable<DestinationRuleSpec['trafficPolicy']>;

type Issue = { path: (string | number)[]; message: string };

/** A short name ("reviews") is qualified in the object's namespace; names with a dot are taken as written (Istio's rule). */
export function resolveHost(host: string, namespace: string, domain: string): string {
  if (host.includes('.') || host.includes('*')) return host;
  return `${host}.${namespace}.svc.${domain}`;
}

/**
 * Destinations naming a subset that no DestinationRule defines for their host. `subsets`
 * lists, per resolved host, the subset names defined anywhere.
 */
export function undefinedSubsets(spec: VirtualServiceSpec, namespace: string, domain: string, subsets: ReadonlyMap<string, ReadonlySet<string>>): Issue[] {
  const out: Issue[] = [];
  const check = (dest: { host: string; subset?: string | undefined } | undefined, path: (string | number)[]): void => {
    if (!dest?.subset) return;
    const host = resolveHost(dest.host, namespace, domain);
    if (!subsets.get(host)?.has(dest.subset)) out.push({ path: [...path, 'subset'], message: `subset "${dest.subset}" is not defined by any DestinationRule for host ${host}` });
  };
  spec.http?.forEach((r, i) => {
    r.route?.forEach((d, j) => check(d.destination, ['http', i, 'route', j, 'destination']));
    check(r.mirror, ['http', i, 'mirror']);
    r.mirrors?.forEach((m, j) => check(m.destination, ['http', i, 'mirrors', j, 'destination']));
  });
  for (const kind of ['tcp', 'tls'] as const) spec[kind]?.forEach((r, i) => r.route?.forEach((d, j) => check(d.destination, [kind, i, 'route', j, 'destination'])));
  return out;
}

function checkRegex(m: StringMatch | undefined, path: (string | number)[], out: Issue[]): void {
  if (m?.regex === undefined) return;
  const issue = re2Issue(m.regex);
  if (issue) out.push({ path: [...path, 'regex'], message: `"${m.regex}" ${issue}` });
}

function durationMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : m[2] === 'ms' ? n : n / 1000;
  }
  return total;
}

/** Envoy requires these durations to be above zero. */
function positiveDuration(text: string | undefined, path: (string | number)[], out: Issue[]): void {
  const ms = durationMs(text);
  if (ms !== undefined && ms <= 0) out.push({ path, message: `must be more than 0s, got "${text}"` });
}

const PSEUDO_OR_HOST = /^(:|host$)/i;

function headerOpIssues(h: { request?: HeaderOps; response?: HeaderOps } | undefined, path: (string | number)[], out: Issue[]): void {
  for (const side of ['request', 'response'] as const) {
    const ops = h?.[side];
    for (const op of ['set', 'add'] as const) {
      for (const name of Object.keys(ops?.[op] ?? {})) {
        if (PSEUDO_OR_HOST.test(name)) out.push({ path: [...path, side, op, name], message: `"${name}" cannot be changed with header operations (Envoy forbids ":"-prefixed headers and host); use rewrite.authority for the host` });
      }
    }
    ops?.remove?.forEach((name, i) => {
      if (PSEUDO_OR_HOST.test(name)) out.push({ path: [...path, side, 'remove', i], message: `"${name}" cannot be removed (Envoy forbids ":"-prefixed headers and host)` });
    });
  }
}

type HeaderOps = { set?: Record<string, string> | undefined; add?: Record<string, string> | undefined; remove?: string[] | undefined };

/** Checks beyond the schema: what makes a VirtualService meaningless or unservable. */
export function virtualServiceIssues(spec: VirtualServiceSpec): Issue[] {
  const out: Issue[] = [];
  if (!spec.hosts || spec.hosts.length === 0) out.push({ path: ['hosts'], message: 'must list at least one host' });
  // As Istio's validation: a lone `*` cannot name the hosts of sidecar routes (gateways
  // empty, which means the mesh, or listing "mesh"); a Gateway-only VirtualService may use it.
  const appliesToMesh = !spec.gateways?.length || spec.gateways.includes('mesh');
  spec.hosts?.forEach((h, i) => {
    if (appliesToMesh && h === '*') out.push({ path: ['hosts', i], message: 'wildcard host * is not allowed for a VirtualService bound to the mesh gateway (gateways empty or listing "mesh"); list the service hosts, or bind it to Gateways only' });
  });
  spec.http?.forEach((r, i) => {
    const actions = [r.route?.length ? 'route' : undefined, r.redirect ? 'redirect' : undefined, r.directResponse ? 'directResponse' : undefined, r.delegate ? 'delegate' : undefined].filter(Boolean);
    if (actions.length === 0) out.push({ path: ['http', i], message: 'has no destination: set route (with at least one destination), redirect or directResponse' });
    if (actions.length > 1) out.push({ path: ['http', i], message: `sets ${actions.join(' and ')}: only one of route, redirect, directResponse or delegate is allowed` });
    if (r.rewrite?.uri !== undefined && r.rewrite.uriRegexRewrite) out.push({ path: ['http', i, 'rewrite'], message: 'sets both uri and uriRegexRewrite; only one is allowed' });
    r.match?.forEach((m, j) => {
      for (const key of ['uri', 'scheme', 'method', 'authority'] as const) checkRegex(m[key], ['http', i, 'match', j, key], out);
      for (const key of ['headers', 'withoutHeaders', 'queryParams'] as const) {
        for (const [name, sm] of Object.entries(m[key] ?? {})) checkRegex(sm, ['http', i, 'match', j, key, name], out);
      }
    });
    if (r.rewrite?.uriRegexRewrite) {
      const issue = re2Issue(r.rewrite.uriRegexRewrite.match);
      if (issue) out.push({ path: ['http', i, 'rewrite', 'uriRegexRewrite', 'match'], message: issue });
    }
    r.corsPolicy?.allowOrigins?.forEach((o, j) => checkRegex(o, ['http', i, 'corsPolicy', 'allowOrigins', j], out));
    headerOpIssues(r.headers, ['http', i, 'headers'], out);
    r.route?.forEach((d, j) => headerOpIssues(d.headers, ['http', i, 'route', j, 'headers'], out));
    positiveDuration(r.fault?.delay?.fixedDelay, ['http', i, 'fault', 'delay', 'fixedDelay'], out);
    const weights = (r.route ?? []).map((d) => d.weight);
    if ((r.route?.length ?? 0) > 1 || weights.some((w) => w !== undefined)) {
      const total = weights.reduce<number>((a, w) => a + (w ?? 0), 0);
      if (weights.some((w) => w !== undefined) && total !== 100) out.push({ path: ['http', i, 'route'], message: `weights sum to ${total}; they must sum to 100` });
    }
  });
  for (const [kind, routes] of [['tcp', spec.tcp ?? []], ['tls', spec.tls ?? []]] as const) {
    routes.forEach((r, i) => {
      if (!r.route?.length) out.push({ path: [kind, i, 'route'], message: 'has no destination: list at least one' });
      const weights = (r.route ?? []).map((d) => d.weight);
      if (weights.some((w) => w !== undefined)) {
        const total = weights.reduce<number>((a, w) => a + (w ?? 0), 0);
        if (total !== 100) out.push({ path: [kind, i, 'route'], message: `weights sum to ${total}; they must sum to 100` });
      }
    });
  }
  return out;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

const MAX_RING_SIZE = 8_388_608;

function trafficPolicyIssues(p: TrafficPolicy | undefined, path: (string | number)[], out: Issue[]): void {
  if (!p) return;
  const levels: [Omit<TrafficPolicy, 'portLevelSettings'> | undefined, (string | number)[]][] = [[p, path], ...(p.portLevelSettings ?? []).map((x, i) => [x, [...path, 'portLevelSettings', i]] as [TrafficPolicy, (string | number)[]])];
  for (const [policy, at] of levels) {
    const ch = policy?.loadBalancer?.consistentHash;
    const table = ch?.maglev?.tableSize;
    if (table !== undefined && !isPrime(table)) out.push({ path: [...at, 'loadBalancer', 'consistentHash', 'maglev', 'tableSize'], message: `must be a prime number (Envoy's Maglev needs one), got ${table}; 65537 is the default` });
    for (const [ring, field] of [[ch?.minimumRingSize, ['minimumRingSize']], [ch?.ringHash?.minimumRingSize, ['ringHash', 'minimumRingSize']]] as const) {
      if (ring !== undefined && (ring < 1 || ring > MAX_RING_SIZE)) out.push({ path: [...at, 'loadBalancer', 'consistentHash', ...field], message: `must be between 1 and ${MAX_RING_SIZE}, got ${ring}` });
    }
    positiveDuration(policy?.outlierDetection?.interval, [...at, 'outlierDetection', 'interval'], out);
    positiveDuration(policy?.outlierDetection?.baseEjectionTime, [...at, 'outlierDetection', 'baseEjectionTime'], out);
    positiveDuration(policy?.connectionPool?.tcp?.connectTimeout, [...at, 'connectionPool', 'tcp', 'connectTimeout'], out);
  }
}

/** Checks beyond the schema for a DestinationRule. */
export function destinationRuleIssues(spec: DestinationRuleSpec): Issue[] {
  const out: Issue[] = [];
  trafficPolicyIssues(spec.trafficPolicy, ['trafficPolicy'], out);
  const names = new Map<string, number>();
  spec.subsets?.forEach((s, i) => {
    const first = names.get(s.name);
    if (first !== undefined) out.push({ path: ['subsets', i, 'name'], message: `"${s.name}" is already the name of subsets[${first}]; subset names must be unique` });
    else names.set(s.name, i);
    trafficPolicyIssues(s.trafficPolicy, ['subsets', i, 'trafficPolicy'], out);
  });
  return out;
}

/** Checks beyond the schema for a Gateway. */
export function gatewayIssues(spec: GatewaySpec): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const protocols = new Set(['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'TCP', 'TLS', 'MONGO', 'REDIS', 'MYSQL', 'GRPC-WEB']);
  const seen = new Map<string, number>();
  spec.servers.forEach((s, i) => {
    const protocol = s.port.protocol.toUpperCase();
    if (!protocols.has(protocol)) out.push({ path: ['servers', i, 'port', 'protocol'], message: `"${s.port.protocol}" is not one of HTTP, HTTPS, HTTP2, GRPC, TCP, TLS` });
    if ((protocol === 'HTTPS' || protocol === 'TLS') && !s.tls) out.push({ path: ['servers', i, 'tls'], message: `is required for protocol ${protocol}` });
    if (s.tls && (s.tls.mode === 'SIMPLE' || s.tls.mode === 'MUTUAL') && !s.tls.credentialName && !s.tls.serverCertificate) {
      out.push({ path: ['servers', i, 'tls', 'credentialName'], message: `is required for mode ${s.tls.mode} (or serverCertificate and privateKey)` });
    }
    for (const h of s.hosts) {
      const key = `${s.port.number}/${h}`;
      const at = seen.get(key);
      if (at !== undefined) out.push({ path: ['servers', i, 'hosts'], message: `port ${s.port.number} with host "${h}" is already served by servers[${at}]` });
      else seen.set(key, i);
    }
  });
  return out;
}
