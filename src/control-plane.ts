// The composition root: wires a config source, the store, the push controller, the
// ADS server, the CA and the monitoring server into one running control plane.
import * as grpc from '@grpc/grpc-js';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigStore } from './model/store.js';
import { FileSource } from './sources/file/file-source.js';
import type { KubeSource } from './sources/kube/kube-source.js';
import { envoyRoot } from './xds/protos.js';
import { ConfigGenerator } from './xds/generator.js';
import { AdsServer } from './xds/ads-server.js';
import { PushController } from './xds/push-controller.js';
import { Metrics } from './util/metrics.js';
import { createMonitoringServer } from './monitoring/http-server.js';
import { debugHandlers } from './monitoring/debug.js';
import type { Logger } from './util/log.js';
import type { KubeConnection } from './kube/client.js';
import type { CertificateAuthority } from './ca/ca.js';
import { createCertificateAuthority, type CaOptions } from './ca/setup.js';
import { NoTokenReviewAuthenticator, type Authenticator } from './ca/authenticate.js';
import { CaService } from './ca/ca-service.js';
import { WorkloadSecrets } from './xds/workload-secrets.js';
import { ServingCertificate, servingDnsNames } from './ca/serving-cert.js';
import type { RootPublisher } from './controllers/root-publisher.js';
import type { LeaderElector } from './kube/leader-election.js';

export type ConfigSourceOption = { type: 'file'; dir: string } | { type: 'kube'; kubeconfig: string | 'in-cluster' };

export interface ControlPlaneOptions {
  source: ConfigSourceOption;
  /** host:port; ":15010" means all interfaces. Port 0 picks a free one. */
  grpcAddr: string;
  monitoringAddr: string;
  domain: string;
  debounceMs: number;
  debounceMaxMs: number;
  /** Quiet time when only endpoints changed. */
  debounceEndpointsMs?: number;
  log: Logger;
  pushConcurrency?: number;
  /** TLS xDS and CA (host:port, port 0 picks one); not served when undefined. */
  secureGrpcAddr?: string;
  /** The CA; defaults: trust domain = domain, EC P-256, namespace istio-system. */
  ca?: Partial<CaOptions>;
  /** Audience service-account tokens must carry for the CA; default istio-ca. */
  tokenAudience?: string;
  /**
   * With a file source: a kubeconfig used only to review callers' tokens (TokenReview).
   * Without one, the CA API refuses every caller (UNAUTHENTICATED).
   */
  authKubeconfig?: string;
  /** Stream limits and rebalancing (defaults in brackets): see XdsStreamOptions. */
  xds?: XdsStreamOptions;
  /** Workload certificates are renewed when this fraction of their lifetime remains (Istio's SECRET_GRACE_PERIOD_RATIO); default 0.5. */
  certGraceRatio?: number;
  /** With a kube source: the Lease under which one replica does the single-writer work (the root ConfigMaps). */
  leaderElection?: { leaseDurationMs?: number; name?: string };
}

/** How ADS streams are bounded, admitted, rebalanced and drained. */
export interface XdsStreamOptions {
  /** A write that does not drain in this long detaches its stream [10 s]. */
  sendTimeoutMs?: number;
  /** A detached stream that still does not drain is closed after this [30 s]. */
  stallGraceMs?: number;
  /** Longest one proxy's push holds a push slot [1 s]. */
  pushSlotTimeoutMs?: number;
  /** New streams admitted per second, 0 for no limit [500], and how many may wait [10000]. */
  admissionRate?: number;
  admissionQueue?: number;
  /** Connections are closed gracefully after this long, so proxies spread over replicas [30 min]. */
  maxConnectionAgeMs?: number;
  /** On SIGTERM, open streams are closed spread over this long [10 s]. */
  drainMs?: number;
  /** Largest node metadata accepted, as JSON bytes [64 KiB]. */
  maxMetadataBytes?: number;
}

export interface ControlPlane {
  grpcPort: number;
  monitoringPort: number;
  store: ConfigStore;
  generator: ConfigGenerator;
  ads: AdsServer;
  pushes: PushController;
  metrics: Metrics;
  /** The port of the TLS gRPC server (xDS and CA); undefined when not served. */
  secureGrpcPort: number | undefined;
  ca: CertificateAuthority;
  /** Authenticates callers by their service-account token (the CA API; SDS later). */
  authenticator: Authenticator;
  /** Resolves once the source has synced and the first snapshot is served. */
  ready: Promise<void>;
  /** Stops taking streams and closes the open ones over the drain period (SIGTERM), then stops. */
  drainAndStop(): Promise<void>;
  stop(): Promise<void>;
}

