// Checks of sidecar injection from the cluster's Namespaces and Pods: pods that run without
// the sidecar meshd would configure. A pod has a sidecar when the injector (Istio's or
// meshd's) marked it with the `sidecar.istio.io/status` annotation.
import type { NamespaceObject, PodObject } from '../model/objects.js';
import type { AnalysisContext } from './context.js';
import { finding, type Finding } from './finding.js';

const STATUS_ANNOTATION = 'sidecar.istio.io/status';
const INJECT_KEY = 'sidecar.istio.io/inject';
const INJECTION_LABEL = 'istio-injection';
const REVISION_LABEL = 'istio.io/rev';
/** Namespaces nothing is injected into: Kubernetes' own and the control plane's. */
const SYSTEM_NAMESPACES = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage', 'istio-system']);

/** Running pods without a sidecar that did not opt out of one. */
function podsWithoutSidecar(ctx: AnalysisContext, namespace: string): PodObject[] {
  return (ctx.podsByNamespace.get(namespace) ?? []).filter((p) => {
    if (p.phase === 'Succeeded' || p.phase === 'Failed') return false;
    if (Object.hasOwn(p.metadata.annotations, STATUS_ANNOTATION)) return false;
    const optOut = p.metadata.labels[INJECT_KEY] ?? p.metadata.annotations[INJECT_KEY];
    return optOut?.toLowerCase() !== 'false';
  });
}

function injectionEnabled(ns: NamespaceObject): boolean {
  return ns.metadata.labels[INJECTION_LABEL] === 'enabled' || Object.hasOwn(ns.metadata.labels, REVISION_LABEL);
}

function names(pods: PodObject[]): string {
  const shown = pods.slice(0, 3).map((p) => p.metadata.name);
  return pods.length > 3 ? `${shown.join(', ')} and ${pods.length - 3} more` : shown.join(', ');
}

/** IST0102: a namespace with no injection label whose pods run without a sidecar. */
export function namespacesNotInjected(ctx: AnalysisContext): Finding[] {
  if (!ctx.workloadsKnown) return [];
  const out: Finding[] = [];
  for (const ns of ctx.namespaces) {
    const name = ns.metadata.name;
    if (SYSTEM_NAMESPACES.has(name) || Object.hasOwn(ns.metadata.labels, INJECTION_LABEL) || Object.hasOwn(ns.metadata.labels, REVISION_LABEL)) continue;
    const pods = podsWithoutSidecar(ctx, name);
    if (pods.length === 0) continue;
    out.push(
      finding(
        'NamespaceNotInjected',
        ns,
        `metadata.labels["${INJECTION_LABEL}"]`,
        `The namespace is not labelled for injection, so its pods (${names(pods)}) run without a sidecar. Run 'kubectl label namespace ${name} ${INJECTION_LABEL}=enabled' and restart them, or label it ${INJECTION_LABEL}=disabled to say it needs none.`,
      ),
    );
  }
  return out;
}

/** IST0103: a pod without a sidecar in a namespace labelled for injection. */
export function podsMissingProxy(ctx: AnalysisContext): Finding[] {
  if (!ctx.workloadsKnown) return [];
  return ctx.namespaces
    .filter((ns) => !SYSTEM_NAMESPACES.has(ns.metadata.name) && injectionEnabled(ns))
    .flatMap((ns) => podsWithoutSidecar(ctx, ns.metadata.name))
    .map((p) =>
      finding(
        'PodMissingProxy',
        p,
        `metadata.annotations["${STATUS_ANNOTATION}"]`,
        `The pod ${p.metadata.namespace}/${p.metadata.name} has no sidecar although its namespace is labelled for injection: it was created before the label, or injection failed. Restart its workload (kubectl rollout restart) to inject it.`,
      ),
    );
}
