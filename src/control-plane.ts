// The composition root: wires a config source, the store, the push controller, the
// ADS server and the monitoring server into one running control plane.
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
import { Metrics } from './monitoring/metrics.js';
import { createMonitoringServer } from './monitoring/http-server.js';
import { debugHandlers } from './monitoring/debug.js';
import type { Logger } from './util/log.js';

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
}

export interface ControlPlane {
  grpcPort: number;
  monitoringPort: number;
  store: ConfigStore;
  generator: ConfigGenerator;
  ads: AdsServer;
  pushes: PushController;
  metrics: Metrics;
  /** Resolves once the source has synced and the first snapshot is served. */
  ready: Promise<void>;
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
  const ads = new AdsServer({ generator, metrics, log: log.child({ component: 'ads' }), pushConcurrency: o.pushConcurrency ?? 20 });
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
  if (o.source.type === 'file') {
    files = new FileSource({
      dir: o.source.dir,
      store,
      log: log.child({ component: 'file-source' }),
      onProblem: (p) => metrics.configErrors.inc({ kind: p.object?.kind ?? 'file' }),
    });
  } else {
    // The Kubernetes client takes half a second to load: only when it is used.
    const [{ KubeSource }, { loadKubeConfig }] = await Promise.all([import('./sources/kube/kube-source.js'), import('./sources/kube/client.js')]);
    kube = new KubeSource({ conn: loadKubeConfig(o.source.kubeconfig), store, log: log.child({ component: 'kube-source' }), metrics });
  }

  const grpcServer = new grpc.Server({
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  ads.register(grpcServer);
  const g = splitHostPort(o.grpcAddr);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${g.host.includes(':') ? `[${g.host}]` : g.host}:${g.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );

  const debug = debugHandlers(ads, generator, store);
  if (kube) debug.informerz = () => ({ body: kube.status() });
  const monitoring: HttpServer = createMonitoringServer({ metrics, log, ready: () => generator.snapshot !== undefined && (kube?.ready ?? true), debug });
  const m = splitHostPort(o.monitoringAddr);
  await new Promise<void>((resolve, reject) => {
    monitoring.once('error', reject);
    monitoring.listen(m.port, m.host, () => resolve());
  });
  const monitoringPort = (monitoring.address() as AddressInfo).port;
  log.info({ grpc: `${g.host}:${grpcPort}`, monitoring: `${m.host}:${monitoringPort}` }, 'meshd serving');

  // Proxies are served only from a consistent view: after the source has fully synced.
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
    }
    const snapshot = pushes.start();
    log.info({ services: snapshot.services.length }, 'serving configuration');
  })();
  ready.catch((err: unknown) => log.error({ err: String(err) }, 'starting the config source failed'));

  return {
    grpcPort,
    monitoringPort,
    store,
    generator,
    ads,
    pushes,
    metrics,
    ready,
    async stop(): Promise<void> {
      files?.stop();
      await kube?.stop();
      pushes.stop();
      ads.closeAll();
      // ADS streams never end by themselves: cancel them; proxies reconnect to another replica.
      grpcServer.forceShutdown();
      await new Promise<void>((resolve) => monitoring.close(() => resolve()));
      monitoring.closeAllConnections();
    },
  };
}