export function splitHostPort(addr: string, defaultHost = '0.0.0.0'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr.trim());
  if (!m) throw new Error(`invalid address "${addr}": expected host:port or :port`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host || defaultHost, port: Number(m[3]) };
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const log = o.log;
  const metrics = new Metrics();
  const store = new ConfigStore();
  const generator = new ConfigGenerator();
  const ads = new AdsServer({
    generator,
    metrics,
    log: log.child({ component: 'ads' }),
    pushConcurrency: o.pushConcurrency ?? 20,
    sendTimeoutMs: o.xds?.sendTimeoutMs,
    stallGraceMs: o.xds?.stallGraceMs,
    pushSlotTimeoutMs: o.xds?.pushSlotTimeoutMs,
    admissionRate: o.xds?.admissionRate ?? 500,
    admissionQueue: o.xds?.admissionQueue,
    maxMetadataBytes: o.xds?.maxMetadataBytes,
  });
  const pushes = new PushController({
    store,
    generator,
    domain: o.domain,
    debounceMs: o.debounceMs,
    debounceMaxMs: o.debounceMaxMs,
    debounceEndpointsMs: o.debounceEndpointsMs ?? o.debounceMs,
    push: (req) => ads.push(req),
    metrics,
    log: log.child({ component: 'push' }),
  });
  let files: FileSource | undefined;
  let kube: KubeSource | undefined;
  let conn: KubeConnection | undefined;
  if (o.source.type === 'file') {
    files = new FileSource({
      dir: o.source.dir,
      store,
      log: log.child({ component: 'file-source' }),
      onProblem: (p) => metrics.configErrors.inc({ kind: p.object?.kind ?? 'file' }),
    });
  } else {
    // The Kubernetes client takes half a second to load: only when it is used.
    const [{ KubeSource }, { loadKubeConfig }] = await Promise.all([import('./sources/kube/kube-source.js'), import('./kube/client.js')]);
    conn = loadKubeConfig(o.source.kubeconfig);
    kube = new KubeSource({ conn, store, log: log.child({ component: 'kube-source' }), metrics });
  }

  // The CA: its root comes from files, the cluster's Secrets, or is generated here.
  const caLog = log.child({ component: 'ca' });
  const caOptions: CaOptions = { trustDomain: o.domain, keyType: 'ec-p256', namespace: 'istio-system', ...o.ca };
  const ca = await createCertificateAuthority({ ...caOptions, kube: conn, log: caLog });
  let authenticator: Authenticator;
  const reviewConn = conn ?? (o.authKubeconfig ? (await import('./kube/client.js')).loadKubeConfig(o.authKubeconfig) : undefined);
  if (reviewConn) {
    const { TokenReviewAuthenticator } = await import('./ca/token-review.js');
    authenticator = new TokenReviewAuthenticator({ conn: reviewConn, audience: o.tokenAudience, log: caLog });
  } else {
    authenticator = new NoTokenReviewAuthenticator();
    caLog.warn('no Kubernetes API to review tokens: the CA API refuses every caller (UNAUTHENTICATED); give meshd a kubeconfig to enable it');
  }
  const caService = new CaService({ ca, authenticator, metrics, log: caLog });
  // SDS: proxies whose stream carries a service-account token get that identity's certificate.
  const workloadSecrets = new WorkloadSecrets({
    issuer: ca,
    cache: generator.cache,
    ttlSeconds: ca.defaultTtlSeconds,
    rotateAt: 1 - (o.certGraceRatio ?? 0.5),
    onRotated: (key) => ads.onCertificateRotated(key),
    inUse: (key) => ads.identityInUse(key),
    log: caLog,
  });
  ads.useWorkloadIdentity({ authenticator, workloadSecrets, trustDomain: caOptions.trustDomain });

  const serverOptions: grpc.ServerOptions = {
    'grpc.max_send_message_length': -1,
    // ADS requests can be large (delta subscriptions); the CA refuses requests over 256 KiB itself.
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    // Connections are closed (GOAWAY, then after the grace) at this age, so proxies spread
    // over replicas after a scale-up or a restart; grpc-js adds jitter. istiod's default: 30 min.
    'grpc.max_connection_age_ms': o.xds?.maxConnectionAgeMs ?? 30 * 60_000,
    // Then streams get this long to end by themselves before the connection is closed (istiod: 10 s).
    'grpc.max_connection_age_grace_ms': Math.min(10_000, Math.max(1000, (o.xds?.maxConnectionAgeMs ?? 30 * 60_000) / 10)),
  };
  const bind = (server: grpc.Server, addr: string, creds: grpc.ServerCredentials): Promise<number> => {
    const a = splitHostPort(addr);
    return new Promise<number>((resolve, reject) =>
      server.bindAsync(`${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`, creds, (err, port) => (err ? reject(new Error(`binding ${addr}: ${err.message}`)) : resolve(port))),
    );
  };
  const grpcServer = new grpc.Server(serverOptions);
  ads.register(grpcServer);
  caService.register(grpcServer);
  const g = splitHostPort(o.grpcAddr);
  const grpcPort = await bind(grpcServer, o.grpcAddr, grpc.ServerCredentials.createInsecure());

  // TLS gRPC (Istio's 15012): the same ADS and CA services, with meshd's own certificate from its CA.
  let secureServer: grpc.Server | undefined;
  let secureGrpcPort: number | undefined;
  let servingCert: ServingCertificate | undefined;
  if (o.secureGrpcAddr !== undefined) {
    servingCert = new ServingCertificate({
      ca,
      dnsNames: servingDnsNames(caOptions.namespace, o.domain),
      ipAddresses: ['127.0.0.1', '::1'],
      ttlSeconds: ca.defaultTtlSeconds,
      log: caLog,
    });
    await servingCert.start();
    secureServer = new grpc.Server(serverOptions);
    ads.register(secureServer);
    caService.register(secureServer);
    secureGrpcPort = await bind(secureServer, o.secureGrpcAddr, servingCert.credentials());
  }

  const debug = debugHandlers(ads, generator, store);
  if (kube) debug.informerz = () => ({ body: kube.status() });
  // The CA as it stands: root, source, lifetimes; never key material.
  debug.caz = () => ({
    body: {
      ...ca.describe(),
      rootCertPem: ca.rootCertPem,
      servingCertificate: servingCert ? { notAfter: servingCert.notAfter?.toISOString(), chain: servingCert.certChainPem } : null,
      // SDS certificates of connected identities (renewed as they age); never their keys.
      workloadCertificates: workloadSecrets.describe(),
    },
  });
  let draining = false;
  const monitoring: HttpServer = createMonitoringServer({ metrics, log, ready: () => !draining && generator.snapshot !== undefined && (kube?.ready ?? true), debug });
  const m = splitHostPort(o.monitoringAddr);
  await new Promise<void>((resolve, reject) => {
    monitoring.once('error', reject);
    monitoring.listen(m.port, m.host, () => resolve());
  });
  const monitoringPort = (monitoring.address() as AddressInfo).port;
  const sg = o.secureGrpcAddr !== undefined ? splitHostPort(o.secureGrpcAddr) : undefined;
  log.info({ grpc: `${g.host}:${grpcPort}`, ...(sg ? { secureGrpc: `${sg.host}:${secureGrpcPort}` } : {}), monitoring: `${m.host}:${monitoringPort}` }, 'meshd serving');

  // Proxies are served only from a consistent view: after the source has fully synced.
  let publisher: RootPublisher | undefined;
  // Work with one writer (the root ConfigMaps) runs only on the replica holding the Lease.
  let elector: LeaderElector | undefined;
  debug.leaderz = () => ({ body: elector?.status() ?? { state: kube ? 'not started' : 'no leader election without a cluster' } });
  let stopped = false;
  const ready = (async (): Promise<void> => {
    if (files) {
      const loaded = files.start();
      log.info({ dir: files.dir, objects: loaded.objects.length, problems: loaded.problems.length }, 'configuration loaded');
    } else if (kube) {
      await kube.start();
      // Load Envoy's protos while the informers list, not after.
      envoyRoot();
      await kube.synced();
      log.info({ objects: store.size }, 'all informers synced');
      // The root certificate, as ConfigMap istio-ca-root-cert in every namespace, by the leader.
      if (conn && !stopped) {
        const [{ RootPublisher }, { LeaderElector, kubeLeaseApi }] = await Promise.all([import('./controllers/root-publisher.js'), import('./kube/leader-election.js')]);
        const c = conn;
        elector = new LeaderElector({
          leases: kubeLeaseApi(c),
          namespace: caOptions.namespace,
          ...o.leaderElection,
          log: log.child({ component: 'leader-election' }),
          registry: metrics.registry,
          onStartedLeading: () => {
            publisher = new RootPublisher({ conn: c, store, rootCertPem: ca.rootCertPem, log: caLog });
            publisher.start();
          },
          onStoppedLeading: async () => {
            const p = publisher;
            publisher = undefined;
            await p?.stop();
          },
        });
        elector.start();
      }
    }
    const snapshot = pushes.start();
    log.info({ services: snapshot.services.length }, 'serving configuration');
  })();
  ready.catch((err: unknown) => log.error({ err: String(err) }, 'starting the config source failed'));

  const cp: ControlPlane = {
    grpcPort,
    monitoringPort,
    store,
    generator,
    ads,
    pushes,
    metrics,
    secureGrpcPort,
    ca,
    authenticator,
    ready,
    async drainAndStop(): Promise<void> {
      // Not ready first, so the Service stops sending new connections here; then no new
      // streams; then the open ones close a few at a time and their proxies reconnect elsewhere.
      draining = true;
      // The leader work moves to another replica at once, not after the drain.
      await elector?.stop();
      const drainMs = o.xds?.drainMs ?? 10_000;
      log.info({ streams: ads.connections.size, drainMs }, 'draining xDS streams');
      await ads.drain(drainMs);
      await cp.stop();
    },
    async stop(): Promise<void> {
      stopped = true;
      // First: the leader work stops and the Lease is released, so another replica takes over at once.
      await elector?.stop();
      files?.stop();
      await kube?.stop();
      await publisher?.stop();
      servingCert?.stop();
      workloadSecrets.stop();
      pushes.stop();
      ads.closeAll();
      // ADS streams never end by themselves: cancel them; proxies reconnect to another replica.
      grpcServer.forceShutdown();
      secureServer?.forceShutdown();
      await new Promise<void>((resolve) => monitoring.close(() => resolve()));
      monitoring.closeAllConnections();
    },
  };
  return cp;
}
