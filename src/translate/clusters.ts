// CDS: outbound clusters per service port, inbound clusters for the proxy's own
// workload ports, and the passthrough and blackhole clusters.
import { serviceAccountsOf, type MeshService, type MeshServicePort, type MeshSnapshot } from '../model/mesh.js';
import type { WorkloadCertificates } from '../model/proxy.js';
import { destinationRuleFor } from './istio-config.js';
import { applyClusterPolicy, effectivePolicy, unlimitedThresholds, type EffectivePolicy } from './traffic-policy.js';
import { isHttp2Protocol, isHttpProtocol } from '../model/protocol.js';
import type { ProxyContext } from './proxy-context.js';
import { ADS_CONFIG_SOURCE } from './filters.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, inboundClusterName, istioConfigPath, outboundClusterName } from './names.js';
import { anyOf, byName, type EnvoyResource, type Json } from './types.js';
import { autoMtlsSocketMatches, istioMutualSocket, meshAlpn } from './mtls.js';
import { localityEndpoints, subsetServiceName } from './endpoints.js';
import { endpointKey } from '../model/mesh.js';
import { visibleFrom } from '../model/service.js';
import { protoDurationOf } from '../util/duration.js';
import { seesServicePort, type SidecarScope } from './sidecar-scope.js';
import { customDecision, extAuthzCluster } from './authorization.js';
import { jwksClusters } from './request-authentication.js';
import { downstreamProtocolOptions } from './sniffing.js';
import { proxyTelemetry } from './telemetry.js';
import type { TranslationMemo } from './memo.js';

/** The mesh config's connectTimeout, as Envoy's JSON writes durations (a DestinationRule's wins). */
function connectTimeout(snapshot: MeshSnapshot): string {
  return protoDurationOf(snapshot.meshConfig.connectTimeout) ?? '10s';
}

function http2Options(): Json {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': anyOf('envoy.extensions.upstreams.http.v3.HttpProtocolOptions', {
      explicit_http_config: { http2_protocol_options: {} },
    }),
  };
}

export interface ClusterOptions {
  /** The client has a workload certificate: mesh endpoints get mTLS. */
  mtls?: WorkloadCertificates | undefined;
  /** What the client's Sidecar imports: other service ports get no cluster. Unset: all. */
  scope?: SidecarScope | undefined;
  /** Clusters kept from the last config version, rebuilt only where an input changed. */
  memo?: TranslationMemo | undefined;
}

/** One outbound EDS cluster: a service port, or one subset of it. */
interface EdsClusterSpec {
  name: string;
  svc: MeshService;
  port: MeshServicePort;
  http2: boolean;
  policy: EffectivePolicy;
  subset?: string;
  /** The load assignment it reads, when not its own name (a subset of a client-side DestinationRule). */
  edsServiceName?: string;
  /** The DestinationRule that applies, if any (recorded in the cluster's metadata). */
  rule?: { namespace: string; name: string };
  /** The subset's labels (a DNS cluster of a ServiceEntry selects its endpoints by them). */
  subsetLabels?: Readonly<Record<string, string>>;
}

/**
 * `edsCluster` through the memo: the same cluster object while its service, rule, mesh
 * config, subset endpoints, the service's identities (for mTLS) and, for a ServiceEntry
 * resolved by DNS, its endpoints are the same.
 */
function memoizedEdsCluster(snapshot: MeshSnapshot, c: EdsClusterSpec, dr: unknown, clientNamespace: string, o: ClusterOptions): EnvoyResource {
  if (!o.memo) return edsCluster(snapshot, c, o);
  const mtlsKey = o.mtls ? `${o.mtls.source}:${o.mtls.trustDomain}` : '';
  const dnsEndpoints = c.svc.entry && c.svc.entry.resolution !== 'STATIC' ? snapshot.endpoints.get(endpointKey(c.svc.hostname, c.port.port)) : undefined;
  const deps = [c.svc, dr, snapshot.meshConfig, c.edsServiceName, o.mtls ? serviceAccountsOf(snapshot.endpoints, c.svc).join(',') : '', dnsEndpoints];
  return o.memo.get(`cl|${c.name}|${clientNamespace}|${mtlsKey}`, deps, () => edsCluster(snapshot, c, o));
}

