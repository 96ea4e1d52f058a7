// The webhook port of a control plane (Istio's 15017): config validation at /validate; sidecar injection at /inject, with
// the injector's settings following ConfigMap istio-sidecar-injector in meshd's namespace
// (applied without a restart; a bad edit is logged and the last good settings stay).
import { ConfigMapWatch } from '../kube/configmap-watch.js';
import { defaultInjectorSettings, parseInjectorSettings, type InjectorSettings } from '../inject/injector.js';
import { startWebhookServer, type WebhookServer } from '../webhooks/https-server.js';
import { injectWebhook } from '../webhooks/inject.js';
import { validateWebhook } from '../webhooks/validate.js';
import type { Core } from './core.js';
import type { Security } from './security.js';
import type { ConfigSource } from './config-source.js';
import type { MeshConfigWatcher } from './mesh-config.js';
import { splitHostPort, type ControlPlaneOptions } from './options.js';

export const INJECTOR_CONFIGMAP = 'istio-sidecar-injector';

export interface Webhooks {
  port: number;
  address: string;
  /** The injector's settings now. */
  settings(): InjectorSettings;
  stop(): Promise<void>;
}

export async function startWebhooks(o: ControlPlaneOptions, core: Core, security: Security, source: ConfigSource, mesh?: MeshConfigWatcher): Promise<Webhooks | undefined> {
  if (o.webhookAddr === undefined) return undefined;
  const log = o.log.child({ component: 'webhooks' });
  const namespace = security.caOptions.namespace;
  // Settings as meshd runs them: Istio's defaults with the mesh config's defaultConfig as the
  // proxy config (as istiod injects it), meshd's flags, then the ConfigMap on top.
  const baseSettings = (): InjectorSettings => ({ ...defaultInjectorSettings(), proxyConfig: mesh?.current().defaultConfig ?? {}, ...(o.injector ?? {}) });
  let data: Record<string, string> | undefined;
  let settings = baseSettings();
  const recompute = (announce: boolean): void => {
    const base = baseSettings();
    if (!data) {
      settings = base;
      return;
    }
    try {
      settings = parseInjectorSettings({ data }, base);
      if (announce) log.info({ configMap: `${namespace}/${INJECTOR_CONFIGMAP}` }, 'sidecar injector settings applied');
    } catch (err) {
      log.error({ configMap: `${namespace}/${INJECTOR_CONFIGMAP}`, err: String(err) }, 'sidecar injector settings refused; the last good ones stay');
    }
  };
  mesh?.onChange(() => recompute(false));
  let watch: ConfigMapWatch | undefined;
  if (source.conn) {
    watch = new ConfigMapWatch(
      source.conn,
      namespace,
      INJECTOR_CONFIGMAP,
      (d) => {
        data = d;
        recompute(true);
      },
      log,
    );
    watch.start();
  }
  const inject = injectWebhook({
    settings: () => settings,
    namespaceLabels: (ns) => core.store.get('Namespace', '', ns)?.metadata.labels,
    metrics: core.metrics,
    log,
  });
  const a = splitHostPort(o.webhookAddr);
  const server: WebhookServer = await startWebhookServer({ host: a.host, port: a.port, servingCert: security.servingCert, handlers: { '/inject': inject, '/validate': validateWebhook({ log, snapshot: () => core.generator.snapshot }) }, log });
  return {
    port: server.port,
    address: `${a.host}:${server.port}`,
    settings: () => settings,
    async stop() {
      await watch?.stop();
      await server.stop();
    },
  };
}
