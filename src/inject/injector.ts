// Sidecar injection as Istio's injector does it, as pure functions: the webhook (injectPod) and
// `meshd kube-inject` (kubeInjectObject) both end in injectPodTemplate, so for the same pod
// they produce the same containers, volumes, labels and annotations.
//
// The injected pod, like one from Istio's sidecar template: an `istio-init` init container
// (`pilot-agent istio-iptables`: outbound to 15001, inbound to 15006, uid 1337 excluded), the
// `istio-proxy` container (`pilot-agent proxy sidecar` from `<hub>/proxyv2:<tag>`) with Istio's
// env, ports, probes, security context and volumes, app probes rewritten through the agent,
// Istio's labels and annotations and `sidecar.istio.io/status`. Or, in agentless mode, a
// stock Envoy whose bootstrap `meshd bootstrap` writes in an init container (agentless.ts).
import { A, boolAnnotation, parseGoBool } from './annotations.js';
import { agentlessSidecar } from './agentless.js';
import { PROXY_CONTAINER, STATUS_ANNOTATION, decideForWebhook, workloadOfPod, type Decision } from './decide.js';
import type { Container, EnvVar, Labels, Pod, PodTemplate, Volume, VolumeMount, WorkloadMeta } from './k8s.js';
import {
  INIT_CONTAINER,
  PROMETHEUS_PORT,
  fieldRef,
  initContainer,
  ownerUri,
  planFor,
  podPortsJson,
  proxyMetadataEnv,
  proxyProbes,
  proxySecurityContext,
  resourceRef,
  sharedVolumes,
  type Plan,
  type SidecarParts,
} from './plan.js';
import { capturedInboundPorts, rewriteAppProbes } from './probes.js';
import { istiodAddress, type InjectorSettings } from './settings.js';

export { InjectionError } from './annotations.js';
export { alreadyInjected, decideForKubeInject, decideForWebhook, workloadOfPod, type Decision } from './decide.js';
export { planFor, type Plan } from './plan.js';
export { defaultInjectorSettings, parseInjectorSettings, SettingsError, type InjectorSettings } from './settings.js';

function agentVolumes(settings: InjectorSettings): Volume[] {
  const [envoy, podinfo, token, ca] = sharedVolumes(settings);
  return [
    { name: 'workload-socket', emptyDir: {} },
    { name: 'credential-socket', emptyDir: {} },
    { name: 'workload-certs', emptyDir: {} },
    envoy!,
    { name: 'istio-data', emptyDir: {} },
    podinfo!,
    token!,
    ca!,
  ];
}

const AGENT_MOUNTS: VolumeMount[] = [
  { name: 'workload-socket', mountPath: '/var/run/secrets/workload-spiffe-uds' },
  { name: 'credential-socket', mountPath: '/var/run/secrets/credential-uds' },
  { name: 'workload-certs', mountPath: '/var/run/secrets/workload-spiffe-credentials' },
  { name: 'istiod-ca-cert', mountPath: '/var/run/secrets/istio' },
  { name: 'istio-data', mountPath: '/var/lib/istio/data' },
  { name: 'istio-envoy', mountPath: '/etc/istio/proxy' },
  { name: 'istio-token', mountPath: '/var/run/secrets/tokens' },
  { name: 'istio-podinfo', mountPath: '/etc/istio/pod' },
];