function edsCluster(snapshot: MeshSnapshot, c: EdsClusterSpec, o: ClusterOptions): EnvoyResource {
  const { name, svc, port, http2, policy, subset, edsServiceName, rule } = c;
  // Circuit breakers and HTTP protocol options come from applyClusterPolicy (Istio's defaults without a policy).
  const body: Json = {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_CONFIG_SOURCE, service_name: edsServiceName ?? name },
    connect_timeout: connectTimeout(snapshot),
    lb_policy: 'ROUND_ROBIN',
    common_lb_config: {},
    metadata: {
      filter_metadata: {
        istio: { ...(rule ? { config: istioConfigPath('destination-rule', rule) } : {}), services: [{ host: svc.hostname, name: svc.name, namespace: svc.namespace }], ...(subset ? { subset } : {}) },
      },
    },
  };
  applyClusterPolicy(body, policy, http2, port.protocol === 'AUTO');
  if (svc.entry && svc.entry.resolution !== 'STATIC') entryDiscovery(snapshot, body, c);
  const mode = policy.tls?.mode;
  // Without a DestinationRule's TLS mode, auto mTLS (unless the mesh config turns it off:
  // plaintext), never to a ServiceEntry's MESH_EXTERNAL hosts, which are not in the mesh.
  const external = svc.entry?.location === 'MESH_EXTERNAL';
  if (o.mtls && (mode === 'ISTIO_MUTUAL' || (mode === undefined && !external && snapshot.meshConfig.enableAutoMtls))) {
    const socket = istioMutualSocket({ certificates: o.mtls, port: port.port, subset, hostname: svc.hostname, serviceAccounts: serviceAccountsOf(snapshot.endpoints, svc), subjectAltNames: svc.entry?.subjectAltNames, alpn: meshAlpn(http2 ? 'http2' : isHttpProtocol(port.protocol) ? 'http' : 'tcp') });
    // ISTIO_MUTUAL from a DestinationRule: always; otherwise (auto mTLS) only to endpoints that take it.
    if (mode === 'ISTIO_MUTUAL') body.transport_socket = socket;
    else body.transport_socket_matches = autoMtlsSocketMatches(socket);
  }
  return { name, body };
}

/**
 * How a ServiceEntry host's cluster finds its endpoints when not over EDS: resolution NONE
 * is the original destination (as PassthroughCluster, but for this host's port), DNS a
 * STRICT_DNS cluster of the endpoints (or of the host), DNS_ROUND_ROBIN a LOGICAL_DNS
 * cluster of the first one. Subsets keep the endpoints their labels select.
 */
function entryDiscovery(snapshot: MeshSnapshot, body: Json, c: EdsClusterSpec): void {
  delete body.eds_cluster_config;
  const resolution = c.svc.entry?.resolution;
  if (resolution === 'NONE') {
    body.type = 'ORIGINAL_DST';
    body.lb_policy = 'CLUSTER_PROVIDED';
    delete body.ring_hash_lb_config;
    delete body.maglev_lb_config;
    return;
  }
  let eps = snapshot.endpoints.get(endpointKey(c.svc.hostname, c.port.port)) ?? [];
  if (c.subset) {
    const labels = c.subsetLabels ?? {};
    eps = eps.filter((e) => Object.entries(labels).every(([k, v]) => e.labels[k] === v));
  }
  if (resolution === 'DNS_ROUND_ROBIN') eps = eps.slice(0, 1);
  body.type = resolution === 'DNS' ? 'STRICT_DNS' : 'LOGICAL_DNS';
  body.dns_lookup_family = 'V4_ONLY';
  body.respect_dns_ttl = true;
  body.load_assignment = { cluster_name: c.name, endpoints: localityEndpoints(eps) };
}

