// Istio's Sidecar (networking.istio.io v1, v1beta1, v1alpha3): what a sidecar proxy imports
// (egress hosts as `namespace/host`), how its inbound ports are set up, and its outbound
// traffic policy. Validation names the field; which Sidecar applies to a workload, and which
// services it imports, are decided here too (pure functions of the config), for translation.
import { isIP } from 'node:net';
import { z } from 'zod';
import { selectorMatches, type Labels } from './labels.js';
import { olderFirst } from './creation-order.js';

const CAPTURE_MODES = ['DEFAULT', 'IPTABLES', 'NONE'] as const;
const captureMode = z.enum(CAPTURE_MODES, { error: (i) => `${JSON.stringify(i.input)} is not a capture mode; use one of ${CAPTURE_MODES.join(', ')}` });
const portNumber = z.number().int().min(1, 'must be a port number from 1 to 65535').max(65535, 'must be a port number from 1 to 65535');

const sidecarPort = z.object({
  number: portNumber,
  protocol: z.string().nullish(),
  name: z.string().nullish(),
  targetPort: portNumber.nullish(),
});

const egressListener = z.object({
  port: sidecarPort.nullish(),
  bind: z.string().nullish(),
  captureMode: captureMode.nullish(),
  hosts: z.array(z.string()).min(1, 'must list at least one host, as "namespace/host"'),
});

const ingressListener = z.object({
  port: sidecarPort,
  bind: z.string().nullish(),
  captureMode: captureMode.nullish(),
  defaultEndpoint: z.string().nullish(),
  tls: z.record(z.string(), z.unknown()).nullish(),
  connectionPool: z.record(z.string(), z.unknown()).nullish(),
});

const OUTBOUND_MODES = ['ALLOW_ANY', 'REGISTRY_ONLY'] as const;
/** As the mesh config's outboundTrafficPolicy.mode (model/mesh-config.ts). */
export type SidecarOutboundMode = (typeof OUTBOUND_MODES)[number];

export const sidecarSpecSchema = z.object({
  workloadSelector: z.object({ labels: z.record(z.string(), z.string()).nullish() }).nullish(),
  ingress: z.array(ingressListener).nullish(),
  egress: z.array(egressListener).nullish(),
  outboundTrafficPolicy: z
    .object({
      mode: z.enum(OUTBOUND_MODES, { error: (i) => `${JSON.stringify(i.input)} is not one of ${OUTBOUND_MODES.join(', ')}` }).nullish(),
      egressProxy: z.record(z.string(), z.unknown()).nullish(),
    })
    .nullish(),
  inboundConnectionPool: z.record(z.string(), z.unknown()).nullish(),
});

export type SidecarSpec = z.infer<typeof sidecarSpecSchema>;
export type SidecarEgress = z.infer<typeof egressListener>;

