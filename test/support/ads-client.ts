// A raw xDS client for protocol tests: one ADS stream (state-of-the-world or delta)
// over @grpc/grpc-js with byte passthrough, requests and responses encoded and
// decoded with the Envoy protos meshd itself loads.
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { messageType, TYPE_URL_PREFIX } from '../../src/xds/protos.js';
import { TypeUrl } from '../../src/translate/types.js';

export { TypeUrl };

const ADS_SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService/';

/** protobufjs conversion options: snake_case names as loaded, enums as names, empty repeated fields as []. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: false, arrays: true, objects: true };

/** A google.protobuf.Struct in protobufjs object form (camelCase Value keys). */
export interface PbStruct {
  fields: Record<string, PbValue>;
}
export type PbValue =
  | { nullValue: 'NULL_VALUE' }
  | { boolValue: boolean }
  | { numberValue: number }
  | { stringValue: string }
  | { listValue: { values: PbValue[] } }
  | { structValue: PbStruct };

/** Converts plain JSON into protobufjs' object form of google.protobuf.Struct. */
export function toStruct(obj: Record<string, unknown>): PbStruct {
  const value = (v: unknown): PbValue => {
    if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
    if (typeof v === 'boolean') return { boolValue: v };
    if (typeof v === 'number') return { numberValue: v };
    if (typeof v === 'string') return { stringValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
    if (typeof v === 'object') return { structValue: toStruct(v as Record<string, unknown>) };
    return { stringValue: String(v) };
  };
  const fields: Record<string, PbValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = value(v);
  return { fields };
}

export interface NodeObject {
  id: string;
  cluster?: string;
  metadata?: PbStruct;
  user_agent_name?: string;
}

export interface IstioNodeOptions {
  type?: 'sidecar' | 'router';
  ip?: string;
  pod?: string;
  namespace?: string;
  domain?: string;
  labels?: Record<string, string>;
  /** Extra metadata fields (plain JSON); merged over NAMESPACE, LABELS, INSTANCE_IPS. */
  metadata?: Record<string, unknown>;
}

/** The node id as Istio writes it: `<type>~<ip>~<pod>.<ns>~<ns>.svc.<domain>`. */
export function istioNodeId(o: IstioNodeOptions = {}): string {
  const ns = o.namespace ?? 'default';
  return `${o.type ?? 'sidecar'}~${o.ip ?? '10.0.0.1'}~${o.pod ?? 'app-1'}.${ns}~${ns}.svc.${o.domain ?? 'cluster.local'}`;
}

/** A node as an Istio sidecar sends it; defaults to `sidecar~10.0.0.1~app-1.default~default.svc.cluster.local`. */
export function istioNode(o: IstioNodeOptions = {}): NodeObject {
  const ns = o.namespace ?? 'default';
  const meta: Record<string, unknown> = {
    NAMESPACE: ns,
    INSTANCE_IPS: o.ip ?? '10.0.0.1',
    ...(o.labels ? { LABELS: o.labels } : {}),
    ...(o.metadata ?? {}),
  };
  return { id: istioNodeId(o), cluster: `${o.pod ?? 'app'}.${ns}`, user_agent_name: 'envoy', metadata: toStruct(meta) };
}

export interface RpcStatusObject {
  code?: number;
  message?: string;
}

/** A state-of-the-world DiscoveryRequest in protobufjs object form. */
export interface DiscoveryRequestObject {
  version_info?: string;
  node?: NodeObject;
  resource_names?: string[];
  type_url: string;
  response_nonce?: string;
  error_detail?: RpcStatusObject;
}

/** A DeltaDiscoveryRequest in protobufjs object form. */
export interface DeltaDiscoveryRequestObject {
  node?: NodeObject;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: RpcStatusObject;
}

export type Body = Record<string, unknown>;

export interface DecodedResource<T = Body> {
  name: string;
  /** Delta only: the resource's version. */
  version?: string;
  type_url: string;
  body: T;
}

export interface DecodedResponse {
  protocol: 'sotw' | 'delta';
  /** SotW version ('' in delta). */
  version_info: string;
  /** Delta system version ('' in SotW). */
  system_version_info: string;
  nonce: string;
  type_url: string;
  /** Delta only ([] in SotW). */
  removed_resources: string[];
  resources: DecodedResource[];
  control_plane?: string;
  /** When the client received it (ms since epoch). */
  receivedAt: number;
}

function bodyName(typeUrl: string, body: Body): string {
  const v = typeUrl === TypeUrl.ClusterLoadAssignment ? body.cluster_name : body.name;
  return typeof v === 'string' ? v : '';
}

interface AnyObject {
  type_url?: string;
  value?: Uint8Array;
}

/** Decodes a google.protobuf.Any holding an Envoy resource. */
export function decodeAny(any: AnyObject): { type_url: string; body: Body } {
  const typeUrl = any.type_url ?? '';
  if (!typeUrl.startsWith(TYPE_URL_PREFIX)) throw new Error(`resource has unexpected type_url "${typeUrl}"`);
  const t = messageType(typeUrl.slice(TYPE_URL_PREFIX.length));
  const body = t.toObject(t.decode(any.value ?? new Uint8Array()), TO_OBJECT) as Body;
  return { type_url: typeUrl, body };
}

export function decodeSotwResponse(buf: Uint8Array): DecodedResponse {
  const t = messageType('envoy.service.discovery.v3.DiscoveryResponse');
  const r = t.toObject(t.decode(buf), TO_OBJECT) as {
    version_info?: string;
    resources?: AnyObject[];
    type_url?: string;
    nonce?: string;
    control_plane?: { identifier?: string };
  };
  return {
    protocol: 'sotw',
    version_info: r.version_info ?? '',
    system_version_info: '',
    nonce: r.nonce ?? '',
    type_url: r.type_url ?? '',
    removed_resources: [],
    resources: (r.resources ?? []).map((a) => {
      const d = decodeAny(a);
      return { name: bodyName(d.type_url, d.body), type_url: d.type_url, body: d.body };
    }),
    ...(r.control_plane?.identifier !== undefined ? { control_plane: r.control_plane.identifier } : {}),
    receivedAt: Date.now(),
  };
}

export function decodeDeltaResponse(buf: Uint8Array): DecodedResponse {
  const t = messageType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
  const r = t.toObject(t.decode(buf), TO_OBJECT) as {
    system_version_info?: string;
    resources?: { name?: string; version?: string; resource?: AnyObject }[];
    type_url?: string;
    removed_resources?: string[];
    nonce?: string;
    control_plane?: { identifier?: string };
  };
  return {
    protocol: 'delta',
    version_info: '',
    system_version_info: r.system_version_info ?? '',
    nonce: r.nonce ?? '',
    type_url: r.type_url ?? '',
    removed_resources: r.removed_resources ?? [],
    resources: (r.resources ?? []).map((res) => {
      const d = res.resource ? decodeAny(res.resource) : { type_url: r.type_url ?? '', body: {} };
      return { name: res.name ?? bodyName(d.type_url, d.body), version: res.version ?? '', type_url: d.type_url, body: d.body };
    }),
    ...(r.control_plane?.identifier !== undefined ? { control_plane: r.control_plane.identifier } : {}),
    receivedAt: Date.now(),
  };
}

export function encodeRequest(typeName: string, obj: object): Buffer {
  const t = messageType(typeName);
  // fromObject drops unknown keys silently; a misspelt field in a test must not.
  for (const key of Object.keys(obj)) if (!t.fields[key]) throw new Error(`${typeName} has no field "${key}"`);
  return Buffer.from(t.encode(t.fromObject(obj as Record<string, unknown>)).finish());
}

export interface AdsStream<Req> {
  readonly protocol: 'sotw' | 'delta';
  /** Encodes and sends one request. */
  send(req: Req): void;
  /** The next response not yet taken; rejects after `timeoutMs` or when the stream ends first. */
  next(timeoutMs?: number): Promise<DecodedResponse>;
  /** Resolves if nothing arrives for `ms`; rejects (describing it) if a response does. */
  expectNoResponse(ms?: number): Promise<void>;
  /** Responses received and not yet taken by next(). */
  readonly pending: readonly DecodedResponse[];
  /** Every response received so far. */
  readonly received: readonly DecodedResponse[];
  /** The gRPC status once the stream has ended. */
  readonly status: grpc.StatusObject | undefined;
  /** Resolves with the final status; rejects after `timeoutMs` if the stream is still open. */
  ended(timeoutMs?: number): Promise<grpc.StatusObject>;
  /** Half-closes, waits briefly for the server to finish, then cancels; closes the channel. */
  close(): Promise<void>;
}

export type SotwStream = AdsStream<DiscoveryRequestObject>;
export type DeltaStream = AdsStream<DeltaDiscoveryRequestObject>;

function describeResponse(r: DecodedResponse): string {
  const names = r.resources.map((x) => x.name);
  const shown = names.length > 8 ? [...names.slice(0, 8), `... ${names.length - 8} more`] : names;
  return `${r.type_url} nonce=${r.nonce} version=${r.version_info || r.system_version_info} resources=[${shown.join(', ')}]${r.removed_resources.length ? ` removed=[${r.removed_resources.join(', ')}]` : ''}`;
}

function describeStatus(s: grpc.StatusObject): string {
  return `${grpc.status[s.code] ?? s.code}: ${s.details}`;
}

/** How to reach the server: plaintext unless credentials are given (e.g. TLS to meshd's 15012). */
export interface AdsChannelOptions {
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** Call metadata, e.g. `authorization: Bearer <token>`. */
  metadata?: Record<string, string>;
}

export function connectAds(address: string, opts: { delta: true } & AdsChannelOptions): DeltaStream;
export function connectAds(address: string, opts?: { delta?: false } & AdsChannelOptions): SotwStream;
export function connectAds(address: string, opts?: { delta?: boolean } & AdsChannelOptions): SotwStream | DeltaStream;
/** Opens one ADS stream to `address` (host:port). */
export function connectAds(address: string, opts: { delta?: boolean } & AdsChannelOptions = {}): SotwStream | DeltaStream {
  const delta = opts.delta === true;
  const protocol = delta ? 'delta' : 'sotw';
  const client = new grpc.Client(address, opts.credentials ?? grpc.credentials.createInsecure(), opts.channelOptions);
  const passthrough = (b: Buffer): Buffer => b;
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(ADS_SERVICE + (delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources'), passthrough, passthrough, md);
  const requestType = delta ? 'envoy.service.discovery.v3.DeltaDiscoveryRequest' : 'envoy.service.discovery.v3.DiscoveryRequest';
  const decode = delta ? decodeDeltaResponse : decodeSotwResponse;

  const queue: DecodedResponse[] = [];
  const received: DecodedResponse[] = [];
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  let status: grpc.StatusObject | undefined;
  let decodeError: Error | undefined;

  call.on('data', (buf: Buffer) => {
    try {
      const r = decode(buf);
      queue.push(r);
      received.push(r);
    } catch (err) {
      decodeError ??= new Error(`cannot decode ${delta ? 'DeltaDiscoveryResponse' : 'DiscoveryResponse'}: ${String(err)}`);
    }
    wake();
  });
  // Errors also arrive as a status; the listener keeps an error from being unhandled.
  call.on('error', () => undefined);
  call.on('status', (s: grpc.StatusObject) => {
    status = s;
    wake();
  });

  const wait = <T>(timeoutMs: number, check: () => T | undefined, onTimeout: () => Error): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const attempt = (): boolean => {
        try {
          const v = check();
          if (v === undefined) return false;
          resolve(v);
        } catch (err) {
          reject(err as Error);
        }
        return true;
      };
      if (attempt()) return;
      const waiter = (): void => {
        if (attempt()) cleanup();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(onTimeout());
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(waiter);
      };
      waiters.add(waiter);
    });

  const stream: AdsStream<object> = {
    protocol,
    send(req: object): void {
      if (status) throw new Error(`cannot send on an ended ${protocol} ADS stream (${describeStatus(status)})`);
      call.write(encodeRequest(requestType, req));
    },
    next(timeoutMs = 3000): Promise<DecodedResponse> {
      return wait(
        timeoutMs,
        () => {
          if (decodeError) throw decodeError;
          const r = queue.shift();
          if (r) return r;
          if (status) throw new Error(`${protocol} ADS stream ended (${describeStatus(status)}) while waiting for a response`);
          return undefined;
        },
        () => new Error(`no ${protocol} ADS response within ${timeoutMs}ms (${received.length} received so far${received.length ? `, last: ${describeResponse(received[received.length - 1]!)}` : ''})`),
      );
    },
    async expectNoResponse(ms = 1000): Promise<void> {
      if (queue.length) throw new Error(`expected no ${protocol} ADS response, but one is queued: ${describeResponse(queue[0]!)}`);
      await new Promise((r) => setTimeout(r, ms));
      if (decodeError) throw decodeError;
      if (queue.length) throw new Error(`expected no ${protocol} ADS response for ${ms}ms, got ${queue.length}: ${queue.map(describeResponse).join('; ')}`);
    },
    get pending() {
      return queue;
    },
    get received() {
      return received;
    },
    get status() {
      return status;
    },
    ended(timeoutMs = 3000): Promise<grpc.StatusObject> {
      return wait(
        timeoutMs,
        () => status,
        () => new Error(`${protocol} ADS stream still open after ${timeoutMs}ms`),
      );
    },
    async close(): Promise<void> {
      if (!status) {
        call.end();
        await stream.ended(1000).catch(() => call.cancel());
      }
      client.close();
    },
  };
  return stream as SotwStream | DeltaStream;
}

/** The names of a response's resources, sorted. */
export function resourceNames(r: DecodedResponse): string[] {
  return r.resources.map((x) => x.name).sort();
}

/** A SotW ACK of `r`: same type, version and nonce, with the given subscription. */
export function sotwAck(r: DecodedResponse, resourceNamesList: string[] = []): DiscoveryRequestObject {
  return { type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: resourceNamesList };
}

/** A delta ACK of `r`. */
export function deltaAck(r: DecodedResponse): DeltaDiscoveryRequestObject {
  return { type_url: r.type_url, response_nonce: r.nonce };
}
