// Encodes Envoy config written in its canonical JSON/YAML form (snake_case fields,
// "@type" on Any, "5s" durations, bare numbers for wrappers, plain objects for Struct)
// into protobuf bytes, by walking the message types. Unknown fields are errors, so a
// translator bug is caught here rather than by Envoy.
import protobuf from 'protobufjs';
import { envoyRoot, TYPE_URL_PREFIX } from './protos.js';

export class EnvoyJsonError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'EnvoyJsonError';
  }
}

const WRAPPERS = new Set([
  'google.protobuf.DoubleValue', 'google.protobuf.FloatValue', 'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value', 'google.protobuf.Int32Value', 'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue', 'google.protobuf.StringValue', 'google.protobuf.BytesValue',
]);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type PbObject = Record<string, unknown>;

function fullName(t: protobuf.Type): string {
  return t.fullName.replace(/^\./, '');
}

function parseDuration(text: unknown, path: string): PbObject {
  if (typeof text !== 'string' || !/^-?\d+(\.\d{1,9})?s$/.test(text)) {
    throw new EnvoyJsonError(path, `expected a duration like "1.5s", got ${JSON.stringify(text)}`);
  }
  const neg = text.startsWith('-');
  const [secs, frac = ''] = text.replace(/^-/, '').slice(0, -1).split('.');
  const nanos = Number(frac.padEnd(9, '0'));
  return { seconds: (neg ? -1 : 1) * Number(secs), nanos: (neg ? -1 : 1) * nanos };
}

// protobufjs' built-in google/protobuf/struct.proto uses camelCase field names.
function valueToPb(v: Json, path: string): PbObject {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map((x, i) => valueToPb(x, `${path}[${i}]`)) } };
  return { structValue: structToPb(v, path) };
}

function structToPb(v: Json, path: string): PbObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new EnvoyJsonError(path, 'expected an object (Struct)');
  const fields: PbObject = {};
  for (const [k, x] of Object.entries(v)) fields[k] = valueToPb(x, `${path}.${k}`);
  return { fields };
}

function convertMessage(type: protobuf.Type, json: Json, path: string): PbObject {
  const name = fullName(type);
  if (name === 'google.protobuf.Duration') return parseDuration(json, path);
  if (name === 'google.protobuf.Struct') return structToPb(json, path);
  if (name === 'google.protobuf.Value') return valueToPb(json, path);
  if (name === 'google.protobuf.ListValue') {
    if (!Array.isArray(json)) throw new EnvoyJsonError(path, 'expected a list');
    return { values: json.map((x, i) => valueToPb(x, `${path}[${i}]`)) };
  }
  if (WRAPPERS.has(name)) return { value: json };
  if (name === 'google.protobuf.Any') {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new EnvoyJsonError(path, 'expected an object with "@type"');
    const { '@type': typeUrl, ...rest } = json;
    if (typeof typeUrl !== 'string' || !typeUrl.startsWith(TYPE_URL_PREFIX)) {
      throw new EnvoyJsonError(path, `Any needs "@type": "${TYPE_URL_PREFIX}<message>"`);
    }
    const inner = lookupMessage(typeUrl.slice(TYPE_URL_PREFIX.length), path);
    return { type_url: typeUrl, value: encodeWithType(inner, rest, `${path}<${typeUrl.slice(TYPE_URL_PREFIX.length)}>`) };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new EnvoyJsonError(path, `expected an object for ${name}`);
  }
  const out: PbObject = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key];
    if (!field) throw new EnvoyJsonError(`${path}.${key}`, `unknown field of ${name}`);
    out[key] = convertField(field, value, `${path}.${key}`);
  }
  return out;
}

function convertField(field: protobuf.Field, value: Json, path: string): unknown {
  const resolved = field.resolve().resolvedType;
  const msgType = resolved instanceof protobuf.Type ? resolved : undefined;
  if (field instanceof protobuf.MapField) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new EnvoyJsonError(path, 'expected a map');
    if (!msgType) return value;
    const out: PbObject = {};
    for (const [k, v] of Object.entries(value)) out[k] = convertMessage(msgType, v, `${path}.${k}`);
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw new EnvoyJsonError(path, 'expected a list');
    return msgType ? value.map((v, i) => convertMessage(msgType, v, `${path}[${i}]`)) : value;
  }
  if (msgType) return convertMessage(msgType, value, path);
  if (resolved instanceof protobuf.Enum && typeof value === 'string' && !(value in resolved.values)) {
    throw new EnvoyJsonError(path, `unknown enum value ${value} of ${fullName(resolved as unknown as protobuf.Type)}`);
  }
  return value;
}

const typeCache = new Map<string, protobuf.Type>();
function lookupMessage(name: string, path: string): protobuf.Type {
  let t = typeCache.get(name);
  if (!t) {
    try {
      t = envoyRoot().lookupType(name);
    } catch {
      throw new EnvoyJsonError(path, `unknown message type ${name}`);
    }
    typeCache.set(name, t);
  }
  return t;
}

function encodeWithType(type: protobuf.Type, json: Json, path: string): Uint8Array {
  const pb = convertMessage(type, json, path);
  return type.encode(type.fromObject(pb)).finish();
}

/** Encodes `json` (Envoy's JSON form) as the message `typeName` (e.g. envoy.config.cluster.v3.Cluster). */
export function encodeEnvoyJson(typeName: string, json: unknown, path = typeName): Uint8Array {
  return encodeWithType(lookupMessage(typeName, path), json as Json, path);
}

/** Converts a decoded google.protobuf.Struct (protobufjs object form) to plain JSON. */
export function structToJson(struct: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = (struct as { fields?: Record<string, unknown> } | null | undefined)?.fields ?? {};
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: unknown): unknown {
  const val = v as Record<string, unknown> | null | undefined;
  if (val == null) return null;
  // A decoded message names its set oneof member in `kind`; a plain object just has it.
  const set = (name: string): boolean => (typeof val.kind === 'string' ? val.kind === name : Object.prototype.hasOwnProperty.call(val, name) && val[name] != null);
  if (set('stringValue')) return val.stringValue;
  if (set('numberValue')) return val.numberValue;
  if (set('boolValue')) return val.boolValue;
  if (set('structValue')) return structToJson(val.structValue);
  if (set('listValue')) return ((val.listValue as { values?: unknown[] }).values ?? []).map(valueToJson);
  return null;
}
