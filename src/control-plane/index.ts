// The composition root: starts the core (store, generator, ADS, pushes), the config
// source, the CA, the gRPC servers and the monitoring port, and stops them in order.
import { startCore } from './core.js';
import { createConfigSource } from './config-source.js';
import { startSecurity } from './security.js';
import { startGrpcServers } from './grpc-servers.js';
import { startMonitoring } from './monitoring.js';
import { startWebhooks } from './webhooks.js';
import { startMeshConfig } from './mesh-config.js';
import type { ControlPlane, ControlPlaneOptions } from './options.js';

export type { ConfigSourceOption, ControlPlane, ControlPlaneOptions, XdsStreamOptions } from './options.js';
export { splitHostPort } from './options.js';

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const log = o.log;
  const core = startCore(o);
  const source = await createConfigSource(o, core);
  // The mesh config first: the CA takes its trustDomain (unless --trust-domain says otherwise).
  const mesh = await startMeshConfig(o, core, source, o.ca?.namespace ?? 'istio-system');
  const trustDomain = o.ca?.trustDomain ?? mesh.current().trustDomain;
  if (o.ca?.trustDomain !== undefined && o.ca.trustDomain !== mesh.current().trustDomain) {
    log.info({ trustDomain, meshConfig: mesh.where, meshTrustDomain: mesh.current().trustDomain }, "--trust-domain wins over the mesh config's trustDomain");
  }
  const security = await startSecurity({ ...o, ca: { ...o.ca, trustDomain } }, core, source.conn);
  const servers = await startGrpcServers(o, core, security);
  const webhooks = await startWebhooks(o, core, security, source, mesh);
  const monitoring = await startMonitoring(o, core, security, source);
  log.info({ ...servers.addresses, ...(webhooks ? { webhooks: webhooks.address } : {}), monitoring: monitoring.address }, 'meshd serving');

  // Proxies are served only from a consistent view: after the source has fully synced.
  const ready = (async (): Promise<void> => {
    await source.start(security);
    const snapshot = core.pushes.start();
    log.info({ services: snapshot.services.length }, 'serving configuration');
  })();
  ready.catch((err: unknown) => log.error({ err: String(err) }, 'starting the config source failed'));

  const stop = async (): Promise<void> => {
    await mesh.stop();
    await source.stop();
    await webhooks?.stop();
    security.stop();
    core.stop();
    servers.stop();
    await monitoring.stop();
  };
  return {
    grpcPort: servers.grpcPort,
    monitoringPort: monitoring.port,
    store: core.store,
    generator: core.generator,
    ads: core.ads,
    pushes: core.pushes,
    metrics: core.metrics,
    secureGrpcPort: servers.secureGrpcPort,
    webhookPort: webhooks?.port,
    ca: security.ca,
    authenticator: security.authenticator,
    ready,
    async drainAndStop(): Promise<void> {
      // Not ready first, so the Service stops sending new connections here; the leader work
      // moves to another replica at once; then the open streams close a few at a time and
      // their proxies reconnect elsewhere.
      monitoring.markDraining();
      await source.stopLeading();
      const drainMs = o.xds?.drainMs ?? 10_000;
      log.info({ streams: core.ads.connections.size, drainMs }, 'draining xDS streams');
      await core.ads.drain(drainMs);
      await stop();
    },
    stop,
  };
}
