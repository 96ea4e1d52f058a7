// Key types meshd's CA uses and accepts, key generation (node:crypto), and which X.509
// signature algorithm a key signs with.
import { generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { Asn1 } from './forge.js';
import { nullNode, oidNode, seq } from './forge.js';

export type CaKeyType = 'ec-p256' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';
export const CA_KEY_TYPES: readonly CaKeyType[] = ['ec-p256', 'rsa-2048', 'rsa-3072', 'rsa-4096'];

export const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
} as const;

/** How a key signs: the digest node:crypto uses and the AlgorithmIdentifier put in the certificate. */
export interface SignatureAlgorithm {
  oid: string;
  hash: 'sha256' | 'sha384' | 'sha512';
  /** RSA's AlgorithmIdentifier carries an explicit NULL parameter; ECDSA's carries none. */
  rsa: boolean;
}

export function algorithmIdentifier(alg: SignatureAlgorithm): Asn1 {
  return seq(alg.rsa ? [oidNode(alg.oid), nullNode()] : [oidNode(alg.oid)]);
}

/** Signature algorithms accepted on CSRs, by OID. */
export const CSR_SIGNATURE_ALGORITHMS: ReadonlyMap<string, SignatureAlgorithm> = new Map([
  [OID.ecdsaWithSha256, { oid: OID.ecdsaWithSha256, hash: 'sha256', rsa: false }],
  [OID.ecdsaWithSha384, { oid: OID.ecdsaWithSha384, hash: 'sha384', rsa: false }],
  [OID.ecdsaWithSha512, { oid: OID.ecdsaWithSha512, hash: 'sha512', rsa: false }],
  [OID.sha256WithRsa, { oid: OID.sha256WithRsa, hash: 'sha256', rsa: true }],
  [OID.sha384WithRsa, { oid: OID.sha384WithRsa, hash: 'sha384', rsa: true }],
  [OID.sha512WithRsa, { oid: OID.sha512WithRsa, hash: 'sha512', rsa: true }],
]);

/** A short description of a key, e.g. "EC P-256" or "RSA 2048"; never the key itself. */
export function describeKey(key: KeyObject): string {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return `EC ${curveName(d.namedCurve) ?? d.namedCurve ?? '?'}`;
  if (key.asymmetricKeyType === 'rsa') return `RSA ${d.modulusLength ?? '?'}`;
  return key.asymmetricKeyType ?? 'unknown';
}

function curveName(nodeName: string | undefined): string | undefined {
  return nodeName === 'prime256v1' ? 'P-256' : nodeName === 'secp384r1' ? 'P-384' : undefined;
}

/**
 * Which keys meshd accepts, in CSRs and as CA keys: EC P-256 or P-384, RSA of 2048 bits
 * or more (up to 8192). Returns a reason when the key is not acceptable.
 */
export function unsupportedKeyReason(key: KeyObject): string | undefined {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    return curveName(d.namedCurve) ? undefined : `EC curve ${d.namedCurve ?? '?'} is not supported (P-256 or P-384)`;
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = d.modulusLength ?? 0;
    return bits >= 2048 && bits <= 8192 ? undefined : `RSA key of ${bits} bits is not supported (2048 to 8192)`;
  }
  return `${key.asymmetricKeyType ?? 'unknown'} keys are not supported (EC P-256/P-384 or RSA)`;
}

/** The algorithm a CA key signs certificates with: ECDSA with SHA-256 (P-256) or SHA-384 (P-384), RSA PKCS#1 v1.5 with SHA-256. */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const reason = unsupportedKeyReason(key);
  if (reason) throw new Error(reason);
  if (key.asymmetricKeyType === 'rsa') return CSR_SIGNATURE_ALGORITHMS.get(OID.sha256WithRsa)!;
  return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? CSR_SIGNATURE_ALGORITHMS.get(OID.ecdsaWithSha384)! : CSR_SIGNATURE_ALGORITHMS.get(OID.ecdsaWithSha256)!;
}

export interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

function keyParams(type: CaKeyType): { kind: 'ec'; namedCurve: string } | { kind: 'rsa'; modulusLength: number } {
  if (type === 'ec-p256') return { kind: 'ec', namedCurve: 'prime256v1' };
  return { kind: 'rsa', modulusLength: Number(type.slice('rsa-'.length)) };
}

export function generateKeySync(type: CaKeyType): KeyPair {
  const p = keyParams(type);
  return p.kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: p.namedCurve }) : generateKeyPairSync('rsa', { modulusLength: p.modulusLength });
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** Generates a key pair off the event loop (libuv's thread pool). */
export async function generateKey(type: CaKeyType): Promise<KeyPair> {
  const p = keyParams(type);
  return p.kind === 'ec' ? generateKeyPairAsync('ec', { namedCurve: p.namedCurve }) : generateKeyPairAsync('rsa', { modulusLength: p.modulusLength });
}

