// Keeps the `caBundle` of meshd's webhook configurations (Istio's names: the
// MutatingWebhookConfiguration `istio-sidecar-injector`, later the validating one) set to
// meshd's root, so the apiserver trusts the webhook port's certificate. One writer: it
// runs on the replica that holds the leader Lease. The configurations are watched by name,
// so one edited by hand (or re-applied from manifests without a caBundle) is patched back.
import type { KubernetesObject } from '@kubernetes/client-node';
import { KubeApiError, kubeRequest, type KubeConnection } from '../kube/client.js';
import { ResilientInformer, type BackoffPolicy } from '../kube/resilient-informer.js';
import type { Logger } from '../util/log.js';

export const INJECTOR_WEBHOOK_CONFIG = 'istio-sidecar-injector';
export const VALIDATOR_WEBHOOK_CONFIG = 'istio-validator-istio-system';

interface WebhookConfiguration extends KubernetesObject {
  webhooks?: { name: string; clientConfig?: { caBundle?: string; [k: string]: unknown }; [k: string]: unknown }[];
}

export interface WebhookTarget {
  /** `mutatingwebhookconfigurations` or `validatingwebhookconfigurations`. */
  resource: 'mutatingwebhookconfigurations' | 'validatingwebhookconfigurations';
  name: string;
}

export interface WebhookCaBundleOptions {
  conn: KubeConnection;
  rootCertPem: string;
  targets: WebhookTarget[];
  log: Logger;
  backoff?: BackoffPolicy;
}

export class WebhookCaBundlePatcher {
  private readonly informers: ResilientInformer<WebhookConfiguration>[] = [];
  private readonly bundle: string;
  private stopped = false;
  /** Configurations patched (for tests and logs). */
  writes = 0;

  constructor(private readonly o: WebhookCaBundleOptions) {
    this.bundle = Buffer.from(o.rootCertPem).toString('base64');
  }

  start(): void {
    for (const t of this.o.targets) {
      const path = `/apis/admissionregistration.k8s.io/v1/${t.resource}`;
      const kind = t.resource === 'mutatingwebhookconfigurations' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration';
      const informer = new ResilientInformer<WebhookConfiguration>(
        this.o.conn,
        `${path}?fieldSelector=${encodeURIComponent(`metadata.name=${t.name}`)}`,
        'admissionregistration.k8s.io/v1',
        kind,
        {
          upsert: (c) => void this.reconcile(path, c),
          remove: () => undefined,
          resync: (list) => {
            for (const c of list) void this.reconcile(path, c);
          },
        },
        this.o.log.child({ informer: `${kind}/${t.name}` }),
        this.o.backoff,
      );
      this.informers.push(informer);
      informer.start();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private async reconcile(path: string, c: WebhookConfiguration): Promise<void> {
    const hooks = c.webhooks ?? [];
    if (hooks.every((w) => w.clientConfig?.caBundle === this.bundle)) return;
    const name = c.metadata?.name ?? '';
    const updated = { ...c, webhooks: hooks.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: this.bundle } })) };
    try {
      await kubeRequest(this.o.conn, 'PUT', `${path}/${encodeURIComponent(name)}`, updated);
      this.writes++;
      this.o.log.info({ configuration: name, webhooks: hooks.length }, 'patched the webhook caBundle with meshd\'s root');
    } catch (err) {
      // 409: changed meanwhile; the watch brings the new version back here.
      if (err instanceof KubeApiError && err.statusCode === 409) return;
      this.o.log.warn({ configuration: name, err: String(err), retryInMs: 5000 }, 'patching the webhook caBundle failed; retrying');
      const timer = setTimeout(() => {
        if (this.stopped) return;
        kubeRequest<WebhookConfiguration>(this.o.conn, 'GET', `${path}/${encodeURIComponent(name)}`).then(
          (fresh) => this.reconcile(path, fresh),
          () => undefined,
        );
      }, 5000);
      timer.unref();
    }
  }
}
