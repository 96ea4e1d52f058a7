// The sidecar injection webhook (`/inject`), as istiod serves it: a Pod being created in a
// namespace that asks for injection (or that asks for it itself) is admitted with the proxy
// added, as a JSON Patch; anything else is admitted unchanged. The mutation is the one
// `meshd kube-inject` makes (src/inject/injector.ts).
import { InjectionError, injectPod, type InjectorSettings } from '../inject/injector.js';
import type { Pod } from '../inject/k8s.js';
import type { Labels } from '../model/labels.js';
import type { Metrics } from '../util/metrics.js';
import type { Logger } from '../util/log.js';
import { clientText } from '../util/client-text.js';
import { podPatch } from '../inject/patch.js';
import { allowed, denied, type AdmissionRequest, type AdmissionResponse } from './admission.js';
import { isRecord } from '../util/is-record.js';

export interface InjectWebhookOptions {
  /** The injector's settings now (they follow the istio-sidecar-injector ConfigMap). */
  settings(): InjectorSettings;
  /** A namespace's labels, when meshd knows the namespace. */
  namespaceLabels(namespace: string): Labels | undefined;
  metrics: Metrics;
  log: Logger;
}

export function injectWebhook(o: InjectWebhookOptions): (request: AdmissionRequest) => AdmissionResponse {
  return (req) => {
    o.metrics.injectionRequests.inc();
    if (req.kind.kind !== 'Pod' || req.operation !== 'CREATE') {
      o.metrics.injectionSkips.inc();
      return allowed(req.uid);
    }
    if (!isRecord(req.object) || !isRecord(req.object.spec)) {
      o.metrics.injectionFailures.inc();
      return denied(req.uid, 'request.object is not a Pod with a spec');
    }
    const pod = req.object as unknown as Pod;
    const namespace = req.namespace || (isRecord(pod.metadata) && typeof pod.metadata.namespace === 'string' ? pod.metadata.namespace : '');
    try {
      // The apiserver calls only for Pods its selectors picked (the namespace's labels or the
      // Pod's): a namespace meshd has not seen yet (just created) is taken as asking for it.
      const labels = o.namespaceLabels(namespace) ?? { 'istio-injection': 'enabled' };
      const r = injectPod(pod, { name: namespace, labels }, o.settings());
      if (!r.injected) {
        o.metrics.injectionSkips.inc();
        o.log.debug({ namespace, pod: clientText(String(pod.metadata?.name ?? pod.metadata?.generateName ?? ''), 253), reason: r.reason }, 'not injected');
        return allowed(req.uid);
      }
      o.metrics.injectionSuccesses.inc();
      return allowed(req.uid, podPatch(pod, r.pod));
    } catch (err) {
      o.metrics.injectionFailures.inc();
      // A bad annotation value refuses the Pod with the reason, as Istio's injector does.
      if (err instanceof InjectionError) return denied(req.uid, `sidecar injection: ${err.message}`);
      o.log.error({ namespace, err: clientText(String(err), 1024) }, 'sidecar injection failed');
      return denied(req.uid, 'sidecar injection failed inside meshd; see its log', 500);
    }
  };
}
