// The CA's signing material: a signing key and certificate, the certificates between it
// and the root, and the root. Either a self-signed root generated here, or material
// plugged in (Istio's `cacerts` layout: ca-cert.pem, ca-key.pem, root-cert.pem,
// cert-chain.pem), checked before use.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { RootOfTrustError } from './errors.js';
import { fromDer } from './forge.js';
import { generateKeySync, signatureAlgorithmFor, unsupportedKeyReason, type CaKeyType } from './keys.js';
import { splitCertificates } from './pem.js';
import { readCertificate, type CertificateInfo } from './certificate.js';
import { basicConstraints, certificatePem, keyIdentifier, keyUsage, organizationName, signCertificateSync, subjectKeyIdentifier } from './x509-builder.js';

/** PEM texts in Istio's cacerts layout. */
export interface CaMaterial {
  /** ca-cert.pem: the certificate the CA signs with. */
  caCertPem: string;
  /** ca-key.pem: its private key. */
  caKeyPem: string;
  /** root-cert.pem: the root; ca-cert.pem itself when absent (a self-signed CA). */
  rootCertPem?: string;
  /** cert-chain.pem: ca-cert.pem and the intermediates above it (the root may end it). */
  certChainPem?: string;
}

export interface RootOfTrust {
  signingKey: KeyObject;
  signing: CertificateInfo;
  /** What goes between a leaf and the root in an issued chain: the signing certificate and its issuers; empty when the signing certificate is the root. */
  intermediates: CertificateInfo[];
  root: CertificateInfo;
}

export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3600 * 1000;

/** A self-signed root: O=<trust domain>, CA:true, keyCertSign + cRLSign. Returned as PEM, ready to persist. */
export function generateSelfSignedRoot(o: { keyType: CaKeyType; trustDomain: string; ttlMs?: number; now?: Date }): CaMaterial {
  const now = o.now ?? new Date();
  const { publicKey, privateKey } = generateKeySync(o.keyType);
  const spki = fromDer(publicKey.export({ format: 'der', type: 'spki' }));
  const name = organizationName(o.trustDomain);
  const der = signCertificateSync(
    {
      subject: name,
      subjectPublicKeyInfo: spki,
      // Backdated a minute for clocks slightly behind.
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + (o.ttlMs ?? DEFAULT_ROOT_TTL_MS)),
      extensions: [basicConstraints(true), keyUsage({ keyCertSign: true, cRLSign: true }), subjectKeyIdentifier(keyIdentifier(spki))],
    },
    { name, key: privateKey, algorithm: signatureAlgorithmFor(privateKey) },
  );
  return { caCertPem: certificatePem(der), caKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string };
}

function issuedBy(child: CertificateInfo, parent: CertificateInfo): boolean {
  return child.x509.checkIssued(parent.x509) && child.x509.verify(parent.x509.publicKey);
}

/**
 * Checks and assembles CA material: the key must match ca-cert.pem, which must be a CA
 * certificate valid now; cert-chain.pem must lead from it to root-cert.pem, each
 * certificate signed by the next. `where` names the source in errors (a directory, a Secret).
 */
export function loadRootOfTrust(m: CaMaterial, where: string, now = new Date()): RootOfTrust {
  const bad = (msg: string): never => {
    throw new RootOfTrustError(`${where}: ${msg}`);
  };
  let signing: CertificateInfo;
  try {
    signing = readCertificate(m.caCertPem, 'ca-cert.pem');
  } catch (err) {
    return bad((err as Error).message);
  }
  let signingKey: KeyObject;
  try {
    signingKey = createPrivateKey(m.caKeyPem);
  } catch {
    // The parser's message is not repeated: it could quote the key.
    return bad('ca-key.pem: not a readable PEM private key');
  }
  const keyProblem = unsupportedKeyReason(signingKey);
  if (keyProblem) bad(`ca-key.pem: ${keyProblem}`);
  if (!signing.x509.checkPrivateKey(signingKey)) bad('ca-key.pem does not match ca-cert.pem');
  if (!signing.x509.ca) bad('ca-cert.pem is not a CA certificate (basicConstraints CA:true)');
  if (signing.notAfter <= now) bad(`ca-cert.pem expired on ${signing.notAfter.toISOString()}`);
  if (signing.notBefore > now) bad(`ca-cert.pem is not valid before ${signing.notBefore.toISOString()}`);

  let root = signing;
  if (m.rootCertPem !== undefined && m.rootCertPem.trim() !== '') {
    try {
      root = readCertificate(m.rootCertPem, 'root-cert.pem');
    } catch (err) {
      return bad((err as Error).message);
    }
  }
  if (!issuedBy(root, root)) bad('root-cert.pem is not a self-signed certificate');
  if (root.notAfter <= now) bad(`root-cert.pem expired on ${root.notAfter.toISOString()}`);

  const same = (a: CertificateInfo, b: CertificateInfo): boolean => a.der.equals(b.der);
  let chain: CertificateInfo[] = [];
  try {
    chain = splitCertificates(m.certChainPem ?? '').map((p, i) => readCertificate(p, `cert-chain.pem certificate ${i + 1}`));
  } catch (err) {
    bad((err as Error).message);
  }
  while (chain.length && same(chain[chain.length - 1]!, root)) chain.pop();
  if (same(signing, root)) {
    if (chain.length) bad('ca-cert.pem is the root, but cert-chain.pem holds other certificates');
  } else {
    if (!chain.length || !same(chain[0]!, signing)) chain.unshift(signing);
    for (let i = 0; i < chain.length; i++) {
      const parent = chain[i + 1] ?? root;
      if (!issuedBy(chain[i]!, parent)) {
        bad(`${i === 0 ? 'ca-cert.pem' : `cert-chain.pem certificate ${i + 1}`} (${chain[i]!.x509.subject.replace(/\n/g, ', ')}) is not signed by ${parent === root ? 'root-cert.pem' : `cert-chain.pem certificate ${i + 2}`} (${parent.x509.subject.replace(/\n/g, ', ')})`);
      }
    }
  }
  return { signingKey, signing, intermediates: chain, root };
}
