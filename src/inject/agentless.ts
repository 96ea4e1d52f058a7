// The agentless proxy: a stock Envoy in the `istio-proxy` container, with no pilot-agent. An
// init container from meshd's image runs `meshd bootstrap` with the pod's identity (name,
// namespace and IP from the downward API, its labels from the podinfo volume, the projected
// `istio-ca` token) and writes Envoy's bootstrap into the shared `istio-envoy` volume; Envoy
// then connects to meshd over TLS (port 15012, verified with the istio-ca-root-cert root) and
// gets its listeners, clusters and workload certificate (SDS) over ADS. istio-init captures the
// traffic as for the agent.
//
// What it gives up, compared with Istio's agent:
// - no app probe rewriting: the kubelet's probes reach the app through the inbound capture,
//   so under STRICT mTLS HTTP/TCP probes of captured ports fail (exclude those ports with
//   traffic.sidecar.istio.io/excludeInboundPorts, or use exec probes);
// - nothing on 15020: no metrics merged with the app's (Prometheus scrapes Envoy's own on 15090,
//   and only when the app has no prometheus.io annotations of its own), no /app-health, no
//   /quitquitquit or drain endpoint;
// - no DNS proxying, no local SDS server: the workload key is made by meshd, not in the pod,
//   and delivered over the xDS stream;
// - the token is the one the pod started with (Envoy's bootstrap holds it): a reconnect to meshd
//   after it expires (12 h) is refused, so the pod must restart before then;
// - no holdApplicationUntilProxyStarts (use native sidecars), no TPROXY (REDIRECT is used).
import type { Container, Volume } from './k8s.js';
import { HEALTH_PORT, PROMETHEUS_PORT, fieldRef, proxyProbes, proxySecurityContext, sharedVolumes, type Plan, type SidecarParts } from './plan.js';
import { istiodAddress, type InjectorSettings } from './settings.js';

export const BOOTSTRAP_CONTAINER = 'meshd-bootstrap';
/** Where meshd's CLI is in its image (see the Dockerfile). */
export const MESHD_CLI_IN_IMAGE = '/app/dist/src/cli/main.js';

const TOKEN_DIR = '/var/run/secrets/tokens';
const ROOT_CERT_DIR = '/var/run/secrets/istio';
const ENVOY_DIR = '/etc/istio/proxy';
const PODINFO_DIR = '/etc/istio/pod';

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Envoy's worker threads: the proxy config's concurrency, else its CPU limit rounded up, else 2 (Istio's default). */
function concurrency(plan: Plan): number {
  const pc = plan.proxyConfig.concurrency;
  if (typeof pc === 'number' && Number.isInteger(pc) && pc > 0) return pc;
  const cpu = plan.resources.limits?.cpu;
  if (cpu) {
    const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(cpu);
    if (m) return Math.max(1, Math.ceil(Number(m[1]) / (m[2] ? 1000 : 1)));
  }
  return 2;
}

/** The init container that writes Envoy's bootstrap with `meshd bootstrap`. */
function bootstrapContainer(plan: Plan, settings: InjectorSettings): Container {
  const xds = typeof plan.proxyConfig.discoveryAddress === 'string' ? plan.proxyConfig.discoveryAddress : istiodAddress(settings);
  const serverName = xds.slice(0, xds.lastIndexOf(':')) || xds;
  const flags = [
    '--type', 'sidecar',
    '--service-account', '"$SERVICE_ACCOUNT"',
    '--pod', '"$POD_NAME"',
    '--namespace', '"$POD_NAMESPACE"',
    '--ip', '"$INSTANCE_IP"',
    '--labels', '"$labels"',
    '--domain', shellQuote(settings.clusterDomain),
    '--cluster-id', shellQuote(settings.clusterId),
    '--interception', plan.interception === 'NONE' ? 'NONE' : 'REDIRECT',
    '--delta',
    '--token-file', `${TOKEN_DIR}/istio-token`,
    '--xds-address', shellQuote(xds),
    '--xds-root-cert', `${ROOT_CERT_DIR}/root-cert.pem`,
    '--xds-server-name', shellQuote(serverName),
  ];
  // The downward API writes the labels as `key="value"` lines; label values have no quotes.
  const script = [
    'set -eu',
    `labels=$(tr -d '"' < ${PODINFO_DIR}/labels | tr '\\n' ',')`,
    `node ${MESHD_CLI_IN_IMAGE} bootstrap ${flags.join(' ')} > ${ENVOY_DIR}/envoy.yaml.tmp`,
    `mv ${ENVOY_DIR}/envoy.yaml.tmp ${ENVOY_DIR}/envoy.yaml`,
  ].join('\n');
  return {
    name: BOOTSTRAP_CONTAINER,
    image: settings.meshdImage,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    command: ['/bin/sh', '-c'],
    args: [script],
    env: [fieldRef('POD_NAME', 'metadata.name'), fieldRef('POD_NAMESPACE', 'metadata.namespace'), fieldRef('INSTANCE_IP', 'status.podIP'), fieldRef('SERVICE_ACCOUNT', 'spec.serviceAccountName')],
    resources: structuredClone(plan.resources),
    securityContext: proxySecurityContext({ ...plan, interception: 'REDIRECT' }),
    volumeMounts: [
      { name: 'istio-envoy', mountPath: ENVOY_DIR },
      { name: 'istio-token', mountPath: TOKEN_DIR, readOnly: true },
      { name: 'istiod-ca-cert', mountPath: ROOT_CERT_DIR, readOnly: true },
      { name: 'istio-podinfo', mountPath: PODINFO_DIR, readOnly: true },
    ],
  };
}

/** The stock Envoy, as the pod's `istio-proxy`. */
function envoyContainer(plan: Plan, settings: InjectorSettings): Container {
  const args = ['-c', `${ENVOY_DIR}/envoy.yaml`, '--disable-hot-restart', '--drain-time-s', '45', '--concurrency', String(concurrency(plan)), '--log-level', plan.logLevel];
  if (plan.componentLogLevel) args.push('--component-log-level', plan.componentLogLevel);
  return {
    name: 'istio-proxy',
    image: settings.envoyImage,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    command: ['envoy'],
    args,
    ports: [{ containerPort: PROMETHEUS_PORT, protocol: 'TCP', name: 'http-envoy-prom' }],
    ...proxyProbes({ ...plan, statusPort: plan.statusPort || HEALTH_PORT }, settings),
    resources: structuredClone(plan.resources),
    securityContext: proxySecurityContext(plan),
    volumeMounts: [
      { name: 'istio-envoy', mountPath: ENVOY_DIR },
      { name: 'istiod-ca-cert', mountPath: ROOT_CERT_DIR, readOnly: true },
      { name: 'istio-token', mountPath: TOKEN_DIR, readOnly: true },
    ],
    ...(plan.native ? { restartPolicy: 'Always' } : {}),
  };
}

/** The agentless mode's additions: the bootstrap init container, Envoy, and their volumes. */
export function agentlessSidecar(plan: Plan, settings: InjectorSettings): SidecarParts {
  const volumes: Volume[] = sharedVolumes(settings);
  return { init: [bootstrapContainer(plan, settings)], proxy: envoyContainer(plan, settings), volumes };
}
