import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  InjectionError,
  decideForKubeInject,
  defaultInjectorSettings,
  injectPod,
  injectPodTemplate,
  parseInjectorSettings,
  SettingsError,
  workloadOfPod,
  type InjectorSettings,
} from '../../src/inject/injector.js';
import { kubeInjectObject } from '../../src/inject/kube-inject.js';
import { podPatch, type JsonPatchOp } from '../../src/inject/patch.js';
import type { Container, Pod, PodTemplate } from '../../src/inject/k8s.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { MESHD_CLI } from '../support/meshd.js';

// Injected pods are walked freely in assertions.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

const settings = (over: Partial<InjectorSettings> = {}): InjectorSettings => ({ ...defaultInjectorSettings(), ...over });
const WORKLOAD = { name: 'httpbin', namespace: 'shop', kind: 'Deployment', apiVersion: 'apps/v1' };

function pod(over: { labels?: Record<string, string>; annotations?: Record<string, string>; spec?: Record<string, unknown> } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'httpbin-1', namespace: 'shop', labels: { app: 'httpbin', ...(over.labels ?? {}) }, annotations: { ...(over.annotations ?? {}) } },
    spec: { serviceAccountName: 'httpbin', containers: [{ name: 'httpbin', image: 'kennethreitz/httpbin', ports: [{ name: 'http', containerPort: 8080 }] }], ...(over.spec ?? {}) },
  };
}

function inject(template: PodTemplate, s: InjectorSettings = settings()): Any {
  return injectPodTemplate(template, WORKLOAD, s);
}

const container = (t: Any, name: string): Any => [...(t.spec.containers ?? []), ...(t.spec.initContainers ?? [])].find((c: Container) => c.name === name);
const env = (c: Any, name: string): Any => c.env.find((e: { name: string }) => e.name === name);

describe('injection decision (webhook)', () => {
  const enabled = { 'istio-injection': 'enabled' };
  const cases: [string, Pod, string, Record<string, string>, boolean][] = [
    ['namespace istio-injection=enabled', pod(), 'shop', enabled, true],
    ['namespace enabled, pod label inject=false', pod({ labels: { 'sidecar.istio.io/inject': 'false' } }), 'shop', enabled, false],
    ['namespace enabled, legacy annotation inject=false', pod({ annotations: { 'sidecar.istio.io/inject': 'false' } }), 'shop', enabled, false],
    ['namespace enabled, label true wins over annotation false', pod({ labels: { 'sidecar.istio.io/inject': 'true' }, annotations: { 'sidecar.istio.io/inject': 'false' } }), 'shop', enabled, true],
    ['namespace enabled, label "no"', pod({ labels: { 'sidecar.istio.io/inject': 'no' } }), 'shop', enabled, false],
    ['unlabelled namespace, pod label inject=true', pod({ labels: { 'sidecar.istio.io/inject': 'true' } }), 'shop', {}, true],
    ['unlabelled namespace, legacy annotation inject=true (the webhook is not called)', pod({ annotations: { 'sidecar.istio.io/inject': 'true' } }), 'shop', {}, false],
    ['unlabelled namespace', pod(), 'shop', {}, false],
    ['namespace istio-injection=disabled, pod label true', pod({ labels: { 'sidecar.istio.io/inject': 'true' } }), 'shop', { 'istio-injection': 'disabled' }, false],
    ['namespace istio.io/rev=default', pod(), 'shop', { 'istio.io/rev': 'default' }, true],
    ['namespace istio.io/rev of another revision', pod(), 'shop', { 'istio.io/rev': 'canary' }, false],
    ['unlabelled namespace, pod label istio.io/rev=default', pod({ labels: { 'istio.io/rev': 'default' } }), 'shop', {}, true],
    ['kube-system, even labelled', pod(), 'kube-system', enabled, false],
    ['istio-system, even labelled', pod(), 'istio-system', enabled, false],
    ['hostNetwork pod', pod({ spec: { hostNetwork: true } }), 'shop', enabled, false],
    ['already injected (status annotation)', pod({ annotations: { 'sidecar.istio.io/status': '{}' } }), 'shop', enabled, false],
    ['already has an istio-proxy container', pod({ spec: { containers: [{ name: 'app' }, { name: 'istio-proxy' }] } }), 'shop', enabled, false],
  ];
  for (const [name, p, ns, nsLabels, want] of cases) {
    it(name, () => {
      const r = injectPod(p, { name: ns, labels: nsLabels }, settings());
      assert.equal(r.injected, want, r.reason);
      assert.ok(r.reason.length > 0);
      if (!want) assert.equal(r.pod, p, 'a pod not injected is returned as it was');
    });
  }

  it('policy disabled: only pods that opt in', () => {
    const s = settings({ policy: 'disabled' });
    assert.equal(injectPod(pod(), { name: 'shop', labels: { 'istio-injection': 'enabled' } }, s).injected, false);
    assert.equal(injectPod(pod({ annotations: { 'sidecar.istio.io/inject': 'true' } }), { name: 'shop', labels: { 'istio-injection': 'enabled' } }, s).injected, true);
  });

  it('never/always inject selectors', () => {
    const s = settings({ neverInjectSelector: [{ matchLabels: { app: 'httpbin' } }] });
    assert.equal(injectPod(pod(), { name: 'shop', labels: { 'istio-injection': 'enabled' } }, s).injected, false);
    // An explicit opt-in wins over the selectors.
    assert.equal(injectPod(pod({ annotations: { 'sidecar.istio.io/inject': 'true' } }), { name: 'shop', labels: { 'istio-injection': 'enabled' } }, s).injected, true);
    const always = settings({ policy: 'disabled', alwaysInjectSelector: [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['httpbin'] }] }] });
    assert.equal(injectPod(pod(), { name: 'shop', labels: { 'istio-injection': 'enabled' } }, always).injected, true);
  });

  it('kube-inject injects regardless of namespace labels unless the pod opts out', () => {
    const s = settings();
    assert.equal(decideForKubeInject({}, { containers: [] }, 'shop', s).inject, true);
    assert.equal(decideForKubeInject({ annotations: { 'sidecar.istio.io/inject': 'false' } }, {}, 'shop', s).inject, false);
    assert.equal(decideForKubeInject({ labels: { 'sidecar.istio.io/inject': 'false' } }, {}, 'shop', s).inject, false);
    assert.equal(decideForKubeInject({}, { hostNetwork: true }, 'shop', s).inject, false);
    assert.equal(decideForKubeInject({}, {}, 'kube-system', s).inject, false);
  });
});

