// One pod's injection plan: what its annotations and the injector settings decide (modes,
// ports, images, resources, probe timings), and the pieces both proxies share: istio-init,
// the proxy's probes, security context and volumes.
import {
  A,
  InjectionError,
  boolAnnotation,
  cidrList,
  intAnnotation,
  interceptionAnnotation,
  mergeProxyConfig,
  portList,
  proxyConfigAnnotation,
  quantityAnnotation,
} from './annotations.js';
import { isRecord, type Container, type EnvVar, type Labels, type PodTemplate, type ResourceRequirements, type Volume, type WorkloadMeta } from './k8s.js';
import { istiodAddress, proxyImage, type InjectorSettings, type InterceptionMode, type ProxyMode } from './settings.js';

export const INIT_CONTAINER = 'istio-init';
export const PROXY_UID = 1337;
/** Istio's Envoy ports: outbound capture, inbound capture, Prometheus, health. */
export const OUTBOUND_PORT = 15001;
export const INBOUND_PORT = 15006;
export const PROMETHEUS_PORT = 15090;
export const HEALTH_PORT = 15021;

/** Everything about one pod's injection that its annotations and the settings decide. */
export interface Plan {
  annotations: Record<string, string>;
  labels: Labels;
  mode: ProxyMode;
  native: boolean;
  interception: InterceptionMode;
  statusPort: number;
  proxyConfig: Record<string, unknown>;
  /** The proxyv2 image (istio-proxy in agent mode, and istio-init in both modes). */
  image: string;
  resources: ResourceRequirements;
  includeIPRanges: string;
  excludeIPRanges: string;
  includeInboundPorts: string;
  excludeInboundPorts: string;
  includeOutboundPorts?: string;
  excludeOutboundPorts?: string;
  logLevel: string;
  componentLogLevel: string;
  agentLogLevel: string;
  readiness: { initialDelaySeconds: number; periodSeconds: number; failureThreshold: number };
  hold: boolean;
}

function resources(annotations: Record<string, string>, settings: InjectorSettings): ResourceRequirements {
  const cpu = quantityAnnotation(annotations, A.proxyCPU);
  const memory = quantityAnnotation(annotations, A.proxyMemory);
  const cpuLimit = quantityAnnotation(annotations, A.proxyCPULimit);
  const memoryLimit = quantityAnnotation(annotations, A.proxyMemoryLimit);
  if (cpu === undefined && memory === undefined && cpuLimit === undefined && memoryLimit === undefined) {
    const out: ResourceRequirements = {};
    if (Object.keys(settings.resources.limits).length) out.limits = { ...settings.resources.limits };
    if (Object.keys(settings.resources.requests).length) out.requests = { ...settings.resources.requests };
    return out;
  }
  // Any of the annotations replaces the defaults entirely, as in Istio's template.
  const out: ResourceRequirements = {};
  if (cpuLimit !== undefined || memoryLimit !== undefined) out.limits = { ...(cpuLimit !== undefined ? { cpu: cpuLimit } : {}), ...(memoryLimit !== undefined ? { memory: memoryLimit } : {}) };
  if (cpu !== undefined || memory !== undefined) out.requests = { ...(cpu !== undefined ? { cpu } : {}), ...(memory !== undefined ? { memory } : {}) };
  return out;
}

