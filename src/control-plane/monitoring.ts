// The monitoring port of a control plane: /metrics, /ready and the debug handlers.
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMonitoringServer } from '../monitoring/http-server.js';
import { debugHandlers } from '../monitoring/debug.js';
import type { Core } from './core.js';
import type { Security } from './security.js';
import type { ConfigSource } from './config-source.js';
import { splitHostPort, type ControlPlaneOptions } from './options.js';

export interface Monitoring {
  port: number;
  address: string;
  /** From now on /ready answers 503 (SIGTERM: the Service stops sending connections here). */
  markDraining(): void;
  stop(): Promise<void>;
}

export async function startMonitoring(o: ControlPlaneOptions, core: Core, security: Security, source: ConfigSource): Promise<Monitoring> {
  const { generator, ads, store, metrics } = core;
  const debug = debugHandlers(ads, generator, store);
  const kube = source.kube;
  if (kube) debug.informerz = () => ({ body: kube.status() });
  // The CA as it stands: root, source, lifetimes; never key material.
  debug.caz = () => ({
    body: {
      ...security.ca.describe(),
      rootCertPem: security.ca.rootCertPem,
      servingCertificate: { notAfter: security.servingCert.notAfter?.toISOString(), chain: security.servingCert.certChainPem },
      // SDS certificates of connected identities (renewed as they age); never their keys.
      workloadCertificates: security.workloadSecrets.describe(),
    },
  });
  debug.leaderz = () => ({ body: source.leaderStatus() });
  let draining = false;
  const server: HttpServer = createMonitoringServer({ metrics, log: o.log, ready: () => !draining && generator.snapshot !== undefined && source.synced(), debug });
  const m = splitHostPort(o.monitoringAddr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(m.port, m.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `${m.host}:${port}`,
    markDraining() {
      draining = true;
    },
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}