/** The `istio-proxy` container running Istio's agent (`pilot-agent proxy sidecar`). */
function agentContainer(plan: Plan, settings: InjectorSettings, workload: WorkloadMeta, apps: Container[]): Container {
  const meshId = settings.meshId || settings.trustDomain;
  const env: EnvVar[] = [
    { name: 'PILOT_CERT_PROVIDER', value: 'istiod' },
    { name: 'CA_ADDR', value: istiodAddress(settings) },
    fieldRef('POD_NAME', 'metadata.name'),
    fieldRef('POD_NAMESPACE', 'metadata.namespace'),
    fieldRef('INSTANCE_IP', 'status.podIP'),
    fieldRef('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldRef('HOST_IP', 'status.hostIP'),
    resourceRef('ISTIO_CPU_LIMIT', 'limits.cpu'),
    { name: 'PROXY_CONFIG', value: `${JSON.stringify(plan.proxyConfig)}\n` },
    { name: 'ISTIO_META_POD_PORTS', value: podPortsJson(apps) },
    { name: 'ISTIO_META_APP_CONTAINERS', value: apps.map((c) => c.name).join(',') },
    resourceRef('GOMEMLIMIT', 'limits.memory'),
    resourceRef('GOMAXPROCS', 'limits.cpu'),
    { name: 'ISTIO_META_CLUSTER_ID', value: settings.clusterId },
    fieldRef('ISTIO_META_NODE_NAME', 'spec.nodeName'),
    { name: 'ISTIO_META_INTERCEPTION_MODE', value: plan.interception },
    ...(settings.network ? [{ name: 'ISTIO_META_NETWORK', value: settings.network }] : []),
    ...(workload.name ? [{ name: 'ISTIO_META_WORKLOAD_NAME', value: workload.name }] : []),
    ...(workload.name && workload.apiVersion ? [{ name: 'ISTIO_META_OWNER', value: ownerUri(workload) }] : []),
    { name: 'ISTIO_META_MESH_ID', value: meshId },
    { name: 'TRUST_DOMAIN', value: settings.trustDomain },
    ...proxyMetadataEnv(plan),
  ];
  const lifecycle = plan.native
    ? { preStop: { exec: { command: ['pilot-agent', 'request', `--debug-port=${plan.statusPort}`, 'POST', 'drain'] } } }
    : plan.hold
      ? { postStart: { exec: { command: ['pilot-agent', 'wait'] } } }
      : undefined;
  return {
    name: PROXY_CONTAINER,
    image: plan.image,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    ports: [{ containerPort: PROMETHEUS_PORT, protocol: 'TCP', name: 'http-envoy-prom' }],
    args: [
      'proxy',
      'sidecar',
      '--domain',
      `$(POD_NAMESPACE).svc.${settings.clusterDomain}`,
      `--proxyLogLevel=${plan.logLevel}`,
      `--proxyComponentLogLevel=${plan.componentLogLevel}`,
      `--log_output_level=${plan.agentLogLevel}`,
    ],
    ...(lifecycle ? { lifecycle } : {}),
    env,
    ...proxyProbes(plan, settings),
    resources: structuredClone(plan.resources),
    securityContext: proxySecurityContext(plan),
    volumeMounts: structuredClone(AGENT_MOUNTS),
    ...(plan.native ? { restartPolicy: 'Always' } : {}),
  };
}

const PROM = { scrape: 'prometheus.io/scrape', port: 'prometheus.io/port', path: 'prometheus.io/path' } as const;

/**
 * Metrics merging, as Istio does it: Prometheus scrapes the agent (15020, /stats/prometheus),
 * which merges Envoy's metrics with the app's; the app's own scrape annotations move into
 * ISTIO_PROMETHEUS_ANNOTATIONS. Returns that env var, if any. Mutates `annotations`.
 */
function prometheusMerge(annotations: Record<string, string>, plan: Plan, settings: InjectorSettings): EnvVar | undefined {
  const scrape = annotations[PROM.scrape];
  if (scrape !== undefined && parseGoBool(scrape) === false) return undefined;
  if (!(boolAnnotation(annotations, A.mergeMetrics) ?? settings.enablePrometheusMerge)) return undefined;
  if (plan.statusPort === 0) return undefined;
  const target = String(plan.statusPort);
  if (annotations[PROM.port] === target) return undefined;
  const app: Record<string, string> = {};
  if (scrape !== undefined) app.scrape = scrape;
  if (annotations[PROM.path] !== undefined) app.path = annotations[PROM.path]!;
  if (annotations[PROM.port] !== undefined) app.port = annotations[PROM.port]!;
  annotations[PROM.scrape] = 'true';
  annotations[PROM.port] = target;
  annotations[PROM.path] = '/stats/prometheus';
  return Object.keys(app).length ? { name: 'ISTIO_PROMETHEUS_ANNOTATIONS', value: JSON.stringify(app) } : undefined;
}

/**
 * The agentless proxy has no agent to merge metrics: Prometheus scrapes Envoy's 15090 directly,
 * unless the app already asks to be scraped (its annotations are left as they are) or merging
 * is turned off. Mutates `annotations`.
 */
function prometheusAgentless(annotations: Record<string, string>, settings: InjectorSettings): void {
  if (Object.values(PROM).some((k) => annotations[k] !== undefined)) return;
  if (!(boolAnnotation(annotations, A.mergeMetrics) ?? settings.enablePrometheusMerge)) return;
  annotations[PROM.scrape] = 'true';
  annotations[PROM.port] = String(PROMETHEUS_PORT);
  annotations[PROM.path] = '/stats/prometheus';
}

function replaceByName<T extends { name: string }>(list: T[], add: T[]): T[] {
  const names = new Set(add.map((x) => x.name));
  return [...list.filter((x) => !names.has(x.name)), ...add];
}

/**
 * Injects the sidecar into a pod template (a Pod's metadata and spec, or a workload's
 * `spec.template`), unconditionally: the caller has decided (decideForWebhook,
 * decideForKubeInject). Pure: returns a new template and leaves the input as it was. Throws
 * InjectionError for an annotation with a bad value.
 */
export function injectPodTemplate(template: PodTemplate, workload: WorkloadMeta, settings: InjectorSettings): PodTemplate {
  const plan = planFor(template, settings);
  // metadata and spec first, as Kubernetes writes them, even when the input had none.
  const { metadata: inMeta, spec: inSpec, ...rest } = structuredClone(template);
  const metadata = inMeta ?? {};
  const spec = inSpec ?? {};
  const out: PodTemplate = { metadata, spec, ...rest };
  const labels = { ...(metadata.labels ?? {}) };
  const annotations = { ...(metadata.annotations ?? {}) };

  const appContainers = (spec.containers ?? []).filter((c) => c.name !== PROXY_CONTAINER);
  const appInit = (spec.initContainers ?? []).filter((c) => c.name !== PROXY_CONTAINER && c.name !== INIT_CONTAINER);
  const iptables = plan.interception !== 'NONE' ? [initContainer(plan, settings)] : [];

  let parts: SidecarParts;
  if (plan.mode === 'agentless') {
    parts = agentlessSidecar(plan, settings);
    parts.init = [...iptables, ...parts.init];
    prometheusAgentless(annotations, settings);
  } else {
    parts = { init: iptables, proxy: agentContainer(plan, settings, workload, appContainers), volumes: agentVolumes(settings) };
    const rewrite = boolAnnotation(annotations, A.rewriteAppHTTPProbers) ?? settings.rewriteAppHTTPProbe;
    if (rewrite && plan.statusPort !== 0) {
      // Sidecar-style init containers (restartPolicy Always) may have probes too.
      const probed = [...appContainers, ...appInit.filter((c) => c.restartPolicy === 'Always')];
      const probers = rewriteAppProbes(probed, plan.statusPort, capturedInboundPorts(plan.includeInboundPorts, plan.excludeInboundPorts));
      if (probers) parts.proxy.env!.push({ name: 'ISTIO_KUBE_APP_PROBERS', value: probers });
    }
    const prom = prometheusMerge(annotations, plan, settings);
    if (prom) parts.proxy.env!.push(prom);
  }

  if (plan.native) {
    spec.initContainers = [...parts.init, parts.proxy, ...appInit];
    spec.containers = appContainers;
  } else {
    spec.initContainers = [...parts.init, ...appInit];
    spec.containers = plan.hold ? [parts.proxy, ...appContainers] : [...appContainers, parts.proxy];
  }
  if (spec.initContainers.length === 0) delete spec.initContainers;
  spec.volumes = replaceByName(spec.volumes ?? [], parts.volumes);
  const pullSecrets = settings.imagePullSecrets.filter((n) => !(spec.imagePullSecrets ?? []).some((s) => s.name === n));
  if (pullSecrets.length) spec.imagePullSecrets = [...(spec.imagePullSecrets ?? []), ...pullSecrets.map((name) => ({ name }))];

  labels['security.istio.io/tlsMode'] ??= 'istio';
  labels['service.istio.io/canonical-name'] ??= labels['app.kubernetes.io/name'] || labels.app || workload.name;
  labels['service.istio.io/canonical-revision'] ??= labels['app.kubernetes.io/version'] || labels.version || 'latest';

  if (appContainers.length) {
    annotations['kubectl.kubernetes.io/default-logs-container'] ??= appContainers[0]!.name;
    annotations['kubectl.kubernetes.io/default-container'] ??= appContainers[0]!.name;
  }
  annotations['istio.io/rev'] ??= settings.revision || 'default';
  Object.assign(annotations, settings.injectedAnnotations);
  annotations[STATUS_ANNOTATION] = JSON.stringify({
    initContainers: plan.native ? [...parts.init.map((c) => c.name), parts.proxy.name] : parts.init.map((c) => c.name),
    containers: plan.native ? null : [parts.proxy.name],
    volumes: parts.volumes.map((v) => v.name),
    imagePullSecrets: pullSecrets.length ? pullSecrets : null,
    revision: settings.revision || 'default',
  });
  metadata.labels = labels;
  metadata.annotations = annotations;
  return out;
}

export interface NamespaceInfo {
  name: string;
  labels: Labels;
}

export interface InjectResult {
  /** The pod to admit: injected, or the input as it was. */
  pod: Pod;
  injected: boolean;
  reason: string;
}

/**
 * The webhook's injection of a pod being created in `namespace` (its name and labels, which
 * the caller looks up). Decides as Istio's webhook and injector would, then injects with
 * injectPodTemplate. Throws InjectionError for an annotation with a bad value (the webhook
 * should refuse the pod with that message, as Istio's does).
 */
export function injectPod(pod: Pod, namespace: NamespaceInfo, settings: InjectorSettings): InjectResult {
  const d: Decision = decideForWebhook(pod.metadata ?? {}, pod.spec ?? {}, namespace.name, namespace.labels, settings);
  if (!d.inject) return { pod, injected: false, reason: d.reason };
  const injected = injectPodTemplate({ metadata: pod.metadata ?? {}, spec: pod.spec ?? {} }, workloadOfPod(pod, namespace.name), settings);
  return { pod: { ...pod, metadata: injected.metadata!, spec: injected.spec! }, injected: true, reason: d.reason };
}
