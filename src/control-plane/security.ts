// The CA side of a control plane: the root of trust, token review, Istio's CA API and the
// workload certificates sent over SDS to proxies that prove an identity.
import type { KubeConnection } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import type { CertificateAuthority } from '../ca/ca.js';
import { createCertificateAuthority, type CaOptions } from '../ca/setup.js';
import { NoTokenReviewAuthenticator, type Authenticator } from '../ca/authenticate.js';
import { CaService } from '../ca/ca-service.js';
import { WorkloadSecrets } from '../xds/workload-secrets.js';
import { ServingCertificate, servingDnsNames } from '../ca/serving-cert.js';
import type { Core } from './core.js';
import type { ControlPlaneOptions } from './options.js';

export interface Security {
  ca: CertificateAuthority;
  caOptions: CaOptions;
  authenticator: Authenticator;
  caService: CaService;
  workloadSecrets: WorkloadSecrets;
  /** meshd's own certificate (istiod.<ns>.svc...), for the TLS gRPC port and the webhook port. */
  servingCert: ServingCertificate;
  log: Logger;
  stop(): void;
}

/** `conn` is the cluster meshd watches, if any: the CA's Secrets live there and tokens are reviewed there. */
export async function startSecurity(o: ControlPlaneOptions, core: Core, conn: KubeConnection | undefined): Promise<Security> {
  const log = o.log.child({ component: 'ca' });
  // The root comes from files, the cluster's Secrets, or is generated here.
  const caOptions: CaOptions = { trustDomain: o.domain, keyType: 'ec-p256', namespace: 'istio-system', ...o.ca };
  const ca = await createCertificateAuthority({ ...caOptions, kube: conn, log });
  let authenticator: Authenticator;
  const reviewConn = conn ?? (o.authKubeconfig ? (await import('../kube/client.js')).loadKubeConfig(o.authKubeconfig) : undefined);
  if (reviewConn) {
    const { TokenReviewAuthenticator } = await import('../ca/token-review.js');
    authenticator = new TokenReviewAuthenticator({ conn: reviewConn, audience: o.tokenAudience, log });
  } else {
    authenticator = new NoTokenReviewAuthenticator();
    log.warn('no Kubernetes API to review tokens: the CA API refuses every caller (UNAUTHENTICATED); give meshd a kubeconfig to enable it');
  }
  const caService = new CaService({ ca, authenticator, metrics: core.metrics, log });
  // SDS: proxies whose stream carries a service-account token get that identity's certificate.
  const { ads } = core;
  const workloadSecrets = new WorkloadSecrets({
    issuer: ca,
    cache: core.generator.cache,
    ttlSeconds: ca.defaultTtlSeconds,
    rotateAt: 1 - (o.certGraceRatio ?? 0.5),
    onRotated: (key) => ads.onCertificateRotated(key),
    inUse: (key) => ads.identityInUse(key),
    log,
  });
  ads.useWorkloadIdentity({ authenticator, workloadSecrets, trustDomain: caOptions.trustDomain, systemNamespace: caOptions.namespace });
  const servingCert = new ServingCertificate({
    ca,
    dnsNames: servingDnsNames(caOptions.namespace, o.domain),
    ipAddresses: ['127.0.0.1', '::1'],
    ttlSeconds: ca.defaultTtlSeconds,
    log,
  });
  await servingCert.start();
  return {
    ca,
    caOptions,
    authenticator,
    caService,
    workloadSecrets,
    servingCert,
    log,
    stop() {
      servingCert.stop();
      workloadSecrets.stop();
    },
  };
}
