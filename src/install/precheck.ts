// `meshd precheck`: what would stop an install, found before installing: a Kubernetes older
// than meshd needs, missing permissions for the kinds the profile creates, an Istio control
// plane (or its webhooks) that meshd did not install, and Istio CRDs meshd's would clash with.
import { apiMessage, isMeshd, type InstallCluster } from './cluster.js';
import { describeObject, field, groupOf, isJsonObject, type KubeObject } from './objects.js';
import { KubeApiError } from '../kube/client.js';

/** meshd's CRDs validate with CEL rules (x-kubernetes-validations), GA in Kubernetes 1.29. */
export const MIN_KUBERNETES = { major: 1, minor: 29 };

export interface Finding {
  level: 'Error' | 'Warning';
  /** "Deployment istio-system/istiod", or a topic when no object is concerned. */
  subject: string;
  message: string;
}

export const formatFinding = (f: Finding): string => `${f.level} (${f.subject}) ${f.message}`;

async function checkVersion(cluster: InstallCluster): Promise<Finding[]> {
  const v = await cluster.request<{ major?: string; minor?: string; gitVersion?: string }>('GET', '/version');
  const major = Number.parseInt(v.major ?? '', 10);
  const minor = Number.parseInt(v.minor ?? '', 10);
  const shown = v.gitVersion ?? `${v.major}.${v.minor}`;
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return [{ level: 'Warning', subject: 'Kubernetes version', message: `the API server reports version "${shown}", which could not be compared with meshd's minimum ${MIN_KUBERNETES.major}.${MIN_KUBERNETES.minor}` }];
  if (major < MIN_KUBERNETES.major || (major === MIN_KUBERNETES.major && minor < MIN_KUBERNETES.minor)) {
    return [{ level: 'Error', subject: 'Kubernetes version', message: `the cluster runs Kubernetes ${shown}; meshd needs ${MIN_KUBERNETES.major}.${MIN_KUBERNETES.minor} or newer (its CRDs use CEL validation rules)` }];
  }
  return [];
}

async function checkPermissions(cluster: InstallCluster, objects: readonly KubeObject[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  const asked = new Set<string>();
  for (const o of objects) {
    const r = await cluster.mapper.find(o.apiVersion, o.kind);
    if (r === undefined) {
      const key = `${o.apiVersion}/${o.kind}`;
      if (!asked.has(key)) findings.push({ level: 'Error', subject: describeObject(o), message: `the API server does not serve ${o.kind} at ${o.apiVersion}, which the profile installs` });
      asked.add(key);
      continue;
    }
    const group = groupOf(o.apiVersion);
    const namespace = r.namespaced ? o.metadata.namespace : undefined;
    for (const verb of ['create', 'patch']) {
      const key = `${verb}/${group}/${r.plural}/${namespace ?? ''}`;
      if (asked.has(key)) continue;
      asked.add(key);
      const review = await cluster.request<KubeObject>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: { verb, group, resource: r.plural, ...(namespace !== undefined ? { namespace } : {}) } },
      });
      if (field(review, 'status', 'allowed') !== true) {
        const reason = field(review, 'status', 'reason');
        const where = namespace !== undefined ? ` in namespace ${namespace}` : ' (cluster-wide)';
        findings.push({ level: 'Error', subject: 'permissions', message: `you may not ${verb} ${r.plural}${group ? `.${group}` : ''}${where}, which installing needs${typeof reason === 'string' && reason !== '' ? ` (${reason})` : ''}` });
      }
    }
  }
  return findings;
}

const labelsText = (o: KubeObject) =>
  Object.entries(o.metadata.labels ?? {})
    .filter(([k]) => k === 'app' || k.startsWith('istio.io/') || k.startsWith('operator.istio.io/') || k.startsWith('install.operator.istio.io/'))
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

async function listAll(cluster: InstallCluster, apiVersion: string, kind: string, path: string): Promise<KubeObject[]> {
  try {
    const l = await cluster.request<{ items?: KubeObject[] }>('GET', path);
    return (l.items ?? []).map((i) => ({ ...i, apiVersion, kind }));
  } catch (err) {
    if (err instanceof KubeApiError && err.statusCode === 404) return [];
    throw err;
  }
}

