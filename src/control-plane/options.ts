// What a control plane is started with, and what a started one offers.
import type { Logger } from '../util/log.js';
import type { Metrics } from '../util/metrics.js';
import type { ConfigStore } from '../model/store.js';
import type { CaOptions } from '../ca/setup.js';
import type { CertificateAuthority } from '../ca/ca.js';
import type { Authenticator } from '../ca/authenticate.js';
import type { ConfigGenerator } from '../xds/generator.js';
import type { AdsServer } from '../xds/ads-server.js';
import type { PushController } from '../xds/push-controller.js';
import type { InjectorSettings } from '../inject/injector.js';

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
  /** HTTPS admission webhooks (sidecar injection at /inject); not served when undefined. */
  webhookAddr?: string;
  /** Switch the validating webhook to failurePolicy Fail once a dry run proves it refuses invalid config (default true). */
  validationFailClose?: boolean;
  /** Injector settings under the istio-sidecar-injector ConfigMap's (image hub and tag, mode...). */
  injector?: Partial<InjectorSettings>;
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
  /**
   * The mesh config file (Istio's MeshConfig as YAML), watched; without it, a cluster's ConfigMap
   * `istio` (key `mesh`) in meshd's namespace. `ca.trustDomain`, when set, wins over its trustDomain.
   */
  meshConfigFile?: string;
  /** With a kube source: the Lease under which one replica does the single-writer work (the root ConfigMaps). */
  leaderElection?: { leaseDurationMs?: number; name?: string };
  /** With a kube source: status writes per second to Istio objects (by the leader) [20]; 0 writes none. */
  statusWriteRate?: number;
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
  /** Sidecars on delta ADS take their service virtual hosts over VHDS [true]. */
  vhds?: boolean;
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
  /** The port of the webhook server; undefined when not served. */
  webhookPort: number | undefined;
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