/**
 * Outbound clusters for every service port, and for every subset its DestinationRule
 * defines, with the rule's traffic policy; rules are looked up as seen from `clientNamespace`.
 */
export function outboundClusters(snapshot: MeshSnapshot, clientNamespace = '', o: ClusterOptions = {}): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const svc of snapshot.services) {
    if (!visibleFrom(svc, clientNamespace) || (o.scope && !svc.ports.some((p) => seesServicePort(o.scope, svc, p.port)))) continue;
    const dr = destinationRuleFor(snapshot.config, svc.hostname, clientNamespace, svc.namespace, snapshot.domain);
    for (const port of svc.ports) {
      if (port.protocol === 'UDP' || !seesServicePort(o.scope, svc, port.port)) continue;
      const http2 = isHttp2Protocol(port.protocol);
      out.push(memoizedEdsCluster(snapshot, { name: outboundClusterName(port.port, svc.hostname), svc, port, http2, policy: effectivePolicy(dr?.spec, port.port), rule: dr?.metadata }, dr, clientNamespace, o));
      for (const subset of dr?.spec.subsets ?? []) {
        const policy = effectivePolicy(dr?.spec, port.port, subset.name);
        // Endpoints of the subset as this rule selects them (the rule may be this client namespace's own).
        const edsServiceName = subsetServiceName(snapshot, svc, port.port, subset.name, clientNamespace);
        out.push(memoizedEdsCluster(snapshot, { name: outboundClusterName(port.port, svc.hostname, subset.name), svc, port, http2, policy, subset: subset.name, edsServiceName, rule: dr?.metadata, subsetLabels: subset.labels ?? {} }, dr, clientNamespace, o));
      }
    }
  }
  return out;
}

/**
 * Inbound connections leave from 127.0.0.6, the address the capture rules (istio-iptables) let through
 * untouched, so a sidecar's own hop to its application is not captured again as outbound traffic.
 */
const INBOUND_SOURCE = { source_address: { address: '127.0.0.6', port_value: 0 } };

function originalDstCluster(name: string, inbound: boolean, timeout: string): EnvoyResource {
  const body: Json = { name, type: 'ORIGINAL_DST', connect_timeout: timeout, lb_policy: 'CLUSTER_PROVIDED', circuit_breakers: { thresholds: [unlimitedThresholds()] } };
  if (inbound) body.upstream_bind_config = INBOUND_SOURCE;
  return { name, body };
}

export function builtinClusters(snapshot: MeshSnapshot): EnvoyResource[] {
  const timeout = connectTimeout(snapshot);
  return [
    originalDstCluster(PASSTHROUGH_CLUSTER, false, timeout),
    originalDstCluster(INBOUND_PASSTHROUGH_CLUSTER, true, timeout),
    { name: BLACKHOLE_CLUSTER, body: { name: BLACKHOLE_CLUSTER, type: 'STATIC', connect_timeout: timeout } },
  ];
}

/**
 * A Sidecar ingress listener's `defaultEndpoint`: a loopback address or unix socket is a
 * static endpoint; `0.0.0.0`/`[::]` is the workload's own address (the original destination)
 * at the endpoint's port.
 */
function defaultEndpointCluster(name: string, endpoint: string, timeout: string): EnvoyResource {
  const m = /^(127\.0\.0\.1|\[::1\]|0\.0\.0\.0|\[::\]):(\d+)$/.exec(endpoint);
  if (m && (m[1] === '0.0.0.0' || m[1] === '[::]')) {
    const res = originalDstCluster(name, true, timeout);
    res.body.original_dst_lb_config = { upstream_port_override: Number(m[2]) };
    return res;
  }
  const address = m ? { socket_address: { address: m[1]!.replace(/^\[|\]$/g, ''), port_value: Number(m[2]) } } : { pipe: { path: endpoint.slice('unix://'.length) } };
  return {
    name,
    body: {
      name,
      type: 'STATIC',
      connect_timeout: timeout,
      lb_policy: 'ROUND_ROBIN',
      circuit_breakers: { thresholds: [unlimitedThresholds()] },
      ...(m ? { upstream_bind_config: INBOUND_SOURCE } : {}),
      load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] },
    },
  };
}