async function checkExistingIstio(cluster: InstallCluster): Promise<Finding[]> {
  const findings: Finding[] = [];
  const byLabel = await listAll(cluster, 'apps/v1', 'Deployment', '/apis/apps/v1/deployments?labelSelector=app%3Distiod&limit=500');
  const byName = await listAll(cluster, 'apps/v1', 'Deployment', '/apis/apps/v1/deployments?fieldSelector=metadata.name%3Distiod&limit=500');
  const seen = new Set<string>();
  for (const d of [...byLabel, ...byName]) {
    const key = describeObject(d);
    if (seen.has(key) || isMeshd(d)) continue;
    seen.add(key);
    const containers = field(d, 'spec', 'template', 'spec', 'containers');
    const image = Array.isArray(containers) && isJsonObject(containers[0]) ? String(containers[0].image) : 'unknown image';
    const labels = labelsText(d);
    findings.push({
      level: 'Error',
      subject: key,
      message: `an Istio control plane that meshd did not install is running (${image}${labels ? `; ${labels}` : ''}). meshd installs its own istiod in istio-system; both would answer the same sidecars and webhooks. Remove it first (istioctl uninstall --purge) or use another cluster.`,
    });
  }
  const webhooks: [string, string, RegExp][] = [
    ['MutatingWebhookConfiguration', 'mutatingwebhookconfigurations', /sidecar-injector\.istio\.io$/],
    ['ValidatingWebhookConfiguration', 'validatingwebhookconfigurations', /validation\.istio\.io$/],
  ];
  for (const [kind, plural, names] of webhooks) {
    for (const w of await listAll(cluster, 'admissionregistration.k8s.io/v1', kind, `/apis/admissionregistration.k8s.io/v1/${plural}?limit=500`)) {
      if (isMeshd(w)) continue;
      const hooks = (Array.isArray(w.webhooks) ? w.webhooks : []).map((h) => (isJsonObject(h) ? String(h.name) : '')).filter((n) => names.test(n));
      if (hooks.length === 0) continue;
      const svc = field(w, 'webhooks', 0, 'clientConfig', 'service');
      const target = isJsonObject(svc) ? ` (calls Service ${String(svc.namespace)}/${String(svc.name)})` : '';
      findings.push({
        level: 'Error',
        subject: describeObject(w),
        message: `Istio's webhook ${hooks.join(', ')}${target} is installed and meshd did not install it; it would keep ${kind.startsWith('Mutating') ? 'injecting pods' : 'validating Istio config'} for another control plane. Remove it (or that control plane) first.`,
      });
    }
  }
  for (const ns of await listAll(cluster, 'v1', 'Namespace', '/api/v1/namespaces?labelSelector=istio.io%2Frev&limit=500')) {
    const rev = ns.metadata.labels?.['istio.io/rev'];
    if (rev !== undefined && rev !== 'default') {
      findings.push({ level: 'Warning', subject: describeObject(ns), message: `is labelled istio.io/rev=${rev}; meshd serves the "default" revision only, so its pods will not be injected by meshd (label it istio-injection=enabled instead)` });
    }
  }
  return findings;
}

async function checkCrds(cluster: InstallCluster, objects: readonly KubeObject[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const crd of objects.filter((o) => o.kind === 'CustomResourceDefinition')) {
    const live = await cluster.get(crd);
    if (live === undefined || isMeshd(live)) continue;
    const ours = ((field(crd, 'spec', 'versions') ?? []) as { name: string }[]).map((v) => v.name);
    const theirs = ((field(live, 'spec', 'versions') ?? []) as { name: string; served?: boolean; storage?: boolean }[]).filter((v) => v.served !== false).map((v) => v.name);
    const stored = ((field(live, 'status', 'storedVersions') ?? []) as string[]).filter((v) => !ours.includes(v));
    const strategy = field(live, 'spec', 'conversion', 'strategy');
    const subject = describeObject(crd);
    if (stored.length > 0) {
      findings.push({ level: 'Error', subject, message: `objects are stored at ${stored.join(', ')}, which meshd's CRD does not serve (it serves ${ours.join(', ')}); the API server would refuse meshd's CRD. Migrate those objects to one of meshd's versions first.` });
    }
    if (strategy === 'Webhook') {
      findings.push({ level: 'Error', subject, message: "converts versions with a webhook (spec.conversion.strategy: Webhook); meshd's CRD needs no conversion and server-side apply would keep the webhook. Remove spec.conversion from the CRD first." });
    }
    const extra = theirs.filter((v) => !ours.includes(v));
    findings.push({
      level: 'Warning',
      subject,
      message: `exists and was not installed by meshd; meshd install takes it over with meshd's schema (served ${ours.join(', ')})${extra.length > 0 ? `, and versions ${extra.join(', ')} stay as they are` : ''}. Existing Istio config is kept.`,
    });
  }
  return findings;
}

/** Every finding, errors first. A check that cannot run (e.g. reads you may not make) is an error that says so. */
export async function precheck(cluster: InstallCluster, objects: readonly KubeObject[]): Promise<Finding[]> {
  const checks: [string, () => Promise<Finding[]>][] = [
    ['Kubernetes version', () => checkVersion(cluster)],
    ['permissions', () => checkPermissions(cluster, objects)],
    ['existing Istio', () => checkExistingIstio(cluster)],
    ['CRDs', () => checkCrds(cluster, objects)],
  ];
  const all: Finding[] = [];
  for (const [name, check] of checks) {
    try {
      all.push(...(await check()));
    } catch (err) {
      all.push({ level: 'Error', subject: name, message: `could not be checked: ${apiMessage(err)}` });
    }
  }
  return [...all.filter((f) => f.level === 'Error'), ...all.filter((f) => f.level === 'Warning')];
}