describe('injected pod (agent)', () => {
  const t = inject(pod());

  it('adds istio-init with Istio iptables arguments, as root with NET_ADMIN and NET_RAW', () => {
    const init = container(t, 'istio-init');
    assert.equal(t.spec.initContainers[0].name, 'istio-init');
    assert.equal(init.image, 'docker.io/istio/proxyv2:1.31.1');
    assert.deepEqual(init.args, ['istio-iptables', '-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info']);
    assert.deepEqual(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
    assert.equal(init.securityContext.runAsUser, 0);
    assert.equal(init.securityContext.runAsNonRoot, false);
    assert.equal(init.imagePullPolicy, undefined, 'omitted unless set, as in Istio');
  });

  it('adds istio-proxy running pilot-agent with Istio env, ports, probes and security context', () => {
    const p = container(t, 'istio-proxy');
    assert.equal(t.spec.containers.at(-1).name, 'istio-proxy');
    assert.deepEqual(p.args, ['proxy', 'sidecar', '--domain', '$(POD_NAMESPACE).svc.cluster.local', '--proxyLogLevel=warning', '--proxyComponentLogLevel=misc:error', '--log_output_level=default:info']);
    assert.deepEqual(p.ports, [{ containerPort: 15090, protocol: 'TCP', name: 'http-envoy-prom' }]);
    assert.deepEqual(p.readinessProbe, { httpGet: { path: '/healthz/ready', port: 15021 }, periodSeconds: 15, timeoutSeconds: 3, failureThreshold: 4 });
    assert.equal(p.startupProbe.failureThreshold, 600);
    assert.deepEqual(p.securityContext, {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: 1337,
      runAsNonRoot: true,
      runAsUser: 1337,
    });
    assert.deepEqual(p.resources, { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '100m', memory: '128Mi' } });
    assert.equal(env(p, 'PILOT_CERT_PROVIDER').value, 'istiod');
    assert.equal(env(p, 'CA_ADDR').value, 'istiod.istio-system.svc:15012');
    assert.deepEqual(env(p, 'POD_NAME').valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
    assert.deepEqual(env(p, 'INSTANCE_IP').valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });
    assert.deepEqual(env(p, 'SERVICE_ACCOUNT').valueFrom, { fieldRef: { fieldPath: 'spec.serviceAccountName' } });
    assert.deepEqual(env(p, 'HOST_IP').valueFrom, { fieldRef: { fieldPath: 'status.hostIP' } });
    assert.deepEqual(env(p, 'ISTIO_CPU_LIMIT').valueFrom, { resourceFieldRef: { resource: 'limits.cpu' } });
    assert.equal(env(p, 'PROXY_CONFIG').value, '{}\n');
    assert.deepEqual(JSON.parse(env(p, 'ISTIO_META_POD_PORTS').value), [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    assert.equal(env(p, 'ISTIO_META_APP_CONTAINERS').value, 'httpbin');
    assert.equal(env(p, 'ISTIO_META_CLUSTER_ID').value, 'Kubernetes');
    assert.deepEqual(env(p, 'ISTIO_META_NODE_NAME').valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.equal(env(p, 'ISTIO_META_INTERCEPTION_MODE').value, 'REDIRECT');
    assert.equal(env(p, 'ISTIO_META_WORKLOAD_NAME').value, 'httpbin');
    assert.equal(env(p, 'ISTIO_META_OWNER').value, 'kubernetes://apis/apps/v1/namespaces/shop/deployments/httpbin');
    assert.equal(env(p, 'ISTIO_META_MESH_ID').value, 'cluster.local');
    assert.equal(env(p, 'TRUST_DOMAIN').value, 'cluster.local');
  });

  it("mounts Istio's volumes at Istio's paths", () => {
    const p = container(t, 'istio-proxy');
    const mounts = Object.fromEntries(p.volumeMounts.map((m: Any) => [m.name, m.mountPath]));
    assert.deepEqual(mounts, {
      'workload-socket': '/var/run/secrets/workload-spiffe-uds',
      'credential-socket': '/var/run/secrets/credential-uds',
      'workload-certs': '/var/run/secrets/workload-spiffe-credentials',
      'istiod-ca-cert': '/var/run/secrets/istio',
      'istio-data': '/var/lib/istio/data',
      'istio-envoy': '/etc/istio/proxy',
      'istio-token': '/var/run/secrets/tokens',
      'istio-podinfo': '/etc/istio/pod',
    });
    const vols = Object.fromEntries(t.spec.volumes.map((v: Any) => [v.name, v]));
    assert.deepEqual(vols['istio-envoy'].emptyDir, { medium: 'Memory' });
    assert.deepEqual(vols['istio-token'].projected.sources[0].serviceAccountToken, { audience: 'istio-ca', expirationSeconds: 43200, path: 'istio-token' });
    assert.deepEqual(vols['istiod-ca-cert'].configMap, { name: 'istio-ca-root-cert' });
    assert.deepEqual(
      vols['istio-podinfo'].downwardAPI.items.map((i: Any) => i.fieldRef.fieldPath),
      ['metadata.labels', 'metadata.annotations'],
    );
  });

  it("sets Istio's labels, Prometheus annotations and the status annotation", () => {
    assert.equal(t.metadata.labels['security.istio.io/tlsMode'], 'istio');
    assert.equal(t.metadata.labels['service.istio.io/canonical-name'], 'httpbin');
    assert.equal(t.metadata.labels['service.istio.io/canonical-revision'], 'latest');
    assert.equal(t.metadata.annotations['prometheus.io/scrape'], 'true');
    assert.equal(t.metadata.annotations['prometheus.io/port'], '15020');
    assert.equal(t.metadata.annotations['prometheus.io/path'], '/stats/prometheus');
    assert.equal(t.metadata.annotations['kubectl.kubernetes.io/default-container'], 'httpbin');
    assert.equal(
      t.metadata.annotations['sidecar.istio.io/status'],
      '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}',
    );
  });

  it('canonical labels come from app.kubernetes.io labels, version, or the workload', () => {
    const a = inject(pod({ labels: { 'app.kubernetes.io/name': 'web', 'app.kubernetes.io/version': '2.1', version: 'v9' } }));
    assert.equal(a.metadata.labels['service.istio.io/canonical-name'], 'web');
    assert.equal(a.metadata.labels['service.istio.io/canonical-revision'], '2.1');
    const b = injectPodTemplate({ metadata: {}, spec: { containers: [{ name: 'c' }] } }, WORKLOAD, settings());
    assert.equal(b.metadata!.labels!['service.istio.io/canonical-name'], 'httpbin');
    const c = inject(pod({ labels: { 'service.istio.io/canonical-name': 'mine' } }));
    assert.equal(c.metadata.labels['service.istio.io/canonical-name'], 'mine');
  });

  it('leaves the input untouched', () => {
    const input = pod();
    const before = JSON.stringify(input);
    inject(input);
    assert.equal(JSON.stringify(input), before);
  });

  it('hub, tag, pull policy and pull secrets come from the settings', () => {
    const s = settings({ hub: 'registry.local/istio', tag: '1.30.0', imagePullPolicy: 'IfNotPresent', imagePullSecrets: ['regcred'] });
    const x = inject(pod(), s);
    assert.equal(container(x, 'istio-proxy').image, 'registry.local/istio/proxyv2:1.30.0');
    assert.equal(container(x, 'istio-init').imagePullPolicy, 'IfNotPresent');
    assert.deepEqual(x.spec.imagePullSecrets, [{ name: 'regcred' }]);
    assert.deepEqual(JSON.parse(x.metadata.annotations['sidecar.istio.io/status']).imagePullSecrets, ['regcred']);
  });
});

describe('annotations honoured', () => {
  it('traffic.sidecar.istio.io/* shape the iptables arguments', () => {
    const t = inject(
      pod({
        annotations: {
          'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/8,172.16.0.0/12',
          'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.96.0.1/32',
          'traffic.sidecar.istio.io/includeInboundPorts': '8080,9090',
          'traffic.sidecar.istio.io/excludeInboundPorts': '7000',
          'traffic.sidecar.istio.io/excludeOutboundPorts': '5432,6379',
          'traffic.sidecar.istio.io/includeOutboundPorts': '443',
        },
      }),
    );
    const args: string[] = container(t, 'istio-init').args;
    const flag = (f: string): string | undefined => args[args.indexOf(f) + 1];
    assert.equal(flag('-i'), '10.0.0.0/8,172.16.0.0/12');
    assert.equal(flag('-x'), '10.96.0.1/32');
    assert.equal(flag('-b'), '8080,9090');
    assert.equal(flag('-d'), '15090,15021,7000,15020');
    assert.equal(flag('-o'), '5432,6379');
    assert.equal(flag('-q'), '443');
  });

  it('refuses a bad traffic annotation, naming it', () => {
    assert.throws(
      () => inject(pod({ annotations: { 'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.0.0.0/33' } })),
      (e: unknown) => e instanceof InjectionError && e.annotation === 'traffic.sidecar.istio.io/excludeOutboundIPRanges' && /10\.0\.0\.0\/33/.test(e.message),
    );
    assert.throws(() => inject(pod({ annotations: { 'traffic.sidecar.istio.io/excludeInboundPorts': 'http' } })), /excludeInboundPorts/);
    assert.throws(() => inject(pod({ annotations: { 'sidecar.istio.io/proxyCPU': 'lots' } })), /sidecar\.istio\.io\/proxyCPU/);
  });

  it('sidecar.istio.io/proxyCPU and friends replace the default resources', () => {
    const t = inject(pod({ annotations: { 'sidecar.istio.io/proxyCPU': '50m', 'sidecar.istio.io/proxyMemory': '64Mi', 'sidecar.istio.io/proxyMemoryLimit': '256Mi' } }));
    assert.deepEqual(container(t, 'istio-proxy').resources, { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '64Mi' } });
    assert.deepEqual(container(t, 'istio-init').resources, { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '64Mi' } });
  });

  it('proxy.istio.io/config is merged into PROXY_CONFIG, and holdApplicationUntilProxyStarts puts the proxy first', () => {
    const s = settings({ proxyConfig: { tracing: { sampling: 1 }, proxyMetadata: { A: '1' } } });
    const t = inject(pod({ annotations: { 'proxy.istio.io/config': 'holdApplicationUntilProxyStarts: true\ntracing:\n  zipkin: {address: "z:9411"}\nproxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}' } }), s);
    const p = container(t, 'istio-proxy');
    assert.deepEqual(JSON.parse(env(p, 'PROXY_CONFIG').value), {
      tracing: { sampling: 1, zipkin: { address: 'z:9411' } },
      proxyMetadata: { A: '1', ISTIO_META_DNS_CAPTURE: 'true' },
      holdApplicationUntilProxyStarts: true,
    });
    assert.equal(t.spec.containers[0].name, 'istio-proxy');
    assert.deepEqual(p.lifecycle, { postStart: { exec: { command: ['pilot-agent', 'wait'] } } });
    assert.equal(env(p, 'ISTIO_META_DNS_CAPTURE').value, 'true');
    assert.equal(env(container(t, 'istio-init'), 'A').value, '1');
    assert.throws(() => inject(pod({ annotations: { 'proxy.istio.io/config': '[1, 2]' } })), /proxy\.istio\.io\/config/);
  });

  it('interception NONE: no istio-init; TPROXY: the proxy keeps NET_ADMIN', () => {
    const none = inject(pod({ annotations: { 'sidecar.istio.io/interceptionMode': 'NONE' } }));
    assert.equal(container(none, 'istio-init'), undefined);
    assert.equal(none.spec.initContainers, undefined);
    assert.equal(env(container(none, 'istio-proxy'), 'ISTIO_META_INTERCEPTION_MODE').value, 'NONE');
    const tp = inject(pod({ annotations: { 'sidecar.istio.io/interceptionMode': 'TPROXY' } }));
    assert.deepEqual(container(tp, 'istio-proxy').securityContext.capabilities.add, ['NET_ADMIN']);
    assert.throws(() => inject(pod({ annotations: { 'sidecar.istio.io/interceptionMode': 'MAGIC' } })), /interceptionMode/);
  });

  it('log levels, readiness timings and the proxy image by annotation', () => {
    const t = inject(
      pod({
        annotations: {
          'sidecar.istio.io/logLevel': 'debug',
          'sidecar.istio.io/agentLogLevel': 'default:debug',
          'readiness.status.sidecar.istio.io/periodSeconds': '5',
          'readiness.status.sidecar.istio.io/initialDelaySeconds': '2',
          'sidecar.istio.io/proxyImage': 'my.registry/proxyv2:custom',
        },
      }),
    );
    const p = container(t, 'istio-proxy');
    assert.ok(p.args.includes('--proxyLogLevel=debug'));
    assert.ok(p.args.includes('--log_output_level=default:debug'));
    assert.equal(p.readinessProbe.periodSeconds, 5);
    assert.equal(p.readinessProbe.initialDelaySeconds, 2);
    assert.equal(p.image, 'my.registry/proxyv2:custom');
    assert.equal(container(t, 'istio-init').image, 'my.registry/proxyv2:custom');
  });

  it("moves the app's Prometheus annotations into ISTIO_PROMETHEUS_ANNOTATIONS", () => {
    const t = inject(pod({ annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090', 'prometheus.io/path': '/metrics' } }));
    assert.equal(env(container(t, 'istio-proxy'), 'ISTIO_PROMETHEUS_ANNOTATIONS').value, '{"scrape":"true","path":"/metrics","port":"9090"}');
    assert.equal(t.metadata.annotations['prometheus.io/port'], '15020');
    const off = inject(pod({ annotations: { 'prometheus.io/scrape': 'false' } }));
    assert.equal(off.metadata.annotations['prometheus.io/scrape'], 'false');
    assert.equal(off.metadata.annotations['prometheus.io/port'], undefined);
    const noMerge = inject(pod({ annotations: { 'prometheus.istio.io/merge-metrics': 'false' } }));
    assert.equal(noMerge.metadata.annotations['prometheus.io/port'], undefined);
  });
});

describe('app probes rewritten through the agent', () => {
  const probed = (annotations: Record<string, string> = {}): Pod =>
    pod({
      annotations,
      spec: {
        containers: [
          {
            name: 'web',
            ports: [{ name: 'http', containerPort: 8080 }],
            readinessProbe: { httpGet: { path: '/ready', port: 'http', scheme: 'HTTPS' }, periodSeconds: 7 },
            livenessProbe: { tcpSocket: { port: 8080 }, timeoutSeconds: 2 },
            startupProbe: { grpc: { port: 9000 } },
          },
          { name: 'worker', readinessProbe: { exec: { command: ['true'] } } },
        ],
      },
    });

  it('rewrites HTTP, TCP and gRPC probes to /app-health/<container>/* on 15020 and hands the originals to the agent', () => {
    const t = inject(probed());
    const web = container(t, 'web');
    assert.deepEqual(web.readinessProbe, { httpGet: { path: '/app-health/web/readyz', port: 15020, scheme: 'HTTP' }, periodSeconds: 7 });
    assert.deepEqual(web.livenessProbe, { httpGet: { path: '/app-health/web/livez', port: 15020 }, timeoutSeconds: 2 });
    assert.deepEqual(web.startupProbe, { httpGet: { path: '/app-health/web/startupz', port: 15020 } });
    assert.deepEqual(container(t, 'worker').readinessProbe, { exec: { command: ['true'] } }, 'exec probes stay');
    assert.equal(
      env(container(t, 'istio-proxy'), 'ISTIO_KUBE_APP_PROBERS').value,
      '{"/app-health/web/livez":{"tcpSocket":{"port":8080},"timeoutSeconds":2},"/app-health/web/readyz":{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTPS"},"timeoutSeconds":1},"/app-health/web/startupz":{"grpc":{"port":9000},"timeoutSeconds":1}}',
    );
    assert.equal(env(container(t, 'istio-proxy'), 'ISTIO_META_APP_CONTAINERS').value, 'web,worker');
  });

  it('leaves probes alone when told to, and probes on ports that are not captured', () => {
    const off = inject(probed({ 'sidecar.istio.io/rewriteAppHTTPProbers': 'false' }));
    assert.equal(container(off, 'web').readinessProbe.httpGet.port, 'http');
    assert.equal(env(container(off, 'istio-proxy'), 'ISTIO_KUBE_APP_PROBERS'), undefined);
    const excluded = inject(probed({ 'traffic.sidecar.istio.io/excludeInboundPorts': '8080' }));
    assert.equal(container(excluded, 'web').readinessProbe.httpGet.port, 'http');
    assert.equal(container(excluded, 'web').startupProbe.httpGet.port, 15020, 'the gRPC port is still captured');
  });
});

describe('native sidecars', () => {
  it('puts istio-proxy in the init containers with restartPolicy Always and a drain on stop', () => {
    const t = inject(pod({ spec: { initContainers: [{ name: 'migrate', image: 'busybox' }] } }), settings({ nativeSidecars: true }));
    assert.deepEqual(
      t.spec.initContainers.map((c: Container) => c.name),
      ['istio-init', 'istio-proxy', 'migrate'],
    );
    assert.deepEqual(
      t.spec.containers.map((c: Container) => c.name),
      ['httpbin'],
    );
    const p = container(t, 'istio-proxy');
    assert.equal(p.restartPolicy, 'Always');
    assert.deepEqual(p.lifecycle.preStop.exec.command, ['pilot-agent', 'request', '--debug-port=15020', 'POST', 'drain']);
    const status = JSON.parse(t.metadata.annotations['sidecar.istio.io/status']);
    assert.deepEqual(status.initContainers, ['istio-init', 'istio-proxy']);
    assert.equal(status.containers, null);
    // The annotation turns it off per pod.
    const off = inject(pod({ annotations: { 'sidecar.istio.io/nativeSidecar': 'false' } }), settings({ nativeSidecars: true }));
    assert.equal(off.spec.containers.at(-1).name, 'istio-proxy');
  });
});

describe('agentless proxy', () => {
  for (const [how, t] of [
    ['by setting', inject(pod(), settings({ mode: 'agentless' }))],
    ['by annotation meshd.io/proxy: envoy', inject(pod({ annotations: { 'meshd.io/proxy': 'envoy' } }))],
  ] as const) {
    it(`a stock Envoy bootstrapped by meshd bootstrap (${how})`, () => {
      assert.deepEqual(
        t.spec.initContainers.map((c: Container) => c.name),
        ['istio-init', 'meshd-bootstrap'],
      );
      const boot = container(t, 'meshd-bootstrap');
      assert.equal(boot.image, 'meshd:dev');
      assert.deepEqual(boot.command, ['/bin/sh', '-c']);
      const script: string = boot.args[0];
      assert.match(script, /node \/app\/dist\/src\/cli\/main\.js bootstrap /);
      for (const f of ['--pod "$POD_NAME"', '--namespace "$POD_NAMESPACE"', '--ip "$INSTANCE_IP"', '--service-account "$SERVICE_ACCOUNT"', '--labels "$labels"', '--token-file /var/run/secrets/tokens/istio-token', '--xds-address istiod.istio-system.svc:15012', '--xds-root-cert /var/run/secrets/istio/root-cert.pem', '--xds-server-name istiod.istio-system.svc']) {
        assert.ok(script.includes(f), `${f} in ${script}`);
      }
      assert.match(script, /> \/etc\/istio\/proxy\/envoy\.yaml\.tmp/);
      assert.deepEqual(
        boot.env.map((e: Any) => e.name),
        ['POD_NAME', 'POD_NAMESPACE', 'INSTANCE_IP', 'SERVICE_ACCOUNT'],
      );
      const envoy = container(t, 'istio-proxy');
      assert.equal(envoy.image, 'envoyproxy/envoy:v1.40.0');
      assert.deepEqual(envoy.command, ['envoy']);
      assert.deepEqual(envoy.args.slice(0, 2), ['-c', '/etc/istio/proxy/envoy.yaml']);
      assert.equal(envoy.readinessProbe.httpGet.port, 15021);
      assert.equal(envoy.env, undefined);
      assert.equal(envoy.securityContext.runAsUser, 1337);
      // No agent to merge metrics: Prometheus scrapes Envoy's own stats port.
      assert.equal(t.metadata.annotations['prometheus.io/port'], '15090');
      assert.equal(t.metadata.annotations['prometheus.io/path'], '/stats/prometheus');
      assert.deepEqual(envoy.ports, [{ containerPort: 15090, protocol: 'TCP', name: 'http-envoy-prom' }]);
      assert.deepEqual(
        t.spec.volumes.map((v: Any) => v.name),
        ['istio-envoy', 'istio-podinfo', 'istio-token', 'istiod-ca-cert'],
      );
      assert.deepEqual(JSON.parse(t.metadata.annotations['sidecar.istio.io/status']), {
        initContainers: ['istio-init', 'meshd-bootstrap'],
        containers: ['istio-proxy'],
        volumes: ['istio-envoy', 'istio-podinfo', 'istio-token', 'istiod-ca-cert'],
        imagePullSecrets: null,
        revision: 'default',
      });
      assert.equal(t.metadata.labels['security.istio.io/tlsMode'], 'istio');
    });
  }

  it("the bootstrap container's script writes a bootstrap with the pod's identity and labels", () => {
    const t = inject(pod(), settings({ mode: 'agentless' }));
    const boot = container(t, 'meshd-bootstrap');
    const dir = mkdtempSync(join(tmpdir(), 'agentless-'));
    try {
      // The volumes' paths, under a temporary directory; meshd's CLI where the image has it.
      const paths: Record<string, string> = { '/etc/istio/pod': 'pod', '/var/run/secrets/tokens': 'tokens', '/var/run/secrets/istio': 'istio', '/etc/istio/proxy': 'proxy' };
      let script: string = boot.args[0].replace('/app/dist/src/cli/main.js', MESHD_CLI);
      for (const [from, to] of Object.entries(paths)) {
        mkdirSync(join(dir, to));
        script = script.replaceAll(from, join(dir, to));
      }
      // As the kubelet writes the downward API's labels file.
      writeFileSync(join(dir, 'pod', 'labels'), 'app="httpbin"\npod-template-hash="5d9f7c"\nsecurity.istio.io/tlsMode="istio"');
      writeFileSync(join(dir, 'tokens', 'istio-token'), 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n');
      writeFileSync(join(dir, 'istio', 'root-cert.pem'), '');
      execFileSync('/bin/sh', ['-c', script], { env: { ...process.env, POD_NAME: 'httpbin-1', POD_NAMESPACE: 'shop', INSTANCE_IP: '10.1.2.3', SERVICE_ACCOUNT: 'httpbin' } });
      const b: Any = parse(readFileSync(join(dir, 'proxy', 'envoy.yaml'), 'utf8'));
      assert.equal(b.node.id, 'sidecar~10.1.2.3~httpbin-1.shop~shop.svc.cluster.local');
      assert.deepEqual(b.node.metadata.LABELS, { app: 'httpbin', 'pod-template-hash': '5d9f7c', 'security.istio.io/tlsMode': 'istio' });
      assert.equal(b.node.metadata.SERVICE_ACCOUNT, 'httpbin');
      assert.equal(b.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
      assert.equal(b.dynamic_resources.ads_config.grpc_services[0].initial_metadata[0].value, 'Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln');
      const xds = b.static_resources.clusters.find((c: Any) => c.name === 'xds-grpc');
      assert.equal(xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, 15012);
      assert.equal(xds.transport_socket.typed_config.sni, 'istiod.istio-system.svc');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves an app's own scrape annotations alone, and adds none when merging is off", () => {
    const own = inject(pod({ annotations: { 'meshd.io/proxy': 'envoy', 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090' } }));
    assert.equal(own.metadata.annotations['prometheus.io/port'], '9090');
    assert.equal(own.metadata.annotations['prometheus.io/path'], undefined);
    const off = inject(pod({ annotations: { 'meshd.io/proxy': 'envoy', 'prometheus.istio.io/merge-metrics': 'false' } }));
    assert.equal(off.metadata.annotations['prometheus.io/scrape'], undefined);
  });

  it('the agent can be asked for per pod when the setting is agentless', () => {
    const t = inject(pod({ annotations: { 'meshd.io/proxy': 'agent' } }), settings({ mode: 'agentless' }));
    assert.deepEqual(container(t, 'istio-proxy').args.slice(0, 2), ['proxy', 'sidecar']);
    assert.throws(() => inject(pod({ annotations: { 'meshd.io/proxy': 'nginx' } })), /meshd\.io\/proxy/);
  });
});

describe('injector settings from the ConfigMap', () => {
  it("has Istio's defaults", () => {
    const s = defaultInjectorSettings();
    assert.equal(s.hub, 'docker.io/istio');
    assert.deepEqual(s.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '1Gi' } });
    assert.equal(s.istioNamespace, 'istio-system');
    assert.equal(s.mode, 'agent');
    assert.equal(s.nativeSidecars, false);
  });

  it("reads Istio's values and config keys and meshd's", () => {
    const s = parseInjectorSettings({
      data: {
        values: JSON.stringify({
          global: { hub: 'gcr.io/istio-release', tag: '1.30.2', imagePullPolicy: 'Always', istioNamespace: 'mesh', meshID: 'm1', multiCluster: { clusterName: 'east' }, proxy: { resources: { requests: { cpu: '200m' } }, statusPort: 15020 } },
          meshConfig: { defaultConfig: { concurrency: 4 } },
          revision: '',
        }),
        config: 'policy: disabled\nneverInjectSelector:\n- matchExpressions:\n  - {key: job, operator: Exists}\ninjectedAnnotations:\n  cluster-autoscaler.kubernetes.io/safe-to-evict: "true"\n',
        meshd: 'mode: agentless\nenvoyImage: envoyproxy/envoy:v1.39.1\nnativeSidecars: true\n',
      },
    });
    assert.equal(s.hub, 'gcr.io/istio-release');
    assert.equal(s.tag, '1.30.2');
    assert.equal(s.imagePullPolicy, 'Always');
    assert.equal(s.istioNamespace, 'mesh');
    assert.equal(s.meshId, 'm1');
    assert.equal(s.clusterId, 'east');
    assert.deepEqual(s.resources, { requests: { cpu: '200m' }, limits: {} });
    assert.deepEqual(s.proxyConfig, { concurrency: 4 });
    assert.equal(s.revision, 'default');
    assert.equal(s.policy, 'disabled');
    assert.equal(s.neverInjectSelector[0]!.matchExpressions![0]!.operator, 'Exists');
    assert.equal(s.mode, 'agentless');
    assert.equal(s.envoyImage, 'envoyproxy/envoy:v1.39.1');
    assert.equal(s.nativeSidecars, true);
    // The istiod address follows the namespace, for CA_ADDR and the agent's discovery address.
    const t = inject(pod({ annotations: { 'meshd.io/proxy': 'agent' } }), s);
    assert.equal(env(container(t, 'istio-proxy'), 'CA_ADDR').value, 'istiod.mesh.svc:15012');
    assert.equal(JSON.parse(env(container(t, 'istio-proxy'), 'PROXY_CONFIG').value).discoveryAddress, 'istiod.mesh.svc:15012');
    assert.equal(t.metadata.annotations['cluster-autoscaler.kubernetes.io/safe-to-evict'], 'true');
  });

  it('a bad value fails naming the key', () => {
    const bad = (data: Record<string, string>, key: RegExp): void => {
      assert.throws(
        () => parseInjectorSettings({ data }),
        (e: unknown) => e instanceof SettingsError && key.test(e.message),
      );
    };
    bad({ values: '{"global":{"proxy":{"statusPort":"abc"}}}' }, /^data\.values: global\.proxy\.statusPort: expected an integer/);
    bad({ values: '{"global":{"hub":["a"]}}' }, /^data\.values: global\.hub: expected a string/);
    bad({ values: '{not json' }, /^data\.values: not valid YAML or JSON/);
    bad({ config: 'policy: sometimes' }, /^data\.config: policy: expected one of enabled, disabled/);
    bad({ config: 'neverInjectSelector:\n- matchExpressions: [{key: a, operator: Maybe}]' }, /neverInjectSelector\[0\]\.matchExpressions\[0\]\.operator/);
    bad({ meshd: 'mode: sidecarless' }, /^data\.meshd: mode: expected one of agent, agentless/);
    bad({ meshd: 'nativeSidecars: maybe' }, /^data\.meshd: nativeSidecars: expected true or false/);
  });
});

describe('webhook and kube-inject agree', () => {
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'httpbin', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'httpbin' } },
      template: {
        metadata: { labels: { app: 'httpbin', version: 'v1' } },
        spec: {
          serviceAccountName: 'httpbin',
          containers: [{ name: 'httpbin', image: 'kennethreitz/httpbin', ports: [{ containerPort: 8080, name: 'http' }], readinessProbe: { httpGet: { path: '/status/200', port: 8080 } } }],
        },
      },
    },
  };

  it("a Deployment's pod through the webhook equals its template through kube-inject", () => {
    const kube: Any = kubeInjectObject(deployment, settings()).object;
    // The pod the ReplicaSet controller creates from the template.
    const created: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: 'httpbin-5d9f7c-',
        namespace: 'shop',
        labels: { ...deployment.spec.template.metadata.labels, 'pod-template-hash': '5d9f7c' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'httpbin-5d9f7c', controller: true }],
      },
      spec: structuredClone(deployment.spec.template.spec),
    };
    assert.deepEqual(workloadOfPod(created, 'shop'), { name: 'httpbin', namespace: 'shop', kind: 'Deployment', apiVersion: 'apps/v1' });
    const r = injectPod(created, { name: 'shop', labels: { 'istio-injection': 'enabled' } }, settings());
    assert.ok(r.injected);
    assert.deepEqual(r.pod.spec, kube.spec.template.spec);
    assert.deepEqual(r.pod.metadata!.annotations, kube.spec.template.metadata.annotations);
    const { 'pod-template-hash': _hash, ...labels } = r.pod.metadata!.labels!;
    assert.deepEqual(labels, kube.spec.template.metadata.labels);

    // The JSON patch the webhook answers with turns the admitted pod into the injected one.
    assert.deepEqual(applyPatch(created, podPatch(created, r.pod)), r.pod);
  });

  it("a CronJob's Job pod is attributed to the CronJob, as kube-inject does", () => {
    const p: Pod = { metadata: { generateName: 'report-29000000-', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'report-29000000', controller: true }] }, spec: {} };
    assert.deepEqual(workloadOfPod(p, 'ops'), { name: 'report', namespace: 'ops', kind: 'CronJob', apiVersion: 'batch/v1' });
    const bare: Pod = { metadata: { name: 'debug' }, spec: {} };
    assert.deepEqual(workloadOfPod(bare, 'ops'), { name: 'debug', namespace: 'ops', kind: 'Pod', apiVersion: 'v1' });
  });

  it('injecting twice is injecting once', () => {
    const once = injectPod(pod(), { name: 'shop', labels: { 'istio-injection': 'enabled' } }, settings());
    const twice = injectPod(once.pod, { name: 'shop', labels: { 'istio-injection': 'enabled' } }, settings());
    assert.equal(twice.injected, false);
    assert.deepEqual(twice.pod, once.pod);
    assert.deepEqual(podPatch(once.pod, twice.pod), []);
  });
});

function applyPatch(doc: Pod, ops: JsonPatchOp[]): Pod {
  const out: Any = structuredClone(doc);
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let cur = out;
    for (const p of parts) cur = cur[p];
    if (op.op === 'remove') Reflect.deleteProperty(cur, last);
    else cur[last] = structuredClone(op.value);
  }
  return out;
}
