// Where a control plane's config comes from: a watched YAML directory, or a cluster's
// informers. With a cluster, the work that must have one writer (the root-certificate
// ConfigMaps) runs on the replica that holds the leader Lease.
import type { KubeConnection } from '../kube/client.js';
import type { LeaderElector } from '../kube/leader-election.js';
import { FileSource } from '../sources/file/file-source.js';
import type { KubeSource } from '../sources/kube/kube-source.js';
import type { RootPublisher } from '../controllers/root-publisher.js';
import type { WebhookConfigurations } from '../controllers/webhook-configurations.js';
import { ObservedObjects } from '../controllers/observed-objects.js';
import type { StatusWriter } from '../controllers/status-writer.js';
import { envoyRoot } from '../xds/protos.js';
import type { Core } from './core.js';
import type { Security } from './security.js';
import type { ControlPlaneOptions } from './options.js';

export interface ConfigSource {
  /** The cluster, when config comes from one. */
  readonly conn: KubeConnection | undefined;
  readonly kube: KubeSource | undefined;
  /** Loads (or lists) everything, then starts the leader work's election. */
  start(security: Security): Promise<void>;
  /** True once everything was loaded or listed. */
  synced(): boolean;
  /** The leader election's state, for /debug/leaderz. */
  leaderStatus(): unknown;
  /** Hands the leader work to another replica (SIGTERM). */
  stopLeading(): Promise<void>;
  stop(): Promise<void>;
}

/** Creates the source; a cluster's client is loaded only when one is used (it takes half a second). */
export async function createConfigSource(o: ControlPlaneOptions, core: Core): Promise<ConfigSource> {
  const { log, source } = o;
  const { store, metrics } = core;
  let files: FileSource | undefined;
  let kube: KubeSource | undefined;
  let conn: KubeConnection | undefined;
  /** The Istio objects as stored (their status), for the status writer. */
  let observed: ObservedObjects | undefined;
  if (source.type === 'file') {
    files = new FileSource({
      dir: source.dir,
      store,
      log: log.child({ component: 'file-source' }),
      // Objects' errors are refusals, counted by the push controller from the snapshot's findings.
      onProblem: (p) => {
        if (!p.object) metrics.configErrors.inc({ kind: 'file' });
      },
    });
  } else {
    const [{ KubeSource }, { loadKubeConfig }] = await Promise.all([import('../sources/kube/kube-source.js'), import('../kube/client.js')]);
    conn = loadKubeConfig(source.kubeconfig);
    observed = new ObservedObjects();
    kube = new KubeSource({ conn, store, log: log.child({ component: 'kube-source' }), metrics, observer: observed });
  }
  let elector: LeaderElector | undefined;
  let publisher: RootPublisher | undefined;
  let caBundle: WebhookConfigurations | undefined;
  let status: StatusWriter | undefined;
  let stopped = false;

  const startLeaderElection = async (c: KubeConnection, security: Security): Promise<void> => {
    const [{ RootPublisher }, { LeaderElector, kubeLeaseApi }, { startWebhookConfigurations }, { StatusWriter }, { DistributionIndex }] = await Promise.all([
      import('../controllers/root-publisher.js'),
      import('../kube/leader-election.js'),
      import('../controllers/webhook-configurations.js'),
      import('../controllers/status-writer.js'),
      import('../xds/distribution.js'),
    ]);
    if (stopped) return;
    elector = new LeaderElector({
      leases: kubeLeaseApi(c),
      namespace: security.caOptions.namespace,
      ...o.leaderElection,
      log: log.child({ component: 'leader-election' }),
      registry: metrics.registry,
      // The root certificate, as ConfigMap istio-ca-root-cert in every namespace.
      onStartedLeading: () => {
        publisher = new RootPublisher({ conn: c, store, rootCertPem: security.ca.rootCertPem, log: security.log });
        publisher.start();
        // The webhook configurations trust meshd's root (caBundle); the validator fails closed once proven.
        if (o.webhookAddr !== undefined) {
          caBundle = startWebhookConfigurations({ conn: c, rootCertPem: security.ca.rootCertPem, namespace: security.caOptions.namespace, failClose: o.validationFailClose, log, metrics });
        }
        // Status on the Istio objects: accepted or not, and whether their proxies have them.
        if (observed && o.statusWriteRate !== 0) {
          const { generator, ads } = core;
          status = new StatusWriter({
            conn: c,
            objects: observed,
            snapshot: () => generator.snapshot,
            distribution: (current) => DistributionIndex.of(ads.connections, current),
            onDistributionChange: (l) => ads.onDistributionChange(l),
            onSnapshot: (l) => core.pushes.onSnapshot(() => l()),
            writeRate: o.statusWriteRate,
            metrics,
            log: log.child({ component: 'status' }),
          });
          status.start();
        }
      },
      onStoppedLeading: async () => {
        const p = publisher;
        const b = caBundle;
        const w = status;
        publisher = undefined;
        caBundle = undefined;
        status = undefined;
        await Promise.all([p?.stop(), b?.stop(), w?.stop()]);
      },
    });
    elector.start();
  };

  return {
    conn,
    kube,
    async start(security) {
      if (files) {
        const loaded = files.start();
        log.info({ dir: files.dir, objects: loaded.objects.length, problems: loaded.problems.length }, 'configuration loaded');
      } else if (kube && conn) {
        await kube.start();
        // Load Envoy's protos while the informers list, not after.
        envoyRoot();
        await kube.synced();
        log.info({ objects: store.size }, 'all informers synced');
        if (!stopped) await startLeaderElection(conn, security);
      }
    },
    synced: () => kube?.ready ?? true,
    leaderStatus: () => elector?.status() ?? { state: kube ? 'not started' : 'no leader election without a cluster' },
    async stopLeading() {
      await elector?.stop();
    },
    async stop() {
      stopped = true;
      // First: the leader work stops and the Lease is released, so another replica takes over at once.
      await elector?.stop();
      files?.stop();
      await kube?.stop();
      await publisher?.stop();
      await caBundle?.stop();
      await status?.stop();
    },
  };
}
