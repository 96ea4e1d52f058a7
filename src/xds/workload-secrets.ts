// SDS secrets for proxies that connect without an agent: meshd makes the key and the
// certificate for each workload identity (one per namespace/service account, shared by its
// proxies), encodes them once, and renews them before they expire.
import { X509Certificate } from 'node:crypto';
import type { WorkloadIdentity } from '../model/proxy.js';
import { rootCaSecret, workloadSecret } from '../translate/mtls.js';
import { spiffeId } from '../model/spiffe.js';
import { TypeUrl } from '../translate/types.js';
import type { Logger } from '../util/log.js';
import type { CachedResource, ResourceCache } from './resource-cache.js';

/** What meshd's CA offers here (see src/ca/ca.ts). */
export interface WorkloadIssuer {
  readonly rootCertPem: string;
  issue(identity: string, ttlSeconds?: number): Promise<{ certChainPem: string[]; privateKeyPem: string }>;
}

export interface WorkloadSecretsOptions {
  issuer: WorkloadIssuer;
  cache: ResourceCache;
  /** Lifetime of workload certificates; the CA's default when unset. */
  ttlSeconds?: number;
  /** When, as a fraction of its lifetime, a certificate is renewed (default 0.5). */
  rotateAt?: number;
  /** A new certificate was made for `key` (`namespace/serviceAccount`): push it to its proxies. */
  onRotated(key: string): void;
  /** Whether any proxy still uses `key`; unused identities are not renewed. */
  inUse(key: string): boolean;
  log: Logger;
}

interface Issued {
  secret: CachedResource;
  timer: NodeJS.Timeout | undefined;
  spiffe: string;
  notAfter: number;
}

export function identityKey(id: Pick<WorkloadIdentity, 'namespace' | 'serviceAccount'>): string {
  return `${id.namespace}/${id.serviceAccount}`;
}

export class WorkloadSecrets {
  /** Issued or being issued, by identity key: concurrent first requests share one issue. */
  private readonly issued = new Map<string, Promise<Issued>>();
  /** The certificate each identity has now (the newest issued). */
  private readonly latest = new Map<string, Issued>();
  private readonly rotateAt: number;
  private stopped = false;

  constructor(private readonly o: WorkloadSecretsOptions) {
    this.rotateAt = o.rotateAt ?? 0.5;
    if (!(this.rotateAt > 0 && this.rotateAt < 1)) throw new Error(`rotation point must be a fraction of the lifetime between 0 and 1, got ${this.rotateAt}`);
  }

  /** SDS `ROOTCA`. */
  rootSecret(): CachedResource {
    return this.o.cache.intern(TypeUrl.Secret, rootCaSecret(this.o.issuer.rootCertPem));
  }

  /** SDS `default` for an identity, issued on first use. */
  async workloadSecret(id: WorkloadIdentity): Promise<CachedResource> {
    const key = identityKey(id);
    let p = this.issued.get(key);
    if (!p) {
      p = this.issue(id);
      this.issued.set(key, p);
      p.catch(() => this.issued.delete(key));
    }
    return (await p).secret;
  }

  /** The current `default` of an identity, if one was issued. */
  current(key: string): CachedResource | undefined {
    return this.latest.get(key)?.secret;
  }

  /** The certificates in use, for /debug (no key material). */
  describe(): { identity: string; notAfter: string; version: string }[] {
    return [...this.latest.values()].map((i) => ({ identity: i.spiffe, notAfter: new Date(i.notAfter).toISOString(), version: i.secret.version })).sort((a, b) => (a.identity < b.identity ? -1 : 1));
  }

  stop(): void {
    this.stopped = true;
    for (const p of this.issued.values()) void p.then((i) => clearTimeout(i.timer), () => undefined);
  }

  private async issue(id: WorkloadIdentity): Promise<Issued> {
    const spiffe = spiffeId(id.trustDomain, id.namespace, id.serviceAccount);
    const { certChainPem, privateKeyPem } = await this.o.issuer.issue(spiffe, this.o.ttlSeconds);
    const secret = this.o.cache.intern(TypeUrl.Secret, workloadSecret(certChainPem, privateKeyPem));
    // Renewed at `rotateAt` of the time it is valid from now (its notBefore is backdated).
    const notAfter = notAfterMs(certChainPem[0]!);
    const timer = this.stopped ? undefined : setTimeout(() => void this.renew(id), Math.max(1000, (notAfter - Date.now()) * this.rotateAt));
    timer?.unref();
    this.o.log.info({ identity: spiffe, notAfter: new Date(notAfter).toISOString() }, 'issued workload certificate');
    const issued = { secret, timer, spiffe, notAfter };
    this.latest.set(identityKey(id), issued);
    return issued;
  }

  private async renew(id: WorkloadIdentity): Promise<void> {
    const key = identityKey(id);
    if (this.stopped) return;
    if (!this.o.inUse(key)) {
      this.issued.delete(key);
      this.latest.delete(key);
      return;
    }
    const next = this.issue(id);
    try {
      await next;
    } catch (err) {
      this.o.log.error({ identity: key, err: String(err) }, 'renewing a workload certificate failed; retrying in 10 s');
      setTimeout(() => void this.renew(id), 10_000).unref();
      return;
    }
    this.issued.set(key, next);
    this.o.onRotated(key);
  }
}

function notAfterMs(pem: string): number {
  return Date.parse(new X509Certificate(pem).validTo);
}
