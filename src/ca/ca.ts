// meshd's certificate authority: signs workload CSRs for SPIFFE identities, issues key
// and certificate pairs itself (for proxies without an agent), and issues meshd's own
// serving certificate. Chains are returned leaf first, then intermediates, then the root.
import { createHash, type KeyObject } from 'node:crypto';
import { CaError, PermissionDeniedError } from './errors.js';
import { fromDer, type Asn1 } from './forge.js';
import { parseCsr, verifyCsrSignature } from './csr.js';
import { describeKey, generateKey, signatureAlgorithmFor } from './keys.js';
import { parseSpiffeId, spiffeId } from '../model/spiffe.js';
import type { RootOfTrust } from './root-of-trust.js';
import {
  OID_EKU,
  authorityKeyIdentifier,
  basicConstraints,
  certificatePem,
  emptyName,
  extKeyUsage,
  keyIdentifier,
  keyUsage,
  signCertificate,
  subjectAltName,
  subjectKeyIdentifier,
  type Issuer,
} from './x509-builder.js';

export const DEFAULT_WORKLOAD_CERT_TTL_SECONDS = 24 * 3600;
/** As Istio's MAX_WORKLOAD_CERT_TTL: 90 days. */
export const DEFAULT_MAX_WORKLOAD_CERT_TTL_SECONDS = 90 * 24 * 3600;
/** How far notBefore is backdated, for verifiers whose clocks are a little behind. */
export const BACKDATE_MS = 60_000;

export interface CertificateAuthorityOptions {
  rootOfTrust: RootOfTrust;
  trustDomain: string;
  /** Lifetime when the caller asks for none (0); default 24 h. */
  defaultTtlSeconds?: number;
  /** Longest lifetime granted; longer requests are cut to it. Default 90 days. */
  maxTtlSeconds?: number;
  /** Where the root of trust came from, for logs and /debug (e.g. "self-signed", "Secret istio-system/cacerts"). */
  source: string;
  /** Injectable clock. */
  now?: () => Date;
}

export interface SignOptions {
  /** The caller's SPIFFE ID: the CSR must ask for exactly this URI and nothing else. */
  identity: string;
  /** Requested lifetime in seconds; 0 or absent means the default, more than the maximum is cut to it. */
  ttlSeconds?: number;
}

export interface IssuedKeyAndCertificate {
  /** Leaf first, then intermediates, then the root; one PEM certificate per element. */
  certChainPem: string[];
  /** PKCS#8 PEM. */
  privateKeyPem: string;
}

export interface ServingCertificateOptions {
  dnsNames: string[];
  ipAddresses?: string[];
  ttlSeconds: number;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly source: string;
  private readonly issuer: Issuer;
  private readonly root: RootOfTrust;
  private readonly now: () => Date;
  /** The latest notAfter any issued certificate may have: the earliest expiry along the chain. */
  private readonly chainNotAfter: Date;
  /** Intermediates then the root: what follows each leaf. */
  private readonly chainPem: string[];

  constructor(o: CertificateAuthorityOptions) {
    this.trustDomain = o.trustDomain;
    this.defaultTtlSeconds = o.defaultTtlSeconds ?? DEFAULT_WORKLOAD_CERT_TTL_SECONDS;
    this.maxTtlSeconds = o.maxTtlSeconds ?? DEFAULT_MAX_WORKLOAD_CERT_TTL_SECONDS;
    if (!(this.defaultTtlSeconds > 0) || !(this.maxTtlSeconds > 0)) throw new Error('certificate lifetimes must be positive');
    this.source = o.source;
    this.root = o.rootOfTrust;
    this.now = o.now ?? (() => new Date());
    const key: KeyObject = o.rootOfTrust.signingKey;
    this.issuer = { name: o.rootOfTrust.signing.subject, key, algorithm: signatureAlgorithmFor(key) };
    const expiries = [o.rootOfTrust.signing, o.rootOfTrust.root, ...o.rootOfTrust.intermediates].map((c) => c.notAfter.getTime());
    this.chainNotAfter = new Date(Math.min(...expiries));
    this.chainPem = [...o.rootOfTrust.intermediates.map((c) => c.pem), o.rootOfTrust.root.pem];
  }

  /** The root certificate (PEM), what workloads trust. */
  get rootCertPem(): string {
    return this.root.root.pem;
  }

  get rootNotAfter(): Date {
    return this.root.root.notAfter;
  }

  /** spiffe://<trust domain>/ns/<namespace>/sa/<service account> */
  spiffeId(namespace: string, serviceAccount: string): string {
    return spiffeId(this.trustDomain, namespace, serviceAccount);
  }

