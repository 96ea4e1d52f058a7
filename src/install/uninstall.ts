// `meshd uninstall`: finds the objects meshd's manifests put in the cluster (by their label
// app.kubernetes.io/name=meshd, among the kinds the manifests hold) and deletes them, webhooks
// first and CRDs last. CRDs (and with them every Gateway, VirtualService...) go only with
// --purge; the istio-system namespace is kept, as istioctl keeps it, since it may hold the
// user's own objects (Secret cacerts).
import { MESHD_LABEL, MESHD_LABEL_VALUE, type InstallCluster } from './cluster.js';
import { describeObject, sortForApply, type KubeObject } from './objects.js';

export interface UninstallPlan {
  /** In delete order. */
  remove: KubeObject[];
  /** Found but kept: CRDs without --purge, namespaces. */
  kept: KubeObject[];
}

export async function planUninstall(cluster: InstallCluster, installable: readonly KubeObject[], purge: boolean): Promise<UninstallPlan> {
  const kinds = new Map<string, { apiVersion: string; kind: string }>();
  for (const o of [...installable, { apiVersion: 'v1', kind: 'ConfigMap' }]) kinds.set(`${o.apiVersion}/${o.kind}`, { apiVersion: o.apiVersion, kind: o.kind });
  const found: KubeObject[] = [];
  for (const k of kinds.values()) found.push(...(await cluster.list(k.apiVersion, k.kind, `${MESHD_LABEL}=${MESHD_LABEL_VALUE}`)));
  const keep = (o: KubeObject) => o.kind === 'Namespace' || (o.kind === 'CustomResourceDefinition' && !purge);
  return { remove: sortForApply(found.filter((o) => !keep(o))).reverse(), kept: sortForApply(found.filter(keep)) };
}

export async function runUninstall(cluster: InstallCluster, plan: UninstallPlan, out: (line: string) => void): Promise<void> {
  for (const o of plan.remove) {
    if (await cluster.delete(o)) out(`  Removed ${describeObject(o)}.`);
  }
  const crds = plan.kept.filter((o) => o.kind === 'CustomResourceDefinition');
  if (crds.length > 0) out(`  Kept ${crds.length} CustomResourceDefinitions (and your Istio config); meshd uninstall --purge removes them.`);
  for (const ns of plan.kept.filter((o) => o.kind === 'Namespace')) out(`  Kept Namespace ${ns.metadata.name} (it may hold your own objects); remove it with: kubectl delete namespace ${ns.metadata.name}`);
  out('✔ Uninstall complete');
}
