// Istio's debug types over xDS, as istiod answers them to istioctl: `istio.io/debug/syncz`
// (per connected proxy a CSDS ClientConfig with each type's sync status) and
// `istio.io/debug/config_dump` (what meshd sent one proxy, as admin config dump sections).
// Only a caller with a verified identity (a service-account token on the stream) is
// answered; a caller from meshd's own namespace sees every proxy, any other caller only the
// proxies of its namespace (istiod's rule). Private keys are never in a dump.
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { TypeUrl } from '../translate/types.js';
import type { WorkloadIdentity } from '../model/proxy.js';
import type { Connection, Protocol, ProxyConfigSource } from './connection.js';
import { encodeEnvoyJson } from './envoy-json.js';
import { sentResources, type DumpedResource } from './proxy-dump.js';
import { newNonce } from './shared-responses.js';
import { encodeAny, encodeDeltaDiscoveryResponse, encodeDeltaResource, encodeDiscoveryResponse, encodeMessage, fieldIds, frameDeltaResource, frameSotwResource } from './wire.js';

export const DEBUG_TYPE_PREFIX = 'istio.io/debug/';
export const DebugType = {
  Syncz: 'istio.io/debug/syncz',
  ConfigDump: 'istio.io/debug/config_dump',
} as const;

/** Bounds on what one stream may ask. */
export const MAX_DEBUG_REQUESTS_PER_STREAM = 64;
export const MAX_DEBUG_NAMES = 16;
export const MAX_DEBUG_NAME_LENGTH = 1024;

const CLIENT_CONFIG = 'envoy.service.status.v3.ClientConfig';
const TYPE_PREFIX = 'type.googleapis.com/';

export interface DebugAnswerContext {
  /** The stream's verified identity, if it proved one. */
  caller: WorkloadIdentity | undefined;
  /** meshd's namespace: its callers may see every proxy. */
  systemNamespace: string;
  connections: Iterable<Connection>;
  config: Pick<ProxyConfigSource, 'resourcesFor'>;
  /** The response's control_plane identifier (istiod's JSON shape). */
  controlPlane: string;
  now?: number;
}

export type DebugOutcome = { kind: 'answer'; bytes: Buffer; nonce: string } | { kind: 'refuse'; code: grpc.status; details: string };

/** What istiod's CSDS status says of one type on one stream. */
export function configStatus(conn: Connection, type: TypeUrl): 'SYNCED' | 'NOT_SENT' | 'STALE' | 'ERROR' {
  const d = conn.watches.get(type)?.delivery;
  if (!d || d.sentResponses === 0) return 'NOT_SENT';
  if (d.nack && d.nack.nonce === d.lastNonce) return 'ERROR';
  return d.ackedNonce === d.lastNonce ? 'SYNCED' : 'STALE';
}