  /**
   * Signs a PKCS#10 CSR (PEM or DER) for `identity`. The CSR must carry a valid
   * self-signature (else InvalidCsrError) and ask for exactly the SAN URI `identity`
   * (else PermissionDeniedError).
   */
  async sign(csr: string | Uint8Array, o: SignOptions): Promise<string[]> {
    this.checkIdentity(o.identity);
    const ttl = this.workloadTtl(o.ttlSeconds);
    const parsed = parseCsr(csr);
    await verifyCsrSignature(parsed);
    const n = parsed.altNames;
    if (n.dnsNames.length || n.ipAddresses.length || n.emails.length || n.others) {
      throw new PermissionDeniedError(`the CSR asks for names other than a SPIFFE URI (${[...n.dnsNames, ...n.ipAddresses, ...n.emails].join(', ') || `${n.others} other names`}); only ${o.identity} may be requested`);
    }
    if (n.uris.length !== 1 || n.uris[0] !== o.identity) {
      throw new PermissionDeniedError(`the CSR asks for ${n.uris.length ? n.uris.join(', ') : 'no SPIFFE URI'}; the caller may only request ${o.identity}`);
    }
    return this.issueLeaf(parsed.subjectPublicKeyInfo, { uris: [o.identity] }, ttl);
  }

  /** Generates an EC P-256 key and a certificate for `identity` (for proxies with no agent to make a CSR). */
  async issue(identity: string, ttlSeconds?: number): Promise<IssuedKeyAndCertificate> {
    this.checkIdentity(identity);
    const ttl = this.workloadTtl(ttlSeconds);
    const { publicKey, privateKey } = await generateKey('ec-p256');
    const chain = await this.issueLeaf(fromDer(publicKey.export({ format: 'der', type: 'spki' })), { uris: [identity] }, ttl);
    return { certChainPem: chain, privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string };
  }

  /** A serving certificate for meshd itself (DNS names and IP addresses, serverAuth and clientAuth), with a new P-256 key. */
  async issueServingCertificate(o: ServingCertificateOptions): Promise<IssuedKeyAndCertificate> {
    if (!(o.ttlSeconds > 0)) throw new CaError('MESHD_CA_TTL_INVALID', `serving certificate lifetime must be positive, got ${o.ttlSeconds}`);
    const { publicKey, privateKey } = await generateKey('ec-p256');
    const chain = await this.issueLeaf(fromDer(publicKey.export({ format: 'der', type: 'spki' })), { dnsNames: o.dnsNames, ipAddresses: o.ipAddresses ?? [] }, o.ttlSeconds);
    return { certChainPem: chain, privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string };
  }

  /** What the CA is, for /debug: no key material. */
  describe(): Record<string, unknown> {
    const fp = (pem: string): string => createHash('sha256').update(pem).digest('hex');
    return {
      trustDomain: this.trustDomain,
      source: this.source,
      signingKey: describeKey(this.issuer.key),
      root: { subject: this.root.root.x509.subject, notAfter: this.root.root.notAfter.toISOString(), sha256: this.root.root.x509.fingerprint256 },
      signingCertificate: { subject: this.root.signing.x509.subject, notAfter: this.root.signing.notAfter.toISOString(), sha256: this.root.signing.x509.fingerprint256 },
      intermediates: this.root.intermediates.length,
      defaultTtlSeconds: this.defaultTtlSeconds,
      maxTtlSeconds: this.maxTtlSeconds,
      rootCertPemSha256: fp(this.rootCertPem),
    };
  }

  private checkIdentity(identity: string): void {
    const id = parseSpiffeId(identity);
    if (!id || id.trustDomain !== this.trustDomain) {
      throw new PermissionDeniedError(`"${identity}" is not a SPIFFE ID of trust domain ${this.trustDomain} (spiffe://${this.trustDomain}/ns/<namespace>/sa/<service account>)`);
    }
  }

  /** The lifetime granted for a request: 0/absent is the default, more than the maximum is cut to it. */
  workloadTtl(requested: number | undefined): number {
    if (requested === undefined || requested === 0) return Math.min(this.defaultTtlSeconds, this.maxTtlSeconds);
    if (!Number.isFinite(requested) || requested < 0) throw new CaError('MESHD_CA_TTL_INVALID', `requested lifetime ${requested} s is not a positive number of seconds`);
    return Math.min(requested, this.maxTtlSeconds);
  }

  private async issueLeaf(spki: Asn1, names: { uris?: string[]; dnsNames?: string[]; ipAddresses?: string[] }, ttlSeconds: number): Promise<string[]> {
    const now = this.now().getTime();
    const notAfter = new Date(Math.min(now + ttlSeconds * 1000, this.chainNotAfter.getTime()));
    let der: Buffer;
    try {
      der = await signCertificate(
        {
          subject: emptyName(),
          subjectPublicKeyInfo: spki,
          notBefore: new Date(now - BACKDATE_MS),
          notAfter,
          extensions: [
            keyUsage({ digitalSignature: true, keyEncipherment: true }),
            extKeyUsage([OID_EKU.serverAuth, OID_EKU.clientAuth]),
            basicConstraints(false),
            subjectKeyIdentifier(keyIdentifier(spki)),
            authorityKeyIdentifier(this.root.signing.keyId),
            // The subject is empty, so the SubjectAltName is critical.
            subjectAltName(names, true),
          ],
        },
        this.issuer,
      );
    } catch (err) {
      throw new CaError('MESHD_CA_SIGNING_FAILED', `signing failed: ${(err as Error).message}`);
    }
    return [certificatePem(der), ...this.chainPem];
  }
}
