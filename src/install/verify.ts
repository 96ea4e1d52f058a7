// `meshd verify-install`: every object of the installation is present, every CRD Established
// and every Deployment available; a line per object in istioctl's shape, a line per failure
// saying what is wrong, and a summary.
import { crdEstablished, deploymentAvailable, type InstallCluster, type ObjectRef } from './cluster.js';
import type { KubeObject } from './objects.js';

/** "Deployment: istiod.istio-system", as istioctl names objects in verify-install. */
const named = (o: ObjectRef): string => `${o.kind}: ${o.metadata.name}${o.metadata.namespace !== undefined ? `.${o.metadata.namespace}` : ''}`;

export interface VerifyResult {
  checked: number;
  failures: string[];
}

export async function verifyInstall(cluster: InstallCluster, objects: readonly ObjectRef[], out: (line: string) => void): Promise<VerifyResult> {
  const failures: string[] = [];
  let crds = 0;
  let deployments = 0;
  for (const o of objects) {
    const live: KubeObject | undefined = await cluster.get(o);
    let problem: string | undefined;
    if (live === undefined) problem = `not found (${o.apiVersion}); run meshd install again to restore it`;
    else if (o.kind === 'CustomResourceDefinition') {
      crds += 1;
      const e = crdEstablished(live);
      if (!e.ok) problem = e.why;
    } else if (o.kind === 'Deployment') {
      deployments += 1;
      const a = deploymentAvailable(live);
      if (!a.ok) problem = `not available: ${a.why}`;
    }
    if (problem === undefined) out(`✔ ${named(o)} checked successfully`);
    else {
      const line = `✘ ${named(o)}: ${problem}`;
      failures.push(line);
      out(line);
    }
  }
  out(`Checked ${crds} custom resource definitions`);
  out(`Checked ${deployments} Istio Deployments`);
  return { checked: objects.length, failures };
}
