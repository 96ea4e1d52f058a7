// Whether a pod gets a sidecar, decided as Istio decides it: first the webhook's selectors
// (which the API server applies before it calls istiod: the namespace's `istio-injection` or
// `istio.io/rev` label, the pod's `sidecar.istio.io/inject` and `istio.io/rev` labels), then
// istiod's own policy check (host network, system namespaces, the label or legacy annotation
// `sidecar.istio.io/inject`, the never/always selectors, the policy).
import type { InjectorSettings, LabelSelector } from './settings.js';
import type { Labels, ObjectMeta, Pod, PodSpec, WorkloadMeta } from './k8s.js';

export const INJECT_KEY = 'sidecar.istio.io/inject';
export const STATUS_ANNOTATION = 'sidecar.istio.io/status';
export const REVISION_LABEL = 'istio.io/rev';
export const NAMESPACE_INJECTION_LABEL = 'istio-injection';
export const PROXY_CONTAINER = 'istio-proxy';

/** Namespaces Istio never injects into (its IgnoredNamespaces), besides the control plane's own. */
export const IGNORED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage'];

export interface Decision {
  inject: boolean;
  /** Why, in words, for logs and kube-inject's messages. */
  reason: string;
}

function requirementMatches(labels: Labels, r: { key: string; operator: string; values?: string[] }): boolean {
  const has = Object.hasOwn(labels, r.key);
  switch (r.operator) {
    case 'In':
      return has && (r.values ?? []).includes(labels[r.key]!);
    case 'NotIn':
      return !has || !(r.values ?? []).includes(labels[r.key]!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      return false;
  }
}

/** A Kubernetes label selector; an empty one matches nothing here (Istio skips empty selectors). */
export function labelSelectorMatches(sel: LabelSelector, labels: Labels): boolean {
  const ml = Object.entries(sel.matchLabels ?? {});
  const me = sel.matchExpressions ?? [];
  if (ml.length === 0 && me.length === 0) return false;
  return ml.every(([k, v]) => labels[k] === v) && me.every((r) => requirementMatches(labels, r));
}

/** True when Istio (or meshd) has already injected this pod. */
export function alreadyInjected(meta: ObjectMeta | undefined, spec: PodSpec | undefined): boolean {
  if (meta?.annotations && Object.hasOwn(meta.annotations, STATUS_ANNOTATION)) return true;
  const named = (cs: { name: string }[] | undefined): boolean => (cs ?? []).some((c) => c.name === PROXY_CONTAINER);
  return named(spec?.containers) || named(spec?.initContainers);
}

/**
 * Would the API server call the injection webhook for this pod? The selectors of Istio's four
 * webhooks for revision `rev` (the two not prefixed `rev.` exist only for the default revision).
 */
function webhookSelects(podLabels: Labels, nsLabels: Labels, rev: string, namespace: string): Decision {
  const inject = podLabels[INJECT_KEY];
  const nsInjection = nsLabels[NAMESPACE_INJECTION_LABEL];
  const nsRev = nsLabels[REVISION_LABEL];
  const notFalse = inject !== 'false';
  const isDefault = rev === 'default';
  if (nsInjection !== undefined) {
    if (isDefault && nsInjection === 'enabled') {
      return notFalse ? { inject: true, reason: `namespace ${namespace} has istio-injection=enabled` } : { inject: false, reason: `the pod's label ${INJECT_KEY}=false opts it out` };
    }
    return { inject: false, reason: `namespace ${namespace} has istio-injection=${nsInjection}` };
  }
  if (nsRev !== undefined) {
    if (nsRev === rev) return notFalse ? { inject: true, reason: `namespace ${namespace} has ${REVISION_LABEL}=${rev}` } : { inject: false, reason: `the pod's label ${INJECT_KEY}=false opts it out` };
    return { inject: false, reason: `namespace ${namespace} has ${REVISION_LABEL}=${nsRev}, another revision than this injector's (${rev})` };
  }
  const podRev = podLabels[REVISION_LABEL];
  if (podRev !== undefined) {
    if (podRev === rev && notFalse) return { inject: true, reason: `the pod has the label ${REVISION_LABEL}=${rev}` };
    return { inject: false, reason: podRev === rev ? `the pod's label ${INJECT_KEY}=false opts it out` : `the pod's label ${REVISION_LABEL}=${podRev} names another revision than this injector's (${rev})` };
  }
  if (isDefault && inject === 'true') return { inject: true, reason: `the pod has the label ${INJECT_KEY}=true` };
  return { inject: false, reason: `namespace ${namespace} is not labelled for injection (istio-injection=enabled or ${REVISION_LABEL}=${rev}) and the pod has no label ${INJECT_KEY}=true` };
}

/** istiod's own check (injectRequired), run once the webhook is called, and by kube-inject. */
function policyAllows(meta: ObjectMeta, settings: InjectorSettings, policy: 'enabled' | 'disabled', useSelectors: boolean): Decision {
  const labels = meta.labels ?? {};
  const annotations = meta.annotations ?? {};
  // The label is the newer API and wins over the (legacy) annotation of the same name.
  const fromLabel = Object.hasOwn(labels, INJECT_KEY);
  const value = fromLabel ? labels[INJECT_KEY]! : (annotations[INJECT_KEY] ?? '');
  const where = `${fromLabel ? 'label' : 'annotation'} ${INJECT_KEY}=${value}`;
  let explicit: boolean | undefined;
  switch (value.toLowerCase()) {
    case 'y':
    case 'yes':
    case 'true':
    case 'on':
      explicit = true;
      break;
    case '':
      explicit = undefined;
      break;
    default:
      explicit = false;
  }
  if (explicit !== undefined) return explicit ? { inject: true, reason: `the pod's ${where} opts it in` } : { inject: false, reason: `the pod's ${where} opts it out` };
  if (useSelectors) {
    if (settings.neverInjectSelector.some((s) => labelSelectorMatches(s, labels))) return { inject: false, reason: "the pod's labels match the injector's neverInjectSelector" };
    if (settings.alwaysInjectSelector.some((s) => labelSelectorMatches(s, labels))) return { inject: true, reason: "the pod's labels match the injector's alwaysInjectSelector" };
  }
  return policy === 'enabled' ? { inject: true, reason: 'injection policy enabled' } : { inject: false, reason: `injection policy disabled and the pod does not set ${INJECT_KEY}=true` };
}

function systemNamespace(namespace: string, settings: InjectorSettings): boolean {
  return IGNORED_NAMESPACES.includes(namespace) || namespace === settings.istioNamespace;
}

/**
 * The webhook's decision for a pod being created in `namespace`, whose labels are `nsLabels`.
 * A pod already injected is left alone (the webhook answers without a patch).
 */
export function decideForWebhook(meta: ObjectMeta, spec: PodSpec, namespace: string, nsLabels: Labels, settings: InjectorSettings): Decision {
  if (alreadyInjected(meta, spec)) return { inject: false, reason: 'already injected' };
  const selected = webhookSelects(meta.labels ?? {}, nsLabels, settings.revision || 'default', namespace);
  if (!selected.inject) return selected;
  if (spec.hostNetwork) return { inject: false, reason: 'the pod uses the host network' };
  if (systemNamespace(namespace, settings)) return { inject: false, reason: `namespace ${namespace} is a system namespace` };
  const p = policyAllows(meta, settings, settings.policy, true);
  return p.inject ? { inject: true, reason: `${selected.reason}; ${p.reason}` } : p;
}

/**
 * kube-inject's decision: like `istioctl kube-inject`, every pod is injected unless it opts out
 * (label or annotation), uses the host network, is already injected or lives in a system namespace.
 */
export function decideForKubeInject(meta: ObjectMeta, spec: PodSpec, namespace: string, settings: InjectorSettings): Decision {
  if (alreadyInjected(meta, spec)) return { inject: false, reason: 'already injected' };
  if (spec.hostNetwork) return { inject: false, reason: 'the pod uses the host network' };
  if (systemNamespace(namespace, settings)) return { inject: false, reason: `namespace ${namespace} is a system namespace` };
  return policyAllows(meta, settings, 'enabled', false);
}

const CRONJOB_JOB_NAME = /^(.+)-\d{8,11}$/;

/**
 * The workload a pod being admitted belongs to, derived from its controller as Istio does: a
 * ReplicaSet named `<deployment>-<pod-template-hash>` stands for its Deployment, a Job named
 * `<cronjob>-<schedule time>` for its CronJob; a pod without a controller is its own workload.
 */
export function workloadOfPod(pod: Pod, namespace: string): WorkloadMeta {
  const meta = pod.metadata ?? {};
  const out: WorkloadMeta = { name: meta.name ?? '', namespace, kind: 'Pod', apiVersion: 'v1' };
  if (meta.generateName) {
    const ref = (meta.ownerReferences ?? []).find((r) => r.controller === true);
    if (ref) {
      out.kind = ref.kind;
      out.apiVersion = ref.apiVersion;
      out.name = ref.name;
      const hash = meta.labels?.['pod-template-hash'];
      if (ref.kind === 'ReplicaSet' && hash && ref.name.endsWith(hash)) {
        out.name = ref.name.slice(0, -(hash.length + 1));
        out.kind = 'Deployment';
        out.apiVersion = 'apps/v1';
      } else if (ref.kind === 'Job') {
        const m = CRONJOB_JOB_NAME.exec(ref.name);
        if (m) {
          out.name = m[1]!;
          out.kind = 'CronJob';
          out.apiVersion = 'batch/v1';
        }
      }
    }
  }
  if (!out.name) out.name = meta.name ?? '';
  return out;
}
