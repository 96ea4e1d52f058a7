// meshd's own TLS certificate for its secure gRPC port, issued by its CA (so proxies that
// trust the mesh root trust meshd) and renewed at half its lifetime without a restart,
// through grpc-js's certificate-provider credentials.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../util/log.js';
import type { CertificateAuthority, IssuedKeyAndCertificate } from './ca.js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type IdentityCertificateUpdate = grpc.experimental.IdentityCertificateUpdate;
type IdentityCertificateUpdateListener = grpc.experimental.IdentityCertificateUpdateListener;

export interface ServingCertificateOptions {
  ca: CertificateAuthority;
  dnsNames: string[];
  ipAddresses: string[];
  ttlSeconds: number;
  log: Logger;
}

/** The DNS names istiod's serving certificate carries, for meshd running as `istiod` in `namespace`. */
export function servingDnsNames(namespace: string, domain: string): string[] {
  return [...new Set([`istiod.${namespace}.svc`, `istiod.${namespace}.svc.${domain}`, 'istiod.istio-system.svc', `istiod.istio-system.svc.${domain}`, 'localhost'])];
}

export class ServingCertificate implements CertificateProvider {
  private update: IdentityCertificateUpdate | undefined;
  private readonly listeners = new Set<IdentityCertificateUpdateListener>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The certificate being served (chain PEM, leaf first), without its key. */
  certChainPem: string[] = [];
  notAfter: Date | undefined;

  constructor(private readonly o: ServingCertificateOptions) {}

  /** Issues the first certificate; renewals follow by themselves. */
  async start(): Promise<void> {
    await this.renew();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** TLS server credentials that follow this certificate as it is renewed; no client certificate is asked for. */
  credentials(): grpc.ServerCredentials {
    return grpc.experimental.createCertificateProviderServerCredentials(this, null, false);
  }

  private async renew(): Promise<void> {
    let issued: IssuedKeyAndCertificate;
    try {
      issued = await this.o.ca.issueServingCertificate({ dnsNames: this.o.dnsNames, ipAddresses: this.o.ipAddresses, ttlSeconds: this.o.ttlSeconds });
    } catch (err) {
      this.o.log.error({ err: String(err) }, 'issuing the serving certificate failed; retrying in 10 s');
      this.schedule(10_000);
      if (!this.update) throw err;
      return;
    }
    // The root stays out: a TLS server sends its certificate and the intermediates.
    const served = issued.certChainPem.slice(0, -1);
    this.certChainPem = issued.certChainPem;
    this.update = { certificate: Buffer.from(served.join('')), privateKey: Buffer.from(issued.privateKeyPem) };
    const leaf = new X509Certificate(issued.certChainPem[0]!);
    this.notAfter = new Date(leaf.validTo);
    const lifetime = this.notAfter.getTime() - Date.now();
    this.o.log.info({ dnsNames: this.o.dnsNames, notAfter: this.notAfter.toISOString() }, 'serving certificate issued');
    for (const l of this.listeners) l(this.update);
    this.schedule(Math.max(1000, lifetime / 2));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    // setTimeout holds at most ~24.8 days; longer waits are re-armed.
    const wait = Math.min(ms, 2 ** 31 - 1);
    this.timer = setTimeout(() => void (wait < ms ? this.schedule(ms - wait) : this.renew()), wait);
    this.timer.unref();
  }

  addCaCertificateListener(): void {
    /* no client certificates are requested */
  }

  removeCaCertificateListener(): void {
    /* no client certificates are requested */
  }

  addIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.listeners.add(listener);
    // Delivered on a later tick: grpc-js attaches its own watcher only after adding this listener.
    setImmediate(() => {
      if (this.update && this.listeners.has(listener)) listener(this.update);
    });
  }

  removeIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.listeners.delete(listener);
  }
}
