// The leader's work on meshd's webhook configurations: the caBundle of the injector's and the
// validator's kept at meshd's root, and (unless turned off) the validator made fail-closed
// once the apiserver is seen to call it and it refuses invalid config.
import type { KubeConnection } from '../kube/client.js';
import type { Logger } from '../util/log.js';
import type { Metrics } from '../util/metrics.js';
import { INJECTOR_WEBHOOK_CONFIG, VALIDATOR_WEBHOOK_CONFIG, WebhookCaBundlePatcher, type WebhookTarget } from './webhook-ca-bundle.js';
import { ValidationFailClose } from './validation-fail-close.js';

export interface WebhookConfigurationsOptions {
  conn: KubeConnection;
  rootCertPem: string;
  /** meshd's namespace (the dry run is made there). */
  namespace: string;
  /** Switch the validator to failurePolicy Fail once proven (default true). */
  failClose?: boolean;
  log: Logger;
  metrics?: Metrics;
}

export interface WebhookConfigurations {
  stop(): Promise<void>;
}

export function startWebhookConfigurations(o: WebhookConfigurationsOptions): WebhookConfigurations {
  const failClose =
    o.failClose === false
      ? undefined
      : new ValidationFailClose({
          conn: o.conn,
          namespace: o.namespace,
          log: o.log.child({ component: 'validation-fail-close' }),
          onProven: () => {
            o.metrics?.validationFailClosed.set(1);
            patcher.recheck(validator);
          },
        });
  const validator: WebhookTarget = { resource: 'validatingwebhookconfigurations', name: VALIDATOR_WEBHOOK_CONFIG, ...(failClose ? { failClosed: () => failClose.proven } : {}) };
  const patcher = new WebhookCaBundlePatcher({
    conn: o.conn,
    rootCertPem: o.rootCertPem,
    targets: [{ resource: 'mutatingwebhookconfigurations', name: INJECTOR_WEBHOOK_CONFIG }, validator],
    log: o.log.child({ component: 'webhook-ca-bundle' }),
    onBundleInPlace: (t, names) => {
      if (t === validator) failClose?.bundleInPlace(names);
    },
    onFailClosed: (name) => o.metrics?.validationFailurePolicyPatches.inc({ configuration: name }),
  });
  patcher.start();
  return {
    async stop() {
      failClose?.stop();
      // Another replica takes over and proves the webhook again before it writes anything.
      o.metrics?.validationFailClosed.set(0);
      await patcher.stop();
    },
  };
}
