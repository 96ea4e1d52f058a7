// Application probes go through the agent, as Istio rewrites them: with mTLS the kubelet
// cannot reach the app's port directly, so each HTTP, TCP or gRPC probe of an app container
// becomes an HTTP GET of `/app-health/<container>/readyz|livez|startupz` on the agent's status
// port, and the original probe is handed to the agent in ISTIO_KUBE_APP_PROBERS (JSON, keyed by
// that path), which the agent runs against the app itself.
import type { Container, ContainerPort, HTTPGetAction, Probe } from './k8s.js';

type ProbeField = 'readinessProbe' | 'livenessProbe' | 'startupProbe';
const PROBES: readonly [ProbeField, string][] = [
  ['readinessProbe', 'readyz'],
  ['livenessProbe', 'livez'],
  ['startupProbe', 'startupz'],
];

/** The agent's path for a container's probe: `/app-health/<container>/<readyz|livez|startupz>`. */
export function appProbePath(container: string, kind: 'readyz' | 'livez' | 'startupz' | string): string {
  return `/app-health/${container}/${kind}`;
}

/** Which inbound ports are captured (a probe on a port that is not needs no rewriting); undefined: all. */
export function capturedInboundPorts(includeInboundPorts: string, excludeInboundPorts: string): { include?: Set<number>; exclude: Set<number> } {
  const list = (s: string): Set<number> =>
    new Set(
      s
        .split(',')
        .map((p) => p.trim())
        .filter((p) => /^\d+$/.test(p))
        .map(Number),
    );
  const inc = includeInboundPorts.trim();
  if (inc !== '' && inc !== '*') return { include: list(inc), exclude: new Set() };
  return { exclude: list(excludeInboundPorts) };
}

function resolvePort(port: number | string | undefined, ports: ContainerPort[] | undefined): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port !== 'string') return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  return ports?.find((p) => p.name === port)?.containerPort;
}

/** The agent's copy of one probe, its fields in the order Kubernetes serialises them, with the API server's defaults filled in. */
function proberFor(probe: Probe, c: Container): Record<string, unknown> | undefined {
  const timeoutSeconds = probe.timeoutSeconds ?? 1;
  if (probe.httpGet) {
    const port = resolvePort(probe.httpGet.port, c.ports);
    if (port === undefined) return undefined;
    const h = probe.httpGet;
    const httpGet: Record<string, unknown> = {};
    if (h.path !== undefined) httpGet.path = h.path;
    httpGet.port = port;
    if (h.host !== undefined) httpGet.host = h.host;
    httpGet.scheme = h.scheme ?? 'HTTP';
    if (h.httpHeaders !== undefined) httpGet.httpHeaders = h.httpHeaders;
    return { httpGet, timeoutSeconds };
  }
  if (probe.tcpSocket) {
    const port = resolvePort(probe.tcpSocket.port, c.ports);
    if (port === undefined) return undefined;
    return { tcpSocket: { port, ...(probe.tcpSocket.host !== undefined ? { host: probe.tcpSocket.host } : {}) }, timeoutSeconds };
  }
  if (probe.grpc) {
    return { grpc: { port: probe.grpc.port, ...(probe.grpc.service !== undefined ? { service: probe.grpc.service } : {}) }, timeoutSeconds };
  }
  return undefined;
}

function probePort(probe: Probe, c: Container): number | undefined {
  if (probe.httpGet) return resolvePort(probe.httpGet.port, c.ports);
  if (probe.tcpSocket) return resolvePort(probe.tcpSocket.port, c.ports);
  if (probe.grpc) return probe.grpc.port;
  return undefined;
}

/** The probe the kubelet runs after the rewrite: HTTP GET on the agent, the probe's timing kept. */
function rewritten(probe: Probe, path: string, statusPort: number): Probe {
  const { httpGet, tcpSocket: _t, grpc: _g, ...rest } = probe;
  const get: HTTPGetAction = { ...(httpGet ?? {}), path, port: statusPort };
  // The kubelet talks plain HTTP to the agent, which speaks HTTPS to the app if the probe did.
  if (get.scheme === 'HTTPS') get.scheme = 'HTTP';
  return { ...rest, httpGet: get };
}

/**
 * Rewrites, in place, the probes of `containers` (the app's containers and sidecar-style init
 * containers) and returns the JSON for ISTIO_KUBE_APP_PROBERS, or undefined when no probe was
 * rewritten. Probes on ports the sidecar does not capture are left as they are.
 */
export function rewriteAppProbes(containers: Container[], statusPort: number, captured: { include?: Set<number>; exclude: Set<number> }): string | undefined {
  const probers: Record<string, Record<string, unknown>> = {};
  for (const c of containers) {
    for (const [field, kind] of PROBES) {
      const probe = c[field];
      if (!probe) continue;
      const port = probePort(probe, c);
      if (port === undefined || port === statusPort) continue;
      if (captured.include ? !captured.include.has(port) : captured.exclude.has(port)) continue;
      const prober = proberFor(probe, c);
      if (!prober) continue;
      const path = appProbePath(c.name, kind);
      probers[path] = prober;
      c[field] = rewritten(probe, path, statusPort);
    }
  }
  const keys = Object.keys(probers).sort();
  if (keys.length === 0) return undefined;
  return JSON.stringify(Object.fromEntries(keys.map((k) => [k, probers[k]])));
}
