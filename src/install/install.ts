// `meshd install`: server-side applies a profile's objects (CRDs first, until Established;
// then namespaces; then the rest, webhooks last), removes meshd objects the new settings no
// longer include, records what was installed, then waits for each component's Deployments,
// reporting as istioctl does ("✔ Istiod installed").
import { crdEstablished, deploymentAvailable, isMeshd, MESHD_LABEL, MESHD_LABEL_VALUE, type InstallCluster } from './cluster.js';
import { componentOf, componentsOf } from './components.js';
import { describeObject, objectKey, type KubeObject } from './objects.js';
import { recordObject, type InstallRecord } from './record.js';

export interface InstallRun {
  cluster: InstallCluster;
  /** In apply order (renderInstall's). */
  objects: KubeObject[];
  record: Omit<InstallRecord, 'objects'>;
  /** Objects meshd may have installed before (everyInstallableObject): the ones not in `objects` are removed. */
  installable: KubeObject[];
  readinessTimeoutMs: number;
  out: (line: string) => void;
  pollMs?: number;
  now?: () => number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it says ok or the deadline passes; reports each new reason once. Returns the last reason when not ok. */
async function waitUntil(check: () => Promise<{ ok: boolean; why: string }>, deadline: number, run: InstallRun, progress: (why: string) => void): Promise<string | undefined> {
  const now = run.now ?? Date.now;
  let last = '';
  for (;;) {
    const r = await check();
    if (r.ok) return undefined;
    if (r.why !== last) progress(r.why);
    last = r.why;
    if (now() >= deadline) return r.why;
    await sleep(run.pollMs ?? 500);
  }
}

/** Installs; resolves true when every component became ready. Throws on an apply error (naming the object). */
export async function runInstall(run: InstallRun): Promise<boolean> {
  const { cluster, objects, out } = run;
  const now = run.now ?? Date.now;
  const deadline = now() + run.readinessTimeoutMs;
  const seconds = Math.round(run.readinessTimeoutMs / 1000);

  // CRDs first, and Established before anything that might use them.
  const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
  for (const crd of crds) await cluster.apply(crd);
  for (const crd of crds) {
    const why = await waitUntil(
      async () => {
        const live = await cluster.get(crd);
        return live === undefined ? { ok: false, why: 'not found after apply' } : crdEstablished(live);
      },
      deadline,
      run,
      () => undefined,
    );
    if (why !== undefined) throw new Error(`${describeObject(crd)} did not become Established within ${seconds}s: ${why}`);
  }
  const rest = objects.filter((o) => o.kind !== 'CustomResourceDefinition');
  for (const o of [...rest.filter((x) => x.kind === 'Namespace'), ...rest.filter((x) => x.kind !== 'Namespace')]) await cluster.apply(o);
  await cluster.apply(recordObject({ ...run.record, objects }));

  // Objects of components the settings no longer include (a smaller profile than last time).
  const keep = new Set(objects.map(objectKey));
  for (const o of [...run.installable].reverse()) {
    if (keep.has(objectKey(o)) || o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace') continue;
    const live = await cluster.get(o);
    if (live !== undefined && isMeshd(live) && (await cluster.delete(o))) out(`  Removed ${describeObject(o)} (not part of the ${run.record.profile} profile with these settings).`);
  }

  let ok = true;
  for (const component of componentsOf(objects)) {
    const deployments = objects.filter((o) => o.kind === 'Deployment' && componentOf(o) === component);
    const failures: string[] = [];
    for (const d of deployments) {
      const why = await waitUntil(
        async () => {
          const live = await cluster.get(d);
          return live === undefined ? { ok: false, why: 'not found' } : deploymentAvailable(live);
        },
        deadline,
        run,
        (w) => out(`- Processing resources for ${component}. Waiting for ${describeObject(d)}: ${w}`),
      );
      if (why !== undefined) failures.push(`${describeObject(d)} did not become available within ${seconds}s: ${why}`);
    }
    if (failures.length === 0) {
      out(`✔ ${component} installed`);
    } else {
      ok = false;
      out(`✘ ${component} encountered an error: ${failures.join('; ')}`);
    }
  }
  if (ok) out('✔ Installation complete');
  else {
    out(`✘ Installation incomplete: some Deployments are not available (see above). Look at their pods:`);
    out(`    kubectl -n istio-system get pods -l ${MESHD_LABEL}=${MESHD_LABEL_VALUE}`);
    out(`    kubectl -n istio-system describe deployment <name>`);
    out(`  then run meshd verify-install, or meshd install again with a longer --readiness-timeout.`);
  }
  return ok;
}