export function inboundClusters(snapshot: MeshSnapshot, ctx: ProxyContext): EnvoyResource[] {
  const timeout = connectTimeout(snapshot);
  return ctx.inboundPorts.map((p) => {
    const name = inboundClusterName(p.targetPort);
    const res = p.endpoint ? defaultEndpointCluster(name, p.endpoint, timeout) : originalDstCluster(name, true, timeout);
    if (isHttp2Protocol(p.protocol)) res.body.typed_extension_protocol_options = http2Options();
    else if (p.protocol === 'AUTO') res.body.typed_extension_protocol_options = downstreamProtocolOptions();
    return res;
  });
}

/**
 * The outbound cluster of the ext_authz provider a proxy's CUSTOM policies ask, when its
 * Sidecar does not import that service port: the proxy needs it all the same.
 */
function extAuthzClusters(snapshot: MeshSnapshot, ctx: ProxyContext, shared: readonly EnvoyResource[]): EnvoyResource[] {
  const c = extAuthzCluster(customDecision(snapshot.config, ctx.proxy, snapshot));
  if (!c || shared.some((r) => r.name === c.name)) return [];
  const dr = destinationRuleFor(snapshot.config, c.service.hostname, ctx.proxy.namespace, c.service.namespace, snapshot.domain);
  const spec: EdsClusterSpec = { name: c.name, svc: c.service, port: c.port, http2: isHttp2Protocol(c.port.protocol), policy: effectivePolicy(dr?.spec, c.port.port), rule: dr?.metadata };
  return [edsCluster(snapshot, spec, { mtls: ctx.mtls })];
}

/**
 * The outbound clusters of the tracing collectors the proxy's telemetry sends spans to
 * (translate/telemetry.ts), where `shared` lacks them (a Sidecar that does not import them).
 */
function collectorClusters(snapshot: MeshSnapshot, ctx: ProxyContext, shared: readonly EnvoyResource[]): EnvoyResource[] {
  const collectors = proxyTelemetry(snapshot, ctx.proxy).collectors;
  if (collectors.length === 0) return [];
  const have = new Set(shared.map((c) => c.name));
  const out: EnvoyResource[] = [];
  for (const { svc, port } of collectors) {
    const name = outboundClusterName(port.port, svc.hostname);
    if (have.has(name)) continue;
    const dr = destinationRuleFor(snapshot.config, svc.hostname, ctx.proxy.namespace, svc.namespace, snapshot.domain);
    out.push(edsCluster(snapshot, { name, svc, port, http2: isHttp2Protocol(port.protocol), policy: effectivePolicy(dr?.spec, port.port), rule: dr?.metadata }, { mtls: ctx.mtls }));
  }
  return out;
}

/** Every cluster a proxy gets, sorted by name. */
export function clustersFor(snapshot: MeshSnapshot, ctx: ProxyContext, shared: readonly EnvoyResource[] = outboundClusters(snapshot, ctx.proxy.namespace, { mtls: ctx.mtls, scope: ctx.scope })): EnvoyResource[] {
  // Proxyless gRPC clients take EDS clusters only (a ServiceEntry's DNS or original-destination ones are left out).
  if (ctx.proxyless) return shared.filter((c) => c.body.type === 'EDS').sort(byName);
  const withAuthz = [...shared, ...extAuthzClusters(snapshot, ctx, shared)];
  const all = [...withAuthz, ...collectorClusters(snapshot, ctx, withAuthz), ...builtinClusters(snapshot), ...(ctx.proxy.type === 'sidecar' ? inboundClusters(snapshot, ctx) : [])];
  // RequestAuthentications' remote JWKS, fetched by Envoy (a mesh Service's through its own cluster).
  if (snapshot.config.requestAuthentications?.length) all.push(...jwksClusters(snapshot, ctx.proxy, new Set(all.map((c) => c.name)), connectTimeout(snapshot)));
  return all.sort(byName);
}
