// Reading an X.509 certificate that will sign others: node:crypto's X509Certificate for
// validity, keys and chain checks; node-forge's ASN.1 for the exact subject Name (copied
// into each issued certificate as its issuer) and the subject key identifier.
import { X509Certificate } from 'node:crypto';
import { Class, Type, bytesOf, fromDer, oidOf, type Asn1 } from './forge.js';
import { pemBlocks, toPem } from './pem.js';
import { OID_EXT, keyIdentifier } from './x509-builder.js';

export interface CertificateInfo {
  pem: string;
  der: Buffer;
  x509: X509Certificate;
  /** The subject Name as parsed, to be used as the issuer of certificates this one signs. */
  subject: Asn1;
  /** Its subject key identifier (from the extension, else computed from the key). */
  keyId: Buffer;
  notBefore: Date;
  notAfter: Date;
}

/** Reads one certificate from PEM text (the first CERTIFICATE block) or DER. */
export function readCertificate(input: string | Uint8Array, what = 'certificate'): CertificateInfo {
  let der: Buffer;
  if (typeof input === 'string') {
    const block = pemBlocks(input).find((b) => b.label === 'CERTIFICATE');
    if (!block) throw new Error(`${what}: no PEM CERTIFICATE block`);
    der = block.der;
  } else der = Buffer.from(input);
  let x509: X509Certificate;
  let tbs: Asn1[];
  try {
    x509 = new X509Certificate(der);
    const root = fromDer(der);
    tbs = ((root.value as Asn1[])[0]!.value as Asn1[]);
  } catch (err) {
    throw new Error(`${what}: not a valid X.509 certificate: ${(err as Error).message}`, { cause: err });
  }
  // TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject, spki, ..., [3] extensions.
  const at = tbs[0]?.tagClass === Class.CONTEXT_SPECIFIC ? 1 : 0;
  const subject = tbs[at + 4]!;
  const spki = tbs[at + 5]!;
  let keyId: Buffer | undefined;
  const exts = tbs.find((n) => n.tagClass === Class.CONTEXT_SPECIFIC && (n.type as number) === 3);
  for (const ext of ((exts?.value as Asn1[] | undefined)?.[0]?.value as Asn1[] | undefined) ?? []) {
    const parts = ext.value as Asn1[];
    if (oidOf(parts[0]) !== OID_EXT.subjectKeyIdentifier) continue;
    const inner = fromDer(bytesOf(parts[parts.length - 1]!.value));
    if (inner.type === Type.OCTETSTRING) keyId = bytesOf(inner.value);
  }
  return {
    pem: toPem('CERTIFICATE', der),
    der,
    x509,
    subject,
    keyId: keyId ?? keyIdentifier(spki),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
  };
}
