// Hand-framed xDS responses. Each resource is encoded once (as an Any, and as a delta
// Resource) and responses are assembled from those bytes, so a push to many proxies
// copies bytes instead of re-encoding messages. Field numbers come from the loaded
// protos, not from literals.
import protobuf from 'protobufjs';
import { messageType } from './protos.js';

function fieldIds(typeName: string, names: readonly string[]): Record<string, number> {
  const t = messageType(typeName);
  const out: Record<string, number> = {};
  for (const n of names) {
    const f = t.fields[n];
    if (!f) throw new Error(`${typeName} has no field ${n}`);
    out[n] = f.id;
  }
  return out;
}

let ids:
  | {
      any: Record<string, number>;
      response: Record<string, number>;
      delta: Record<string, number>;
      resource: Record<string, number>;
      controlPlane: Record<string, number>;
    }
  | undefined;

function fields(): NonNullable<typeof ids> {
  ids ??= {
    any: fieldIds('google.protobuf.Any', ['type_url', 'value']),
    response: fieldIds('envoy.service.discovery.v3.DiscoveryResponse', ['version_info', 'resources', 'type_url', 'nonce', 'control_plane']),
    delta: fieldIds('envoy.service.discovery.v3.DeltaDiscoveryResponse', ['system_version_info', 'resources', 'type_url', 'removed_resources', 'nonce', 'control_plane']),
    resource: fieldIds('envoy.service.discovery.v3.Resource', ['name', 'version', 'resource']),
    controlPlane: fieldIds('envoy.config.core.v3.ControlPlane', ['identifier']),
  };
  return ids;
}

const LEN = 2;
const tag = (id: number): number => (id << 3) | LEN;

export function encodeAny(typeUrl: string, value: Uint8Array): Buffer {
  const f = fields().any;
  const w = protobuf.Writer.create();
  w.uint32(tag(f.type_url!)).string(typeUrl);
  w.uint32(tag(f.value!)).bytes(value);
  return Buffer.from(w.finish());
}

/** A delta `Resource{name, version, resource: Any}` from an already-encoded Any. */
export function encodeDeltaResource(name: string, version: string, anyBytes: Uint8Array): Buffer {
  const f = fields().resource;
  const w = protobuf.Writer.create();
  w.uint32(tag(f.version!)).string(version);
  w.uint32(tag(f.resource!)).bytes(anyBytes);
  w.uint32(tag(f.name!)).string(name);
  return Buffer.from(w.finish());
}

function controlPlane(identifier: string): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32(tag(fields().controlPlane.identifier!)).string(identifier);
  return w.finish();
}

export interface SotwResponse {
  versionInfo: string;
  typeUrl: string;
  nonce: string;
  /** Encoded Any messages. */
  resources: readonly Uint8Array[];
  controlPlane?: string;
}

export function encodeDiscoveryResponse(r: SotwResponse): Buffer {
  const f = fields().response;
  const w = protobuf.Writer.create();
  w.uint32(tag(f.version_info!)).string(r.versionInfo);
  for (const res of r.resources) w.uint32(tag(f.resources!)).bytes(res);
  w.uint32(tag(f.type_url!)).string(r.typeUrl);
  w.uint32(tag(f.nonce!)).string(r.nonce);
  if (r.controlPlane) w.uint32(tag(f.control_plane!)).bytes(controlPlane(r.controlPlane));
  return Buffer.from(w.finish());
}

export interface DeltaResponse {
  systemVersionInfo: string;
  typeUrl: string;
  nonce: string;
  /** Encoded delta Resource messages. */
  resources: readonly Uint8Array[];
  removed: readonly string[];
  controlPlane?: string;
}

export function encodeDeltaDiscoveryResponse(r: DeltaResponse): Buffer {
  const f = fields().delta;
  const w = protobuf.Writer.create();
  w.uint32(tag(f.system_version_info!)).string(r.systemVersionInfo);
  for (const res of r.resources) w.uint32(tag(f.resources!)).bytes(res);
  w.uint32(tag(f.type_url!)).string(r.typeUrl);
  for (const name of r.removed) w.uint32(tag(f.removed_resources!)).string(name);
  w.uint32(tag(f.nonce!)).string(r.nonce);
  if (r.controlPlane) w.uint32(tag(f.control_plane!)).bytes(controlPlane(r.controlPlane));
  return Buffer.from(w.finish());
}

export interface DecodedStatus {
  code: number;
  message: string;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; cluster?: string; metadata?: unknown; user_agent_name?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: DecodedStatus;
}

export interface DeltaDiscoveryRequest {
  node?: { id?: string; cluster?: string; metadata?: unknown; user_agent_name?: string };
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: DecodedStatus;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: false, arrays: true, objects: true };

export function decodeDiscoveryRequest(buf: Uint8Array): DiscoveryRequest {
  const t = messageType('envoy.service.discovery.v3.DiscoveryRequest');
  return t.toObject(t.decode(buf), TO_OBJECT) as DiscoveryRequest;
}

export function decodeDeltaDiscoveryRequest(buf: Uint8Array): DeltaDiscoveryRequest {
  const t = messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  return t.toObject(t.decode(buf), TO_OBJECT) as DeltaDiscoveryRequest;
}

export function encodeMessage(typeName: string, obj: Record<string, unknown>): Buffer {
  const t = messageType(typeName);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

export function decodeMessage<T>(typeName: string, buf: Uint8Array): T {
  const t = messageType(typeName);
  return t.toObject(t.decode(buf), TO_OBJECT) as T;
}
