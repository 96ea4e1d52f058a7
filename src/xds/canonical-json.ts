// Envoy resources in one canonical JSON form, whichever side wrote them (meshd's translator
// or Envoy's config_dump): fields in field-number order, proto3 defaults left out, 64-bit
// numbers as numbers, durations as protobuf JSON writes them, map and Struct keys sorted,
// Any resolved and canonical inside. Two dumps of the same config compare equal as text.
import protobuf from 'protobufjs';
import { envoyRoot, TYPE_URL_PREFIX } from './protos.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const WRAPPER = /^google\.protobuf\.(Double|Float|Int64|UInt64|Int32|UInt32|Bool|String|Bytes)Value$/;

function fullName(t: protobuf.Type | protobuf.Enum): string {
  return t.fullName.replace(/^\./, '');
}

function sortKeys(v: Json): Json {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]!);
    return out;
  }
  return v;
}

function duration(v: Json): Json {
  if (typeof v !== 'string') return v;
  const m = /^(-?)(\d+)(?:\.(\d{1,9}))?s$/.exec(v);
  if (!m) return v;
  const frac = (m[3] ?? '').padEnd(9, '0');
  const trimmed = /0{6}$/.test(frac) ? frac.slice(0, 3) : /0{3}$/.test(frac) ? frac.slice(0, 6) : frac;
  return `${m[1]}${Number(m[2])}${trimmed === '000' ? '' : `.${trimmed}`}s`;
}

function scalar(type: string, v: Json): Json {
  if (/^(u?int64|s?fixed64|sint64)$/.test(type) && typeof v === 'string' && /^-?\d+$/.test(v)) {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : v;
  }
  return v;
}

function isDefault(v: Json, resolved: protobuf.ReflectionObject | null): boolean {
  if (resolved instanceof protobuf.Enum) return v === 0 || (typeof v === 'string' && resolved.values[v] === 0);
  return v === 0 || v === false || v === '' || v === '0';
}

function lookup(name: string): protobuf.Type | undefined {
  try {
    return envoyRoot().lookupType(name);
  } catch {
    return undefined;
  }
}

function message(type: protobuf.Type, v: Json): Json {
  const name = fullName(type);
  if (name === 'google.protobuf.Duration') return duration(v);
  if (name === 'google.protobuf.Struct' || name === 'google.protobuf.Value' || name === 'google.protobuf.ListValue') return sortKeys(v);
  if (WRAPPER.test(name)) return scalar(type.fields.value!.type, v);
  if (name === 'google.protobuf.Any') return any(v);
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
  const known = Object.keys(v)
    .filter((k) => type.fields[k])
    .sort((a, b) => type.fields[a]!.id - type.fields[b]!.id);
  const unknown = Object.keys(v)
    .filter((k) => !type.fields[k])
    .sort();
  const out: { [k: string]: Json } = {};
  for (const k of known) {
    const c = field(type.fields[k]!, v[k]!);
    if (c !== undefined) out[k] = c;
  }
  for (const k of unknown) out[k] = sortKeys(v[k]!);
  return out;
}

function field(f: protobuf.Field, v: Json): Json | undefined {
  const resolved = f.resolve().resolvedType;
  const msg = resolved instanceof protobuf.Type ? resolved : undefined;
  const one = (x: Json): Json => (msg ? message(msg, x) : resolved instanceof protobuf.Enum && typeof x === 'number' ? (resolved.valuesById[x] ?? x) : scalar(f.type, x));
  if (f instanceof protobuf.MapField) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
    const keys = Object.keys(v).sort();
    if (keys.length === 0) return undefined;
    return Object.fromEntries(keys.map((k) => [k, one(v[k]!)]));
  }
  if (f.repeated) {
    if (!Array.isArray(v)) return v;
    return v.length === 0 ? undefined : v.map(one);
  }
  if (!msg && !f.partOf && isDefault(v, resolved)) return undefined;
  return one(v);
}

function any(v: Json): Json {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
  const typeUrl = v['@type'];
  if (typeof typeUrl !== 'string' || !typeUrl.startsWith(TYPE_URL_PREFIX)) return sortKeys(v);
  const inner = lookup(typeUrl.slice(TYPE_URL_PREFIX.length));
  const { '@type': _drop, ...rest } = v;
  void _drop;
  if (!inner) return { '@type': typeUrl, ...(sortKeys(rest) as { [k: string]: Json }) };
  const c = message(inner, rest);
  return { '@type': typeUrl, ...(c && typeof c === 'object' && !Array.isArray(c) ? c : { value: c }) };
}

/** `resource` (Envoy JSON of the message `typeName`, e.g. envoy.config.cluster.v3.Cluster) in canonical form. */
export function canonicalEnvoyJson(typeName: string, resource: unknown): unknown {
  const t = lookup(typeName);
  if (!t) return sortKeys(resource as Json);
  const { '@type': _drop, ...rest } = (resource ?? {}) as { [k: string]: Json };
  void _drop;
  return message(t, rest);
}
