// Keeps the `caBundle` of meshd's webhook configurations (Istio's names: the
// MutatingWebhookConfiguration `istio-sidecar-injector`, later the validating one) set to
// meshd's root, so the apiserver trusts the webhook port's certificate. One writer: it
// runs on the replica that holds the leader Lease. The configurations are watched by name,
// so one edited by hand (or re-applied from manifests without a caBundle) is patched back.
// A target may also be held at failurePolicy Fail once its webhook is proven (see
// validation-fail-close.ts); a hand edit back to Ignore is then patched back the same way.
import type { KubernetesObject } from '@kubernetes/client-node';
import { KubeApiError, kubeRequest, type KubeConnection } from '../kube/client.js';
import { ResilientInformer, type BackoffPolicy } from '../kube/resilient-informer.js';
import type { Logger } from '../util/log.js';

export const INJECTOR_WEBHOOK_CONFIG = 'istio-sidecar-injector';
export const VALIDATOR_WEBHOOK_CONFIG = 'istio-validator-istio-system';

interface WebhookConfiguration extends KubernetesObject {
  webhooks?: { name: string; clientConfig?: { caBundle?: string; [k: string]: unknown }; failurePolicy?: string; [k: string]: unknown }[];
}

export interface WebhookTarget {
  /** `mutatingwebhookconfigurations` or `validatingwebhookconfigurations`. */
  resource: 'mutatingwebhookconfigurations' | 'validatingwebhookconfigurations';
  name: string;
  /** When this says true, every webhook of the configuration is kept at failurePolicy Fail. */
  failClosed?: () => boolean;
}

export interface WebhookCaBundleOptions {
  conn: KubeConnection;
  rootCertPem: string;
  targets: WebhookTarget[];
  log: Logger;
  backoff?: BackoffPolicy;
  /** A configuration was seen with meshd's caBundle on every webhook (after a patch, or already so). */
  onBundleInPlace?: (target: WebhookTarget, webhookNames: string[]) => void;
  /** Counts writes that set failurePolicy Fail, by configuration. */
  onFailClosed?: (name: string) => void;
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
      const path = collectionPath(t);
      const kind = t.resource === 'mutatingwebhookconfigurations' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration';
      const informer = new ResilientInformer<WebhookConfiguration>(
        this.o.conn,
        `${path}?fieldSelector=${encodeURIComponent(`metadata.name=${t.name}`)}`,
        'admissionregistration.k8s.io/v1',
        kind,
        {
          upsert: (c) => void this.reconcile(t, c),
          remove: () => undefined,
          resync: (list) => {
            for (const c of list) void this.reconcile(t, c);
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

  /** Reads `target` again and patches it if it is not as wanted (e.g. its webhook was just proven). */
  recheck(target: WebhookTarget): void {
    if (this.stopped) return;
    kubeRequest<WebhookConfiguration>(this.o.conn, 'GET', `${collectionPath(target)}/${encodeURIComponent(target.name)}`).then(
      (fresh) => this.reconcile(target, fresh),
      (err: unknown) => this.o.log.debug({ configuration: target.name, err: String(err) }, 'reading the webhook configuration failed; the watch brings it back'),
    );
  }

  private async reconcile(t: WebhookTarget, c: WebhookConfiguration): Promise<void> {
    if (this.stopped) return;
    const hooks = c.webhooks ?? [];
    const failClosed = t.failClosed?.() === true;
    const bundleOk = hooks.every((w) => w.clientConfig?.caBundle === this.bundle);
    const policyOk = !failClosed || hooks.every((w) => w.failurePolicy === 'Fail');
    if (bundleOk && policyOk) {
      this.o.onBundleInPlace?.(t, hooks.map((w) => w.name));
      return;
    }
    const name = c.metadata?.name ?? '';
    const updated = {
      ...c,
      webhooks: hooks.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: this.bundle }, ...(failClosed ? { failurePolicy: 'Fail' } : {}) })),
    };
    try {
      await kubeRequest(this.o.conn, 'PUT', `${collectionPath(t)}/${encodeURIComponent(name)}`, updated);
      this.writes++;
      if (!bundleOk) this.o.log.info({ configuration: name, webhooks: hooks.length }, 'patched the webhook caBundle with meshd\'s root');
      if (!policyOk) {
        this.o.log.info({ configuration: name, webhooks: hooks.length, was: [...new Set(hooks.map((w) => w.failurePolicy ?? 'Fail'))] }, 'set failurePolicy Fail: the webhook is proven, so invalid config is refused even when meshd cannot be reached');
        this.o.onFailClosed?.(name);
      }
      this.o.onBundleInPlace?.(t, hooks.map((w) => w.name));
    } catch (err) {
      // 409: changed meanwhile; the watch brings the new version back here.
      if (err instanceof KubeApiError && err.statusCode === 409) return;
      this.o.log.warn({ configuration: name, err: String(err), retryInMs: 5000 }, 'patching the webhook configuration failed; retrying');
      const timer = setTimeout(() => this.recheck(t), 5000);
      timer.unref();
    }
  }
}

function collectionPath(t: WebhookTarget): string {
  return `/apis/admissionregistration.k8s.io/v1/${t.resource}`;
}
