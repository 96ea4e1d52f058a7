// Builds X.509 v3 certificates: the TBSCertificate with node-forge's ASN.1, signed with
// node:crypto (forge cannot sign ECDSA, and its pure-JS RSA is ~30x slower), wrapped in
// DER by hand so the signed bytes are not encoded twice.
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { TAG_BIT_STRING, TAG_SEQUENCE, encodeTlv } from './der.js';
import { Type, booleanTrue, bytesOf, octetString, oidNode, positiveInteger, seq, set, smallInteger, tagged, timeNode, toDer, utf8String, bitStringRaw, type Asn1 } from './forge.js';
import { generalNames } from './general-names.js';
import { algorithmIdentifier, type SignatureAlgorithm } from './keys.js';
import { toPem } from './pem.js';

export const OID_EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
} as const;

export const OID_EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;
const OID_ORGANIZATION = '2.5.4.10';

export interface Extension {
  oid: string;
  critical: boolean;
  /** The extension's value (its DER goes into the extnValue OCTET STRING). */
  value: Asn1;
}

export interface CertificateSpec {
  /** Big-endian positive serial; a random 128-bit one when omitted. */
  serial?: Uint8Array;
  /** The subject Name (an empty SEQUENCE for none). */
  subject: Asn1;
  subjectPublicKeyInfo: Asn1;
  notBefore: Date;
  notAfter: Date;
  extensions: Extension[];
}

/** Who signs: their subject Name (the certificate's issuer), key and algorithm. */
export interface Issuer {
  name: Asn1;
  key: KeyObject;
  algorithm: SignatureAlgorithm;
}

/** A Name with one attribute, O=<organization>. */
export function organizationName(organization: string): Asn1 {
  return seq([set([seq([oidNode(OID_ORGANIZATION), utf8String(organization)])])]);
}

export const emptyName = (): Asn1 => seq([]);

/** A random positive 128-bit serial number (RFC 5280 allows up to 20 octets). */
export function randomSerial(): Buffer {
  return randomBytes(16);
}

/** RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bytes. */
export function keyIdentifier(subjectPublicKeyInfo: Asn1): Buffer {
  const bits = Array.isArray(subjectPublicKeyInfo.value) ? subjectPublicKeyInfo.value[1] : undefined;
  if (!bits || bits.type !== Type.BITSTRING) throw new Error('malformed SubjectPublicKeyInfo');
  return createHash('sha1').update(bytesOf(bits.value).subarray(1)).digest();
}

// ---- extensions ------------------------------------------------------------------------

export function basicConstraints(ca: boolean, pathLen?: number): Extension {
  const items = ca ? [booleanTrue(), ...(pathLen !== undefined ? [smallInteger(pathLen)] : [])] : [];
  return { oid: OID_EXT.basicConstraints, critical: true, value: seq(items) };
}

export interface KeyUsageBits {
  digitalSignature?: boolean;
  keyEncipherment?: boolean;
  keyCertSign?: boolean;
  cRLSign?: boolean;
}

/** KeyUsage as a named BIT STRING with trailing zero bits removed (DER). */
export function keyUsage(u: KeyUsageBits): Extension {
  // Bit 0 is the most significant bit of the first byte.
  const bits = [u.digitalSignature, false, u.keyEncipherment, false, false, u.keyCertSign, u.cRLSign];
  let last = -1;
  bits.forEach((b, i) => (b ? (last = i) : undefined));
  if (last < 0) throw new Error('keyUsage needs at least one bit');
  let byte = 0;
  bits.forEach((b, i) => (b ? (byte |= 0x80 >> i) : undefined));
  return { oid: OID_EXT.keyUsage, critical: true, value: bitStringRaw(Uint8Array.from([7 - last, byte])) };
}

export function extKeyUsage(oids: string[]): Extension {
  return { oid: OID_EXT.extKeyUsage, critical: false, value: seq(oids.map(oidNode)) };
}

export function subjectKeyIdentifier(id: Uint8Array): Extension {
  return { oid: OID_EXT.subjectKeyIdentifier, critical: false, value: octetString(id) };
}

export function authorityKeyIdentifier(id: Uint8Array): Extension {
  return { oid: OID_EXT.authorityKeyIdentifier, critical: false, value: seq([tagged(0, Buffer.from(id).toString('binary'))]) };
}

/** SubjectAltName; critical when the subject is empty (RFC 5280 4.2.1.6). */
export function subjectAltName(names: { uris?: string[]; dnsNames?: string[]; ipAddresses?: string[] }, critical: boolean): Extension {
  for (const n of [...(names.uris ?? []), ...(names.dnsNames ?? [])]) {
    if (!/^[\x21-\x7e]+$/.test(n)) throw new Error(`"${n}" is not a printable ASCII name (IA5String)`);
  }
  return { oid: OID_EXT.subjectAltName, critical, value: generalNames(names) };
}

function extensionNode(e: Extension): Asn1 {
  return seq([oidNode(e.oid), ...(e.critical ? [booleanTrue()] : []), octetString(toDer(e.value))]);
}

// ---- building and signing ----------------------------------------------------------------

/** The DER of the TBSCertificate for `spec`, issued by `issuer`. */
export function tbsCertificate(spec: CertificateSpec, issuer: Issuer): Buffer {
  const tbs = seq([
    tagged(0, [smallInteger(2)]),
    positiveInteger(spec.serial ?? randomSerial()),
    algorithmIdentifier(issuer.algorithm),
    issuer.name,
    seq([timeNode(spec.notBefore), timeNode(spec.notAfter)]),
    spec.subject,
    spec.subjectPublicKeyInfo,
    ...(spec.extensions.length ? [tagged(3, [seq(spec.extensions.map(extensionNode))])] : []),
  ]);
  return toDer(tbs);
}

function wrap(tbs: Buffer, issuer: Issuer, signature: Buffer): Buffer {
  const alg = toDer(algorithmIdentifier(issuer.algorithm));
  return encodeTlv(TAG_SEQUENCE, [tbs, alg, encodeTlv(TAG_BIT_STRING, [Buffer.from([0]), signature])]);
}

/** Builds and signs a certificate; the signature is computed on libuv's thread pool. Returns DER. */
export async function signCertificate(spec: CertificateSpec, issuer: Issuer): Promise<Buffer> {
  const tbs = tbsCertificate(spec, issuer);
  const signature = await new Promise<Buffer>((resolve, reject) =>
    sign(issuer.algorithm.hash, tbs, issuer.key, (err, sig) => (err ? reject(err) : resolve(sig))),
  );
  return wrap(tbs, issuer, signature);
}

/** Synchronous variant (start-up: the self-signed root). */
export function signCertificateSync(spec: CertificateSpec, issuer: Issuer): Buffer {
  const tbs = tbsCertificate(spec, issuer);
  return wrap(tbs, issuer, sign(issuer.algorithm.hash, tbs, issuer.key));
}

export const certificatePem = (der: Uint8Array): string => toPem('CERTIFICATE', der);