type Issue = { path: (string | number)[]; message: string };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_NAME = /^(\*|(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*)$/;

/** Why an egress host is not `namespace/host` as Istio reads it, or undefined when it is. */
export function egressHostIssue(host: string): string | undefined {
  const parts = host.split('/');
  if (parts.length !== 2) return `"${host}" must be "namespace/host" (namespace: a name, "*", "." or "~"; host: a DNS name, "*" or "*.suffix")`;
  const [ns, name] = parts as [string, string];
  if (ns !== '*' && ns !== '.' && ns !== '~' && !DNS_LABEL.test(ns)) return `"${host}": namespace "${ns}" must be a namespace name, "*", "." or "~"`;
  if (name.length === 0 || name.length > 253 || !DNS_NAME.test(name)) return `"${host}": host "${name}" must be a DNS name, "*" or "*.suffix"`;
  return undefined;
}

function bindIssue(bind: string | null | undefined, path: (string | number)[], out: Issue[]): void {
  if (!bind) return;
  if (bind.startsWith('unix://')) return;
  if (isIP(bind) === 0) out.push({ path, message: `"${bind}" must be an IP address or a unix:// socket path` });
}

/** Checks beyond the schema, as Istio's validation makes them. */
export function sidecarIssues(spec: SidecarSpec): Issue[] {
  const out: Issue[] = [];
  const labels = spec.workloadSelector?.labels;
  if (spec.workloadSelector && Object.keys(labels ?? {}).length === 0) out.push({ path: ['workloadSelector', 'labels'], message: 'must have at least one label (leave workloadSelector out to apply to the whole namespace)' });
  const egressPorts = new Map<number, number>();
  let portless = -1;
  spec.egress?.forEach((e, i) => {
    e.hosts.forEach((h, j) => {
      const issue = egressHostIssue(h);
      if (issue) out.push({ path: ['egress', i, 'hosts', j], message: issue });
    });
    bindIssue(e.bind, ['egress', i, 'bind'], out);
    if (e.port) {
      const first = egressPorts.get(e.port.number);
      if (first !== undefined) out.push({ path: ['egress', i, 'port', 'number'], message: `port ${e.port.number} is already used by egress[${first}]` });
      else egressPorts.set(e.port.number, i);
    } else if (portless >= 0) out.push({ path: ['egress', i, 'port'], message: `is required: egress[${portless}] is already the one listener without a port` });
    else portless = i;
  });
  if (portless >= 0 && portless !== (spec.egress?.length ?? 0) - 1) out.push({ path: ['egress', portless], message: 'the egress listener without a port must be the last one' });
  const ingressPorts = new Map<number, number>();
  spec.ingress?.forEach((g, i) => {
    const first = ingressPorts.get(g.port.number);
    if (first !== undefined) out.push({ path: ['ingress', i, 'port', 'number'], message: `port ${g.port.number} is already used by ingress[${first}]` });
    else ingressPorts.set(g.port.number, i);
    bindIssue(g.bind, ['ingress', i, 'bind'], out);
    const ep = g.defaultEndpoint;
    if (ep && !/^(127\.0\.0\.1|0\.0\.0\.0|\[::1\]|\[::\]):[0-9]{1,5}$/.test(ep) && !ep.startsWith('unix://')) {
      out.push({ path: ['ingress', i, 'defaultEndpoint'], message: `"${ep}" must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>` });
    }
  });
  if (spec.outboundTrafficPolicy?.egressProxy && spec.outboundTrafficPolicy.mode !== 'ALLOW_ANY') {
    out.push({ path: ['outboundTrafficPolicy', 'egressProxy'], message: 'is only allowed with mode ALLOW_ANY' });
  }
  return out;
}

/** A Sidecar as resolution needs it. */
export interface SidecarLike {
  metadata: { namespace: string; name: string; creationTimestamp?: string };
  spec: SidecarSpec;
}

/** Oldest first; equal times by name (Istio's order among Sidecars). */
export const olderSidecarFirst: (a: SidecarLike, b: SidecarLike) => number = olderFirst;

export function hasSidecarSelector(s: SidecarLike): boolean {
  return Object.keys(s.spec.workloadSelector?.labels ?? {}).length > 0;
}

/**
 * The Sidecar that applies to a workload, as Istio resolves it: of its namespace's Sidecars
 * whose workloadSelector matches its labels, the oldest; else its namespace's oldest
 * Sidecar without a selector; else the root namespace's oldest Sidecar without a selector.
 * `sidecars` may be in any order.
 */
export function sidecarFor<T extends SidecarLike>(sidecars: readonly T[], namespace: string, labels: Labels, rootNamespace: string): T | undefined {
  const own = sidecars.filter((s) => s.metadata.namespace === namespace).sort(olderSidecarFirst);
  const selected = own.find((s) => hasSidecarSelector(s) && selectorMatches(s.spec.workloadSelector?.labels ?? undefined, labels));
  if (selected) return selected;
  const wide = own.find((s) => !hasSidecarSelector(s));
  if (wide) return wide;
  return sidecars.filter((s) => s.metadata.namespace === rootNamespace && !hasSidecarSelector(s)).sort(olderSidecarFirst)[0];
}

/** One parsed egress host: the namespace it names (`*` for any, undefined for `~`: none) and the host pattern. */
interface EgressHost {
  namespace: string | undefined;
  host: string;
}

/** What a Sidecar lets a workload of `proxyNamespace` see: egress ports, each with its hosts. */
export interface SidecarImports {
  /** The egress listeners: `port` undefined for the catch-all one. */
  readonly listeners: readonly { port: number | undefined; hosts: readonly EgressHost[] }[];
  readonly outboundMode: SidecarOutboundMode | undefined;
}

/**
 * `.` stands for the workload's namespace: for a root namespace default Sidecar applied to
 * another namespace, that is the workload's own, as in Istio.
 */
export function sidecarImports(sidecar: SidecarLike, proxyNamespace: string): SidecarImports {
  const egress = sidecar.spec.egress?.length ? sidecar.spec.egress : [{ hosts: ['*/*'] }];
  return {
    listeners: egress.map((e) => ({
      port: (e as SidecarEgress).port?.number,
      hosts: e.hosts.map((h) => {
        const [ns, host] = h.split('/') as [string, string];
        return { namespace: ns === '~' ? undefined : ns === '.' ? proxyNamespace : ns, host };
      }),
    })),
    outboundMode: sidecar.spec.outboundTrafficPolicy?.mode ?? undefined,
  };
}

function hostPatternMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return pattern === host;
}

/**
 * Whether the Sidecar imports port `port` of the service `hostname` in `namespace`: an egress
 * listener for that port decides it; without one, the listener without a port does (as in
 * Istio, where a port-specific listener takes its port from the catch-all one).
 */
export function importsServicePort(imports: SidecarImports, svc: { hostname: string; namespace: string }, port: number): boolean {
  const listener = imports.listeners.find((l) => l.port === port) ?? imports.listeners.find((l) => l.port === undefined);
  if (!listener) return false;
  return listener.hosts.some((h) => h.namespace !== undefined && (h.namespace === '*' || h.namespace === svc.namespace) && hostPatternMatches(h.host, svc.hostname));
}