/** Reads the pod's annotations against the settings; throws InjectionError naming a bad annotation. */
export function planFor(template: PodTemplate, settings: InjectorSettings): Plan {
  const annotations = template.metadata?.annotations ?? {};
  const labels = template.metadata?.labels ?? {};
  const proxyConfig = mergeProxyConfig(defaultProxyConfig(settings), proxyConfigAnnotation(annotations) ?? {});
  let mode: ProxyMode = settings.mode;
  const meshdProxy = annotations[A.meshdProxy];
  if (meshdProxy !== undefined) {
    if (meshdProxy === 'envoy') mode = 'agentless';
    else if (meshdProxy === 'agent' || meshdProxy === 'pilot-agent') mode = 'agent';
    else throw new InjectionError(A.meshdProxy, `"${meshdProxy}" is not envoy (agentless) or agent`);
  }
  const pcMode = typeof proxyConfig.interceptionMode === 'string' ? (proxyConfig.interceptionMode as InterceptionMode) : 'REDIRECT';
  let interception = interceptionAnnotation(annotations, pcMode);
  // meshd's agentless Envoy has no TPROXY listeners; it is captured by REDIRECT.
  if (mode === 'agentless' && interception === 'TPROXY') interception = 'REDIRECT';
  const t = (key: string, fallback: string): string => annotations[key] ?? fallback;
  const optional = (key: string, fallback: string): string | undefined => (Object.hasOwn(annotations, key) ? annotations[key] : fallback !== '' ? fallback : undefined);
  const excludeOutboundPorts = optional(A.excludeOutboundPorts, settings.excludeOutboundPorts);
  const includeOutboundPorts = optional(A.includeOutboundPorts, settings.includeOutboundPorts);
  return {
    annotations,
    labels,
    mode,
    native: boolAnnotation(annotations, A.nativeSidecar) ?? settings.nativeSidecars,
    interception,
    statusPort: intAnnotation(annotations, A.statusPort, 0, 65535) ?? settings.statusPort,
    proxyConfig,
    image: annotations[A.proxyImage]?.includes('/') ? annotations[A.proxyImage]! : proxyImage(settings),
    resources: resources(annotations, settings),
    includeIPRanges: cidrList(A.includeOutboundIPRanges, t(A.includeOutboundIPRanges, settings.includeIPRanges), true),
    excludeIPRanges: cidrList(A.excludeOutboundIPRanges, t(A.excludeOutboundIPRanges, settings.excludeIPRanges), false),
    includeInboundPorts: portList(A.includeInboundPorts, t(A.includeInboundPorts, settings.includeInboundPorts), true),
    excludeInboundPorts: portList(A.excludeInboundPorts, t(A.excludeInboundPorts, settings.excludeInboundPorts), false),
    ...(includeOutboundPorts !== undefined ? { includeOutboundPorts: portList(A.includeOutboundPorts, includeOutboundPorts, false) } : {}),
    ...(excludeOutboundPorts !== undefined ? { excludeOutboundPorts: portList(A.excludeOutboundPorts, excludeOutboundPorts, false) } : {}),
    logLevel: t(A.logLevel, settings.logLevel),
    componentLogLevel: t(A.componentLogLevel, settings.componentLogLevel),
    agentLogLevel: t(A.agentLogLevel, settings.agentLogLevel),
    readiness: {
      initialDelaySeconds: intAnnotation(annotations, A.readinessInitialDelaySeconds, 0, 86400) ?? settings.readinessInitialDelaySeconds,
      periodSeconds: intAnnotation(annotations, A.readinessPeriodSeconds, 1, 86400) ?? settings.readinessPeriodSeconds,
      failureThreshold: intAnnotation(annotations, A.readinessFailureThreshold, 1, 100000) ?? settings.readinessFailureThreshold,
    },
    hold: proxyConfig.holdApplicationUntilProxyStarts === true || settings.holdApplicationUntilProxyStarts,
  };
}

/** The settings' ProxyConfig, with istiod's address when it is not Istio's default one. */
function defaultProxyConfig(settings: InjectorSettings): Record<string, unknown> {
  const addr = istiodAddress(settings);
  if (addr === 'istiod.istio-system.svc:15012' || settings.proxyConfig.discoveryAddress !== undefined) return settings.proxyConfig;
  return { discoveryAddress: addr, ...settings.proxyConfig };
}

/** Istio's excludeInboundPort: the status port added to the excluded inbound ports once. */
function withStatusPort(statusPort: number, excluded: string): string {
  const ports = excluded.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (statusPort === 0) return ports.join(',');
  if (ports.includes(String(statusPort))) return ports.join(',');
  return [...ports, String(statusPort)].join(',');
}

/** The `istio-init` container: pilot-agent's istio-iptables with Istio's arguments. */
export function initContainer(plan: Plan, settings: InjectorSettings): Container {
  const excluded = withStatusPort(plan.statusPort, plan.excludeInboundPorts);
  const args = [
    'istio-iptables',
    '-p', String(OUTBOUND_PORT),
    '-z', String(INBOUND_PORT),
    '-u', String(PROXY_UID),
    '-m', plan.interception,
    '-i', plan.includeIPRanges,
    '-x', plan.excludeIPRanges,
    '-b', plan.includeInboundPorts,
    '-d', excluded ? `${PROMETHEUS_PORT},${HEALTH_PORT},${excluded}` : `${PROMETHEUS_PORT},${HEALTH_PORT}`,
  ];
  if (plan.includeOutboundPorts !== undefined) args.push('-q', plan.includeOutboundPorts);
  if (plan.excludeOutboundPorts !== undefined) args.push('-o', plan.excludeOutboundPorts);
  if (plan.annotations[A.kubevirtInterfaces] !== undefined) args.push('-k', plan.annotations[A.kubevirtInterfaces]!);
  if (plan.annotations[A.excludeInterfaces] !== undefined) args.push('-c', plan.annotations[A.excludeInterfaces]!);
  args.push(`--log_output_level=${plan.agentLogLevel}`);
  const metadataEnv = proxyMetadataEnv(plan);
  return {
    name: INIT_CONTAINER,
    image: plan.image,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    args,
    ...(metadataEnv.length ? { env: metadataEnv } : {}),
    resources: structuredClone(plan.resources),
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: false,
      runAsGroup: 0,
      runAsNonRoot: false,
      runAsUser: 0,
    },
  };
}

