// node-forge's ASN.1 and byte-string modules alone (4 ms to load, where the whole of
// node-forge takes 35 ms). forge works on "binary strings" (one char per byte): the
// helpers convert at the boundary.
import { createRequire } from 'node:module';
import type * as Forge from 'node-forge';

const require = createRequire(import.meta.url);

export const asn1 = require('node-forge/lib/asn1.js') as typeof Forge.asn1;
export const forgeUtil = require('node-forge/lib/util.js') as typeof Forge.util;
export type Asn1 = Forge.asn1.Asn1;

export const { Class, Type } = asn1;

/** Parses DER strictly: the whole input must be one element. BIT STRINGs are kept as bytes. */
export function fromDer(der: Uint8Array): Asn1 {
  const bytes = forgeUtil.createBuffer(Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('binary'));
  return (asn1.fromDer as unknown as (b: Forge.util.ByteStringBuffer, o: object) => Asn1)(bytes, { strict: true, parseAllBytes: true, decodeBitStrings: false });
}

export function toDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

/** A forge binary string as a Buffer. */
export function bytesOf(value: Asn1['value']): Buffer {
  if (typeof value !== 'string') throw new Error('expected a primitive ASN.1 value');
  return Buffer.from(value, 'binary');
}

const oidCache = new Map<string, string>();

/** An OBJECT IDENTIFIER node. */
export function oidNode(oid: string): Asn1 {
  let der = oidCache.get(oid);
  if (der === undefined) oidCache.set(oid, (der = asn1.oidToDer(oid).getBytes()));
  return asn1.create(Class.UNIVERSAL, Type.OID, false, der);
}

/** The dotted form of an OBJECT IDENTIFIER node, or undefined when the node is not one. */
export function oidOf(node: Asn1 | undefined): string | undefined {
  if (!node || node.tagClass !== Class.UNIVERSAL || node.type !== Type.OID || typeof node.value !== 'string') return undefined;
  return asn1.derToOid(node.value);
}

export function seq(items: Asn1[]): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items);
}

export function set(items: Asn1[]): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.SET, true, items);
}

export function octetString(bytes: Uint8Array): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, Buffer.from(bytes).toString('binary'));
}

/** A BIT STRING whose content bytes (including the leading unused-bits count) are given. */
export function bitStringRaw(content: Uint8Array): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, Buffer.from(content).toString('binary'));
}

/** A positive INTEGER from big-endian magnitude bytes (minimal encoding). */
export function positiveInteger(magnitude: Uint8Array): Asn1 {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let bytes = Buffer.from(magnitude.subarray(i));
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return asn1.create(Class.UNIVERSAL, Type.INTEGER, false, bytes.toString('binary'));
}

export function smallInteger(n: number): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(n).getBytes());
}

export function booleanTrue(): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.BOOLEAN, false, '\xff');
}

export function nullNode(): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.NULL, false, '');
}

export function utf8String(text: string): Asn1 {
  return asn1.create(Class.UNIVERSAL, Type.UTF8, false, forgeUtil.encodeUtf8(text));
}

/** X.509 Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). */
export function timeNode(date: Date): Asn1 {
  const d = new Date(Math.floor(date.getTime() / 1000) * 1000);
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, asn1.dateToUtcTime(d));
  return asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
}

/** A context-specific tagged node ([n]); constructed when it holds nodes. */
export function tagged(n: number, value: Asn1[] | string): Asn1 {
  return asn1.create(Class.CONTEXT_SPECIFIC, n as Forge.asn1.Type, typeof value !== 'string', value);
}