function timestamp(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function visible(conn: Connection, restrictTo: string | undefined): boolean {
  return restrictTo === undefined || conn.ctx.proxy.namespace === restrictTo;
}

function istioProxyId(conn: Connection): string {
  return `${conn.proxy.podName}.${conn.ctx.proxy.namespace}`;
}

/** One proxy's ClientConfig, as istiod's syncz writes it. */
function clientConfig(conn: Connection): Buffer {
  const p = conn.proxy;
  const configs = [...conn.watches.values()]
    .filter((w) => w.subscription.requested)
    .map((w) => {
      const d = w.delivery;
      const status = configStatus(conn, w.typeUrl);
      return {
        type_url: w.typeUrl,
        config_status: status,
        ...(d.lastSentAt ? { last_updated: timestamp(d.lastSentAt) } : {}),
        ...(status === 'ERROR' && d.nack ? { error_state: { last_update_attempt: timestamp(d.lastSentAt), details: d.nack.message } } : {}),
      };
    })
    .sort((a, b) => (a.type_url < b.type_url ? -1 : 1));
  const meta: Record<string, { stringValue: string }> = {
    CLUSTER_ID: { stringValue: p.clusterId },
    NAMESPACE: { stringValue: conn.ctx.proxy.namespace },
    ISTIO_VERSION: { stringValue: p.istioVersion },
  };
  // istiod's proxy ID: `<pod>.<namespace>` (istioctl's NAME column), not the whole node id.
  return encodeMessage(CLIENT_CONFIG, { node: { id: istioProxyId(conn), metadata: { fields: meta } }, generic_xds_configs: configs });
}

/** The proxy a config_dump name means: its node id, `<pod>.<namespace>` (istioctl's form) or its connection id. */
function findProxy(connections: Iterable<Connection>, name: string): Connection | undefined {
  let found: Connection | undefined;
  for (const c of connections) {
    if (c.proxy.id === name || c.id === name || `${c.proxy.podName}.${c.ctx.proxy.namespace}` === name) {
      if (!found || c.connectedAt > found.connectedAt) found = c;
    }
  }
  return found;
}

let dumpIds: Record<string, Record<string, number>> | undefined;
function dumpFields(): Record<string, Record<string, number>> {
  dumpIds ??= {
    clusters: fieldIds('envoy.admin.v3.ClustersConfigDump', ['dynamic_active_clusters']),
    cluster: fieldIds('envoy.admin.v3.ClustersConfigDump.DynamicCluster', ['version_info', 'cluster', 'last_updated']),
    listeners: fieldIds('envoy.admin.v3.ListenersConfigDump', ['dynamic_listeners']),
    listener: fieldIds('envoy.admin.v3.ListenersConfigDump.DynamicListener', ['name', 'active_state']),
    listenerState: fieldIds('envoy.admin.v3.ListenersConfigDump.DynamicListenerState', ['version_info', 'listener', 'last_updated']),
    routes: fieldIds('envoy.admin.v3.RoutesConfigDump', ['dynamic_route_configs']),
    route: fieldIds('envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig', ['version_info', 'route_config', 'last_updated']),
    secrets: fieldIds('envoy.admin.v3.SecretsConfigDump', ['dynamic_active_secrets']),
    secret: fieldIds('envoy.admin.v3.SecretsConfigDump.DynamicSecret', ['name', 'version_info', 'secret', 'last_updated']),
  };
  return dumpIds;
}

const LEN = 2;
function bytesField(w: protobuf.Writer, id: number, value: Uint8Array): void {
  w.uint32((id << 3) | LEN).bytes(value);
}
function stringField(w: protobuf.Writer, id: number, value: string): void {
  w.uint32((id << 3) | LEN).string(value);
}

function resourceAny(type: TypeUrl, r: DumpedResource): Uint8Array {
  if (r.any) return r.any;
  const typeName = type.slice(TYPE_PREFIX.length);
  return encodeAny(type, encodeEnvoyJson(typeName, r.body, `${typeName}[${r.name}]`));
}

/**
 * A config dump section: `outer` message whose repeated `listField` holds one entry per
 * resource, each built by `entry`.
 */
function section(typeName: string, listField: number, resources: DumpedResource[], entry: (w: protobuf.Writer, r: DumpedResource) => void): Buffer {
  const outer = protobuf.Writer.create();
  for (const r of resources) {
    const w = protobuf.Writer.create();
    entry(w, r);
    bytesField(outer, listField, w.finish());
  }
  return encodeAny(TYPE_PREFIX + typeName, outer.finish());
}

/** The admin config dump sections istiod answers istio.io/debug/config_dump with (no endpoints, as istiod). */
export function configDumpSections(conn: Connection, config: Pick<ProxyConfigSource, 'resourcesFor'>, sentAtMs: (type: TypeUrl) => number): Buffer[] {
  const f = dumpFields();
  const sent = sentResources(conn, config);
  const of = (t: TypeUrl): DumpedResource[] => sent.get(t) ?? [];
  const ts = (t: TypeUrl): Uint8Array => encodeMessage('google.protobuf.Timestamp', timestamp(sentAtMs(t)));
  // An entry of {version_info, <resource>, last_updated}.
  const versioned =
    (ids: Record<string, number>, resourceField: string, t: TypeUrl) =>
    (w: protobuf.Writer, r: DumpedResource): void => {
      stringField(w, ids.version_info!, r.version);
      bytesField(w, ids[resourceField]!, resourceAny(t, r));
      bytesField(w, ids.last_updated!, ts(t));
    };
  return [
    section('envoy.admin.v3.ClustersConfigDump', f.clusters!.dynamic_active_clusters!, of(TypeUrl.Cluster), versioned(f.cluster!, 'cluster', TypeUrl.Cluster)),
    section('envoy.admin.v3.ListenersConfigDump', f.listeners!.dynamic_listeners!, of(TypeUrl.Listener), (w, r) => {
      stringField(w, f.listener!.name!, r.name);
      const state = protobuf.Writer.create();
      stringField(state, f.listenerState!.version_info!, r.version);
      bytesField(state, f.listenerState!.listener!, resourceAny(TypeUrl.Listener, r));
      bytesField(state, f.listenerState!.last_updated!, ts(TypeUrl.Listener));
      bytesField(w, f.listener!.active_state!, state.finish());
    }),
    section('envoy.admin.v3.RoutesConfigDump', f.routes!.dynamic_route_configs!, of(TypeUrl.RouteConfiguration), versioned(f.route!, 'route_config', TypeUrl.RouteConfiguration)),
    section('envoy.admin.v3.SecretsConfigDump', f.secrets!.dynamic_active_secrets!, of(TypeUrl.Secret), (w, r) => {
      stringField(w, f.secret!.name!, r.name);
      stringField(w, f.secret!.version_info!, r.version);
      bytesField(w, f.secret!.secret!, resourceAny(TypeUrl.Secret, r));
      bytesField(w, f.secret!.last_updated!, ts(TypeUrl.Secret));
    }),
  ];
}

/** A response carrying these Anys (named, for delta). */
function response(protocol: Protocol, typeUrl: string, resources: { name: string; any: Uint8Array }[], controlPlane: string): { bytes: Buffer; nonce: string } {
  const nonce = newNonce();
  const bytes =
    protocol === 'delta'
      ? encodeDeltaDiscoveryResponse({ systemVersionInfo: '', typeUrl, nonce, framedResources: resources.map((r) => frameDeltaResource(encodeDeltaResource(r.name, '', r.any))), removed: [], controlPlane })
      : encodeDiscoveryResponse({ versionInfo: '', typeUrl, nonce, framedResources: resources.map((r) => frameSotwResource(r.any)), controlPlane });
  return { bytes, nonce };
}

/** Why `names` cannot be a debug request's resource names, or undefined. */
function namesProblem(names: readonly string[]): string | undefined {
  if (names.length > MAX_DEBUG_NAMES) return `${names.length} resource names; meshd accepts at most ${MAX_DEBUG_NAMES} in a debug request`;
  const long = names.find((n) => n.length > MAX_DEBUG_NAME_LENGTH);
  if (long !== undefined) return `a resource name of ${long.length} characters; meshd accepts at most ${MAX_DEBUG_NAME_LENGTH}`;
  return undefined;
}

/** Answers one request for an `istio.io/debug/*` type (after the caller's checks). */
export function answerDebugRequest(typeUrl: string, names: readonly string[], protocol: Protocol, ctx: DebugAnswerContext): DebugOutcome {
  if (!ctx.caller) {
    return {
      kind: 'refuse',
      code: grpc.status.UNAUTHENTICATED,
      details: `${typeUrl} needs a verified caller: send a service-account token (audience istio-ca) as "authorization: Bearer <token>" (istioctl does, unless --plaintext); or read /debug/syncz on meshd's monitoring port`,
    };
  }
  const problem = namesProblem(names);
  if (problem) return { kind: 'refuse', code: grpc.status.INVALID_ARGUMENT, details: `${typeUrl}: ${problem}` };
  // Callers from meshd's namespace see every proxy; others only those of their own namespace.
  const restrictTo = ctx.caller.namespace === ctx.systemNamespace ? undefined : ctx.caller.namespace;
  let resources: { name: string; any: Uint8Array }[] = [];
  if (typeUrl === DebugType.Syncz) {
    resources = [...ctx.connections]
      .filter((c) => !c.closed && visible(c, restrictTo))
      .sort((a, b) => (a.proxy.id < b.proxy.id ? -1 : a.proxy.id > b.proxy.id ? 1 : 0))
      .map((c) => ({ name: istioProxyId(c), any: encodeAny(TYPE_PREFIX + CLIENT_CONFIG, clientConfig(c)) }));
  } else if (typeUrl === DebugType.ConfigDump && names.length === 1) {
    // As istiod: a proxy that is not connected here (or not the caller's to see) gets an empty answer.
    const conn = findProxy(ctx.connections, names[0]!);
    if (conn && !conn.closed && visible(conn, restrictTo)) {
      const sentAt = (t: TypeUrl): number => conn.watches.get(t)?.delivery.lastSentAt || conn.connectedAt;
      resources = configDumpSections(conn, ctx.config, sentAt).map((any) => ({ name: '', any }));
    }
  }
  // Other debug types, and malformed config_dump requests, get an empty answer (as istiod).
  return { kind: 'answer', ...response(protocol, typeUrl, resources, ctx.controlPlane) };
}

/** Per stream: how many debug requests it made, the last nonce per type (so ACKs are not answered). */
export class DebugStreamState {
  requests = 0;
  writing = false;
  private readonly lastNonce = new Map<string, string>();

  /** An ACK or NACK of our last answer of this type: nothing to answer. */
  isReply(typeUrl: string, nonce: string): boolean {
    return nonce !== '' && this.lastNonce.get(typeUrl) === nonce;
  }

  answered(typeUrl: string, nonce: string): void {
    if (this.lastNonce.size < 8 || this.lastNonce.has(typeUrl)) this.lastNonce.set(typeUrl, nonce);
  }
}