export const fieldRef = (name: string, fieldPath: string): EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });
export const resourceRef = (name: string, resource: string): EnvVar => ({ name, valueFrom: { resourceFieldRef: { resource } } });

export function proxyMetadataEnv(plan: Plan): EnvVar[] {
  const md = plan.proxyConfig.proxyMetadata;
  if (!isRecord(md)) return [];
  return Object.entries(md).map(([name, value]) => ({ name, value: String(value) }));
}

/** ISTIO_META_POD_PORTS as Istio writes it: one JSON object per line, protocol defaulted to TCP as the API server would. */
export function podPortsJson(apps: Container[]): string {
  const lines: string[] = [];
  for (const c of apps) {
    for (const p of c.ports ?? []) {
      const o: Record<string, unknown> = {};
      if (p.name !== undefined) o.name = p.name;
      if (p.hostPort !== undefined) o.hostPort = p.hostPort;
      o.containerPort = p.containerPort;
      o.protocol = p.protocol ?? 'TCP';
      if (p.hostIP !== undefined) o.hostIP = p.hostIP;
      lines.push(`${lines.length ? ',' : ''}${JSON.stringify(o)}`);
    }
  }
  return ['[', ...lines.map((l) => `    ${l}`), ']'].join('\n');
}

/** The workload's owner as Istio names it in ISTIO_META_OWNER. */
export function ownerUri(w: WorkloadMeta): string {
  return `kubernetes://apis/${w.apiVersion}/namespaces/${w.namespace || 'default'}/${w.kind.toLowerCase()}s/${w.name}`;
}

function readinessProbe(plan: Plan): Container['readinessProbe'] {
  return {
    httpGet: { path: '/healthz/ready', port: HEALTH_PORT },
    ...(plan.readiness.initialDelaySeconds ? { initialDelaySeconds: plan.readiness.initialDelaySeconds } : {}),
    periodSeconds: plan.readiness.periodSeconds,
    timeoutSeconds: 3,
    failureThreshold: plan.readiness.failureThreshold,
  };
}

/** The readiness and startup probes of the proxy (agent or agentless), both on Envoy's 15021. */
export function proxyProbes(plan: Plan, settings: InjectorSettings): Pick<Container, 'readinessProbe' | 'startupProbe'> {
  if (plan.statusPort === 0) return {};
  return {
    readinessProbe: readinessProbe(plan),
    ...(settings.startupProbe.enabled ? { startupProbe: { httpGet: { path: '/healthz/ready', port: HEALTH_PORT }, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: settings.startupProbe.failureThreshold } } : {}),
  };
}

/** The proxy's security context: uid/gid 1337, no privileges, read-only root (root with NET_ADMIN for TPROXY). */
export function proxySecurityContext(plan: Plan): Record<string, unknown> {
  const tproxy = plan.interception === 'TPROXY';
  return {
    allowPrivilegeEscalation: false,
    capabilities: { ...(tproxy ? { add: ['NET_ADMIN'] } : {}), drop: ['ALL'] },
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsGroup: PROXY_UID,
    runAsNonRoot: !tproxy,
    runAsUser: tproxy ? 0 : PROXY_UID,
  };
}

const PODINFO_VOLUME: Volume = {
  name: 'istio-podinfo',
  downwardAPI: {
    items: [
      { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
      { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
    ],
  },
};

/** The volumes both proxies share: Envoy's files, the pod's labels, the projected token, istiod's root certificate. */
export function sharedVolumes(settings: InjectorSettings): Volume[] {
  return [
    { name: 'istio-envoy', emptyDir: { medium: 'Memory' } },
    structuredClone(PODINFO_VOLUME),
    { name: 'istio-token', projected: { sources: [{ serviceAccountToken: { audience: settings.tokenAudience, expirationSeconds: 43200, path: 'istio-token' } }] } },
    { name: 'istiod-ca-cert', configMap: { name: 'istio-ca-root-cert' } },
  ];
}

/** What a mode adds to the pod: init containers (in order, before the app's), the proxy, volumes. */
export interface SidecarParts {
  init: Container[];
  proxy: Container;
  volumes: Volume[];
}

