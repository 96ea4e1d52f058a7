// The pod annotations the injector reads (Istio's names), checked: a bad value fails the
// injection with an error that names the annotation, as Istio's injector refuses them,
// instead of producing a pod whose istio-init or proxy would crash.
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { isRecord } from './k8s.js';
import type { InterceptionMode } from './settings.js';
export { mergeProxyConfig } from './settings.js';

export const A = {
  interceptionMode: 'sidecar.istio.io/interceptionMode',
  proxyConfig: 'proxy.istio.io/config',
  proxyImage: 'sidecar.istio.io/proxyImage',
  proxyCPU: 'sidecar.istio.io/proxyCPU',
  proxyMemory: 'sidecar.istio.io/proxyMemory',
  proxyCPULimit: 'sidecar.istio.io/proxyCPULimit',
  proxyMemoryLimit: 'sidecar.istio.io/proxyMemoryLimit',
  logLevel: 'sidecar.istio.io/logLevel',
  componentLogLevel: 'sidecar.istio.io/componentLogLevel',
  agentLogLevel: 'sidecar.istio.io/agentLogLevel',
  statusPort: 'status.sidecar.istio.io/port',
  readinessInitialDelaySeconds: 'readiness.status.sidecar.istio.io/initialDelaySeconds',
  readinessPeriodSeconds: 'readiness.status.sidecar.istio.io/periodSeconds',
  readinessFailureThreshold: 'readiness.status.sidecar.istio.io/failureThreshold',
  rewriteAppHTTPProbers: 'sidecar.istio.io/rewriteAppHTTPProbers',
  nativeSidecar: 'sidecar.istio.io/nativeSidecar',
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  kubevirtInterfaces: 'traffic.sidecar.istio.io/kubevirtInterfaces',
  excludeInterfaces: 'traffic.sidecar.istio.io/excludeInterfaces',
  mergeMetrics: 'prometheus.istio.io/merge-metrics',
  /** meshd's: `envoy` for the agentless proxy, `agent` for Istio's. */
  meshdProxy: 'meshd.io/proxy',
} as const;

/** A pod that cannot be injected as asked: names the annotation and what is wrong. */
export class InjectionError extends Error {
  constructor(
    readonly annotation: string,
    detail: string,
  ) {
    super(`annotation ${annotation}: ${detail}`);
    this.name = 'InjectionError';
  }
}

/** Go's strconv.ParseBool, which Istio uses for boolean annotations. */
export function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

export function boolAnnotation(annotations: Record<string, string>, key: string): boolean | undefined {
  const v = annotations[key];
  if (v === undefined) return undefined;
  const b = parseGoBool(v.trim());
  if (b === undefined) throw new InjectionError(key, `"${v}" is not true or false`);
  return b;
}

export function intAnnotation(annotations: Record<string, string>, key: string, min: number, max: number): number | undefined {
  const v = annotations[key];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max) throw new InjectionError(key, `"${v}" is not an integer from ${min} to ${max}`);
  return Number(v);
}

const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** A Kubernetes resource quantity (`100m`, `1Gi`, `2`). */
export function quantityAnnotation(annotations: Record<string, string>, key: string): string | undefined {
  const v = annotations[key];
  if (v === undefined) return undefined;
  if (!QUANTITY.test(v.trim())) throw new InjectionError(key, `"${v}" is not a resource quantity (such as 100m, 2, 128Mi, 1Gi)`);
  return v.trim();
}

export function interceptionAnnotation(annotations: Record<string, string>, fallback: InterceptionMode): InterceptionMode {
  const v = annotations[A.interceptionMode] ?? fallback;
  if (v !== 'REDIRECT' && v !== 'TPROXY' && v !== 'NONE') throw new InjectionError(A.interceptionMode, `"${v}" is not REDIRECT, TPROXY or NONE`);
  return v;
}

function cidrOk(s: string): boolean {
  const slash = s.indexOf('/');
  const ip = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(ip);
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = s.slice(slash + 1);
  return /^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** A comma-separated list of CIDRs (or `*` when `star`); the text as given. */
export function cidrList(key: string, value: string, star: boolean): string {
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (star && parts.length === 1 && parts[0] === '*') return value;
  for (const p of parts) if (!cidrOk(p)) throw new InjectionError(key, `"${p}" is not an IP range (CIDR)${star ? ' or *' : ''}`);
  return value;
}

/** A comma-separated list of ports (or `*` when `star`); the text as given. */
export function portList(key: string, value: string, star: boolean): string {
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (star && parts.length === 1 && parts[0] === '*') return value;
  for (const p of parts) if (!/^\d+$/.test(p) || Number(p) > 65535) throw new InjectionError(key, `"${p}" is not a port${star ? ' or *' : ''}`);
  return value;
}

/** The `proxy.istio.io/config` annotation: a ProxyConfig as YAML or JSON. */
export function proxyConfigAnnotation(annotations: Record<string, string>): Record<string, unknown> | undefined {
  const v = annotations[A.proxyConfig];
  if (v === undefined) return undefined;
  let doc: unknown;
  try {
    doc = parseYaml(v, { maxAliasCount: 10 });
  } catch (err) {
    throw new InjectionError(A.proxyConfig, `not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isRecord(doc)) throw new InjectionError(A.proxyConfig, 'expected a ProxyConfig (an object)');
  return doc;
}

