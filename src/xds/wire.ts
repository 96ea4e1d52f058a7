// Hand-framed xDS responses. Each resource is encoded once (as an Any, and as a delta
// Resource) and responses are assembled from those bytes, so a push to many proxies
// copies bytes instead of re-encoding messages. Field numbers come from the loaded
// protos, not from literals.
import protobuf from 'protobufjs';
import { messageType } from './protos.js';

/** Field numbers of `names` in a message type, looked up in the loaded protos. */
export function fieldIds(typeName: string, names: readonly string[]): Record<string, number> {
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
  return w.finish() as Buffer;
}

/** A delta `Resource{name, version, resource: Any}` from an already-encoded Any. */
export function encodeDeltaResource(name: string, version: string, anyBytes: Uint8Array): Buffer {
  const f = fields().resource;
  const w = protobuf.Writer.create();
  w.uint32(tag(f.version!)).string(version);
  w.uint32(tag(f.resource!)).bytes(anyBytes);
  w.uint32(tag(f.name!)).string(name);
  return w.finish() as Buffer;
}

function controlPlane(identifier: string): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32(tag(fields().controlPlane.identifier!)).string(identifier);
  return w.finish();
}

/** Length-delimited field bytes: tag, length, payload. */
function lengthDelimited(fieldId: number, payload: Uint8Array): Buffer {
  const w = protobuf.Writer.create();
  w.uint32(tag(fieldId)).uint32(payload.length);
  const head = w.finish();
  const out = Buffer.allocUnsafe(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

function stringField(fieldId: number, value: string): Buffer {
  return lengthDelimited(fieldId, Buffer.from(value, 'utf8'));
}

/** An encoded Any as the `resources` field of a DiscoveryResponse, ready to concatenate. */
export function frameSotwResource(anyBytes: Uint8Array): Buffer {
  return lengthDelimited(fields().response.resources!, anyBytes);
}

/** An encoded delta Resource as the `resources` field of a DeltaDiscoveryResponse. */
export function frameDeltaResource(resourceBytes: Uint8Array): Buffer {
  return lengthDelimited(fields().delta.resources!, resourceBytes);
}

export interface SotwResponse {
  versionInfo: string;
  typeUrl: string;
  nonce: string;
  /** Resources already framed by frameSotwResource, or one block of them. */
  framedResources: readonly Buffer[];
  controlPlane?: string;
}

export function encodeDiscoveryResponse(r: SotwResponse): Buffer {
  const f = fields().response;
  const parts: Buffer[] = [stringField(f.version_info!, r.versionInfo), ...r.framedResources, stringField(f.type_url!, r.typeUrl), stringField(f.nonce!, r.nonce)];
  if (r.controlPlane) parts.push(lengthDelimited(f.control_plane!, controlPlane(r.controlPlane)));
  return Buffer.concat(parts);
}

export interface DeltaResponse {
  systemVersionInfo: string;
  typeUrl: string;
  nonce: string;
  /** Resources already framed by frameDeltaResource. */
  framedResources: readonly Buffer[];
  removed: readonly string[];
  controlPlane?: string;
}

export function encodeDeltaDiscoveryResponse(r: DeltaResponse): Buffer {
  const f = fields().delta;
  const parts: Buffer[] = [stringField(f.system_version_info!, r.systemVersionInfo), ...r.framedResources, stringField(f.type_url!, r.typeUrl)];
  for (const name of r.removed) parts.push(stringField(f.removed_resources!, name));
  parts.push(stringField(f.nonce!, r.nonce));
  if (r.controlPlane) parts.push(lengthDelimited(f.control_plane!, controlPlane(r.controlPlane)));
  return Buffer.concat(parts);
}

export interface DecodedStatus {
  code: number;
  message: string;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; cluster?: string; metadata?: unknown; user_agent_name?: string; user_agent_build_version?: { version?: { major_number?: number; minor_number?: number } } | null };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: DecodedStatus;
}

export interface DeltaDiscoveryRequest {
  node?: { id?: string; cluster?: string; metadata?: unknown; user_agent_name?: string; user_agent_build_version?: { version?: { major_number?: number; minor_number?: number } } | null };
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: DecodedStatus;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: false, arrays: true, objects: true };

// Requests are read straight from the decoded message (no toObject copy): a SotW ACK
// can carry thousands of resource names.
export function decodeDiscoveryRequest(buf: Uint8Array): DiscoveryRequest {
  return messageType('envoy.service.discovery.v3.DiscoveryRequest').decode(buf) as unknown as DiscoveryRequest;
}

export function decodeDeltaDiscoveryRequest(buf: Uint8Array): DeltaDiscoveryRequest {
  return messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest').decode(buf) as unknown as DeltaDiscoveryRequest;
}

export function encodeMessage(typeName: string, obj: Record<string, unknown>): Buffer {
  const t = messageType(typeName);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

export function decodeMessage<T>(typeName: string, buf: Uint8Array): T {
  const t = messageType(typeName);
  return t.toObject(t.decode(buf), TO_OBJECT) as T;
}
