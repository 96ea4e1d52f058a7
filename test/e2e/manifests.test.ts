// The install manifests against a real kube-apiserver: every profile applied object by object
// with server-side apply and read back; the Istio CRDs' schemas (versions, pruning, type
// errors, printer columns, PeerAuthentication's CEL rules); the seeds; istiod's RBAC as the API server enforces it; and the
// ingress gateway's bootstrap checked by Envoy.
//
// Profiles are rendered by a small reader of kustomization.yaml (resources and strategic-merge
// patches, which is all the overlays use); when kubectl is installed its `kubectl kustomize`
// output must be the same, and `kubectl apply --server-side --dry-run=server` must accept
// every file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { readObjects, renderKustomization } from '../../src/install/kustomize.js';
import { kubectlBinary } from '../support/kubectl.js';
import { startKube, KubeApiError, MESHD_USER, type KubeCluster } from '../support/kube.js';
import { REPO_ROOT } from '../support/meshd.js';
import { envoyBinaryPath } from '../support/envoy.js';
import { parseMeshObject } from '../../src/model/objects.js';

type Obj = Record<string, unknown>;

const MANIFESTS = join(REPO_ROOT, 'manifests');
const PROFILES = ['minimal', 'default', 'demo'] as const;
type Profile = (typeof PROFILES)[number];
const FIELD_MANAGER = 'meshd-test';
const ISTIO_GROUP = 'networking.istio.io';
const ISTIO_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'];
const SECURITY_GROUP = 'security.istio.io';
const SECURITY_VERSIONS = ['v1', 'v1beta1'];

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Profiles are rendered by meshd's own renderer (src/install/kustomize.ts, what `meshd install`
// applies); `kubectl kustomize` must agree with it.

function meta(o: Obj): { name: string; namespace?: string } {
  const m = o.metadata;
  if (!isObj(m) || typeof m.name !== 'string') throw new Error(`${String(o.kind)} without metadata.name`);
  return { name: m.name, ...(typeof m.namespace === 'string' ? { namespace: m.namespace } : {}) };
}

function keyOf(o: Obj): string {
  const m = meta(o);
  return `${String(o.apiVersion)}/${String(o.kind)}/${m.namespace ?? ''}/${m.name}`;
}

interface Rendered {
  objects: Obj[];
  /** Every file that holds whole objects (not patches), relative to the repo. */
  files: string[];
}

function renderDir(dir: string): Rendered {
  const r = renderKustomization(dir);
  return { objects: r.objects as Obj[], files: r.files.map((f) => relative(REPO_ROOT, f)) };
}

const renderProfile = (p: Profile): Rendered => renderDir(join(MANIFESTS, 'profiles', p));

function byKind(objects: Obj[], kind: string, name: string): Obj | undefined {
  return objects.find((o) => o.kind === kind && meta(o).name === name);
}

/** Every field of `expected` is in `actual` with the same value (lists: same length, item by item). */
function assertSubset(expected: unknown, actual: unknown, path: string): void {
  if (isObj(expected)) {
    assert.ok(isObj(actual), `${path}: expected an object, got ${JSON.stringify(actual)}`);
    for (const [k, v] of Object.entries(expected)) assertSubset(v, actual[k], `${path}.${k}`);
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected a list, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${path}: list length`);
    expected.forEach((v, i) => assertSubset(v, actual[i], `${path}[${i}]`));
  } else {
    assert.deepEqual(actual, expected, `${path}`);
  }
}

/** Reads a nested field, e.g. get(o, 'spec', 'template', 'spec', 'containers', 0). */
function get(o: unknown, ...path: (string | number)[]): unknown {
  let cur: unknown = o;
  for (const p of path) {
    if (typeof p === 'number') cur = Array.isArray(cur) ? cur[p] : undefined;
    else cur = isObj(cur) ? cur[p] : undefined;
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// Files that need no cluster

describe('manifests: files', () => {
  it('generated files are up to date with their generators', () => {
    for (const tool of ['gen-crds.mjs', 'gen-gateway-bootstrap.mjs']) {
      const r = spawnSync(process.execPath, [join(MANIFESTS, 'tools', tool), '--check'], { encoding: 'utf8', cwd: REPO_ROOT });
      assert.equal(r.status, 0, `${tool} --check: ${r.stderr}${r.stdout}`);
    }
  });

  it('profiles: minimal = CRDs + control plane, default adds 2 replicas, the PDB and the ingress gateway, demo the egress gateway and access logs', () => {
    const r = Object.fromEntries(PROFILES.map((p) => [p, renderProfile(p).objects])) as Record<Profile, Obj[]>;
    const kinds = (objs: Obj[]) => objs.map((o) => `${String(o.kind)}/${meta(o).name}`).sort();
    const gateway = (name: string) => [`ConfigMap/${name}-bootstrap`, `Deployment/${name}`, `Service/${name}`, `ServiceAccount/${name}`];
    assert.deepEqual(kinds(r.minimal), [
      'ClusterRole/istiod',
      'ClusterRoleBinding/istiod',
      'ConfigMap/istio',
      'ConfigMap/istio-sidecar-injector',
      'CustomResourceDefinition/authorizationpolicies.security.istio.io',
      'CustomResourceDefinition/destinationrules.networking.istio.io',
      'CustomResourceDefinition/gateways.networking.istio.io',
      'CustomResourceDefinition/peerauthentications.security.istio.io',
      'CustomResourceDefinition/requestauthentications.security.istio.io',
      'CustomResourceDefinition/serviceentries.networking.istio.io',
      'CustomResourceDefinition/sidecars.networking.istio.io',
      'CustomResourceDefinition/telemetries.telemetry.istio.io',
      'CustomResourceDefinition/virtualservices.networking.istio.io',
      'CustomResourceDefinition/workloadentries.networking.istio.io',
      'Deployment/istiod',
      'MutatingWebhookConfiguration/istio-sidecar-injector',
      'Namespace/istio-system',
      'Role/istiod',
      'RoleBinding/istiod',
      'Service/istiod',
      'ServiceAccount/istiod',
      'ValidatingWebhookConfiguration/istio-validator-istio-system',
    ]);
    assert.deepEqual(kinds(r.default), [...kinds(r.minimal), 'PodDisruptionBudget/istiod', ...gateway('istio-ingressgateway')].sort());
    assert.deepEqual(kinds(r.demo), [...kinds(r.default), ...gateway('istio-egressgateway')].sort());
    assert.equal(get(byKind(r.minimal, 'Deployment', 'istiod'), 'spec', 'replicas'), 1);
    assert.equal(get(byKind(r.default, 'Deployment', 'istiod'), 'spec', 'replicas'), 2);
    assert.equal(get(byKind(r.demo, 'Deployment', 'istiod'), 'spec', 'replicas'), 2);
    // The patch adds to the pod spec; it does not replace it.
    assert.equal(get(byKind(r.default, 'Deployment', 'istiod'), 'spec', 'template', 'spec', 'containers', 0, 'image'), 'meshd:dev');

    // The mesh config: Istio's defaults, and the demo profile differs only by access logs on stdout.
    const mesh = (p: Profile) => parseYaml(get(byKind(r[p], 'ConfigMap', 'istio'), 'data', 'mesh') as string) as Obj;
    assert.deepEqual(mesh('minimal'), {
      accessLogFile: '',
      defaultConfig: { discoveryAddress: 'istiod.istio-system.svc:15012' },
      enableAutoMtls: true,
      outboundTrafficPolicy: { mode: 'ALLOW_ANY' },
      rootNamespace: 'istio-system',
      trustDomain: 'cluster.local',
    });
    assert.deepEqual(mesh('default'), mesh('minimal'));
    assert.deepEqual(mesh('demo'), { ...mesh('minimal'), accessLogFile: '/dev/stdout' });

    // The egress gateway: Istio's names, labels and ports, a ClusterIP Service, and the ingress gateway's pod spec.
    const egress = byKind(r.demo, 'Deployment', 'istio-egressgateway')!;
    const ingress = byKind(r.demo, 'Deployment', 'istio-ingressgateway')!;
    assert.deepEqual(get(egress, 'spec', 'selector', 'matchLabels'), { app: 'istio-egressgateway', istio: 'egressgateway' });
    assert.deepEqual(JSON.parse(JSON.stringify(get(egress, 'spec', 'template', 'spec')).replaceAll('egressgateway', 'ingressgateway')), get(ingress, 'spec', 'template', 'spec'));
    const esvc = byKind(r.demo, 'Service', 'istio-egressgateway')!;
    assert.equal(get(esvc, 'spec', 'type'), 'ClusterIP');
    assert.deepEqual(
      (get(esvc, 'spec', 'ports') as Obj[]).map((x) => [x.name, x.port, x.targetPort]),
      [
        ['http2', 80, 8080],
        ['https', 443, 8443],
      ],
    );
    const ebootstrap = parseYaml(get(byKind(r.demo, 'ConfigMap', 'istio-egressgateway-bootstrap'), 'data', 'envoy.yaml.tmpl') as string) as Obj;
    assert.deepEqual(get(ebootstrap, 'node', 'metadata', 'LABELS'), { app: 'istio-egressgateway', istio: 'egressgateway' });
    assert.equal(get(ebootstrap, 'node', 'metadata', 'SERVICE_ACCOUNT'), 'istio-egressgateway');
  });

  it('kubectl kustomize renders each profile exactly as meshd does, in the same order', () => {
    const kubectl = kubectlBinary();
    for (const p of PROFILES) {
      const out = execFileSync(kubectl, ['kustomize', join(MANIFESTS, 'profiles', p)], { encoding: 'utf8' });
      const theirs = parseAllDocuments(out).map((d) => d.toJS() as Obj);
      assert.deepEqual(renderProfile(p).objects, theirs, `profile ${p}`);
    }
  });

  for (const gw of ['ingress', 'egress'] as const) {
    it(`the ${gw} gateway's start command fills in the pod's IP and name, and Envoy accepts the bootstrap`, async () => {
      const demo = renderProfile('demo').objects;
      const deploy = byKind(demo, 'Deployment', `istio-${gw}gateway`)!;
      const container = get(deploy, 'spec', 'template', 'spec', 'containers', 0) as Obj;
      assert.deepEqual(container.command, ['/bin/sh', '-c']);
      const script = (container.args as string[])[0]!;
      const cm = byKind(demo, 'ConfigMap', `istio-${gw}gateway-bootstrap`)!;
      const template = get(cm, 'data', 'envoy.yaml.tmpl') as string;

      const dir = mkdtempSync(join(tmpdir(), 'meshd-gw-'));
      try {
        for (const d of ['bootstrap', 'proxy', 'bin']) mkdirSync(join(dir, d));
        writeFileSync(join(dir, 'bootstrap', 'envoy.yaml.tmpl'), template);
        // `envoy` on PATH validates instead of serving.
        writeFileSync(join(dir, 'bin', 'envoy'), `#!/bin/sh\nexec '${envoyBinaryPath()}' --mode validate "$@"\n`);
        chmodSync(join(dir, 'bin', 'envoy'), 0o755);
        assert.ok(script.includes('/etc/meshd/bootstrap/') && script.includes('/etc/istio/proxy/'), script);
        const local = script.replaceAll('/etc/meshd/bootstrap/', `${dir}/bootstrap/`).replaceAll('/etc/istio/proxy/', `${dir}/proxy/`);
        const r = spawnSync('/bin/sh', ['-c', local], {
          encoding: 'utf8',
          env: { PATH: `${dir}/bin:${process.env.PATH ?? ''}`, POD_IP: '10.244.1.7', POD_NAME: `istio-${gw}gateway-5c9d8f-x2v4q` },
          timeout: 60_000,
        });
        assert.equal(r.status, 0, `the gateway command failed:\n${r.stdout}\n${r.stderr}`);
        const bootstrap = parseYaml(readFileSync(join(dir, 'proxy', 'envoy.yaml'), 'utf8')) as Obj;
        assert.equal(get(bootstrap, 'node', 'id'), `router~10.244.1.7~istio-${gw}gateway-5c9d8f-x2v4q.istio-system~istio-system.svc.cluster.local`);
        assert.equal(get(bootstrap, 'node', 'metadata', 'INSTANCE_IPS'), '10.244.1.7');
        assert.equal(get(bootstrap, 'node', 'metadata', 'NAME'), `istio-${gw}gateway-5c9d8f-x2v4q`);
        assert.deepEqual(get(bootstrap, 'node', 'metadata', 'LABELS'), { app: `istio-${gw}gateway`, istio: `${gw}gateway` });
        assert.equal(
          get(bootstrap, 'static_resources', 'clusters', 0, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'address'),
          'istiod.istio-system.svc',
        );
        assert.ok(!readFileSync(join(dir, 'proxy', 'envoy.yaml'), 'utf8').includes('__POD_'), 'every placeholder is filled in');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Against kube-apiserver

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
}

/** Maps apiVersion + kind to the REST path of an object, from the server's discovery. */
class Paths {
  private readonly cache = new Map<string, ApiResource[]>();
  constructor(private readonly kube: KubeCluster) {}

  async resources(apiVersion: string, refresh = false): Promise<ApiResource[]> {
    if (refresh || !this.cache.has(apiVersion)) {
      const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const list = await this.kube.request<{ resources: ApiResource[] }>('GET', base);
      this.cache.set(apiVersion, list.resources.filter((r) => !r.name.includes('/')));
    }
    return this.cache.get(apiVersion)!;
  }

  async collection(apiVersion: string, kind: string, namespace?: string): Promise<string> {
    let r = (await this.resources(apiVersion)).find((x) => x.kind === kind);
    if (r === undefined) r = (await this.resources(apiVersion, true)).find((x) => x.kind === kind);
    if (r === undefined) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    return r.namespaced ? `${base}/namespaces/${namespace ?? 'default'}/${r.name}` : `${base}/${r.name}`;
  }

  async of(o: Obj): Promise<string> {
    const m = meta(o);
    return `${await this.collection(String(o.apiVersion), String(o.kind), m.namespace)}/${m.name}`;
  }
}

/** Apply order: definitions and namespaces before what lives in them. */
const KIND_ORDER = ['CustomResourceDefinition', 'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ConfigMap', 'Secret', 'Service', 'Deployment', 'PodDisruptionBudget'];
const kindRank = (o: Obj) => {
  const i = KIND_ORDER.indexOf(String(o.kind));
  return i < 0 ? KIND_ORDER.length : i;
};

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof KubeApiError) return err.status;
    throw err;
  }
}

/** GET with an Accept header of our own (the fixture always asks for JSON). */
function getWithAccept(kube: KubeCluster, path: string, accept: string): Promise<Obj> {
  return new Promise((resolveP, reject) => {
    const req = https.request(new URL(path, kube.server), { ca: kube.caPem, headers: { authorization: `Bearer ${kube.adminToken}`, accept } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${text}`));
        else resolveP(JSON.parse(text) as Obj);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const NS = 'default';

// Every field the CRDs must keep, exercised once: sent through one version, read through the others.
const fullGateway: Obj = {
  apiVersion: `${ISTIO_GROUP}/v1`,
  kind: 'Gateway',
  metadata: { name: 'full-gateway', namespace: NS },
  spec: {
    selector: { istio: 'ingressgateway' },
    servers: [
      {
        port: { number: 443, name: 'https', protocol: 'HTTPS', targetPort: 8443 },
        hosts: ['bookinfo/reviews.example.com', '*.example.com'],
        bind: '0.0.0.0',
        defaultEndpoint: '127.0.0.1:8080',
        name: 'https-main',
        tls: {
          httpsRedirect: false,
          mode: 'MUTUAL',
          serverCertificate: '/etc/certs/server.pem',
          privateKey: '/etc/certs/key.pem',
          caCertificates: '/etc/certs/ca.pem',
          credentialName: 'main-cert',
          subjectAltNames: ['spiffe://cluster.local/ns/default/sa/client'],
          minProtocolVersion: 'TLSV1_2',
          maxProtocolVersion: 'TLSV1_3',
          cipherSuites: ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384'],
        },
      },
      { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'], tls: { httpsRedirect: true } },
    ],
  },
};

const dest = (host: string, subset?: string, port?: number): Obj => ({ host, ...(subset ? { subset } : {}), ...(port ? { port: { number: port } } : {}) });

const fullVirtualService: Obj = {
  apiVersion: `${ISTIO_GROUP}/v1alpha3`,
  kind: 'VirtualService',
  metadata: { name: 'full-vs', namespace: NS },
  spec: {
    hosts: ['reviews', 'reviews.example.com'],
    gateways: ['mesh', 'istio-system/ingress'],
    exportTo: ['.', 'istio-system'],
    http: [
      {
        name: 'canary',
        match: [
          {
            name: 'jason',
            uri: { prefix: '/api' },
            scheme: { exact: 'https' },
            method: { exact: 'GET' },
            authority: { regex: '.*\\.example\\.com' },
            headers: { 'end-user': { exact: 'jason' } },
            withoutHeaders: { 'x-skip': { exact: '1' } },
            queryParams: { v: { exact: '2' } },
            port: 9080,
            sourceLabels: { app: 'productpage' },
            gateways: ['mesh'],
            sourceNamespace: 'default',
            ignoreUriCase: true,
          },
        ],
        route: [
          {
            destination: dest('reviews', 'v2', 9080),
            weight: 80,
            headers: { request: { set: { 'x-a': '1' }, add: { 'x-b': '2' }, remove: ['x-c'] }, response: { set: { 'x-d': '4' } } },
          },
          { destination: dest('reviews', 'v1'), weight: 20 },
        ],
        rewrite: { uri: '/v2', authority: 'reviews.internal' },
        timeout: '10s',
        retries: { attempts: 3, perTryTimeout: '2s', retryOn: '5xx,connect-failure,refused-stream', retryRemoteLocalities: true },
        fault: { delay: { fixedDelay: '5s', percentage: { value: 0.1 } }, abort: { httpStatus: 503, percentage: { value: 1.5 } } },
        mirror: dest('reviews-shadow', 'v1', 9080),
        mirrorPercentage: { value: 50 },
        corsPolicy: {
          allowOrigins: [{ exact: 'https://a.example.com' }, { regex: 'https://.*\\.b\\.example\\.com' }],
          allowMethods: ['GET', 'POST'],
          allowHeaders: ['x-a'],
          exposeHeaders: ['x-b'],
          maxAge: '24h',
          allowCredentials: false,
        },
        headers: { request: { set: { 'x-route': 'canary' } }, response: { remove: ['server'] } },
      },
      { name: 'moved', match: [{ uri: { exact: '/old' } }], redirect: { uri: '/new', authority: 'new.example.com', port: 8443, scheme: 'https', redirectCode: 308 } },
      { name: 'same-port', match: [{ uri: { prefix: '/d' } }], redirect: { uri: '/x', derivePort: 'FROM_REQUEST_PORT' } },
      { name: 'teapot', match: [{ uri: { exact: '/tea' } }], directResponse: { status: 418, body: { string: 'teapot' } } },
      { name: 'bytes', match: [{ uri: { exact: '/bytes' } }], directResponse: { status: 200, body: { bytes: 'aGVsbG8=' } } },
      {
        name: 'regex-rewrite',
        rewrite: { uriRegexRewrite: { match: '^/a/(.*)', rewrite: '/b/\\1' } },
        route: [{ destination: dest('reviews') }],
        mirrors: [{ destination: dest('m1'), percentage: { value: 10 } }, { destination: dest('m2', 'v1', 80) }],
        fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } },
      },
    ],
    tcp: [
      {
        match: [{ destinationSubnets: ['10.0.0.0/8'], port: 3306, sourceLabels: { app: 'db-client' }, gateways: ['mesh'] }],
        route: [{ destination: dest('mysql', undefined, 3306), weight: 100 }],
      },
    ],
    tls: [
      {
        match: [{ sniHosts: ['login.example.com'], destinationSubnets: ['10.1.0.0/16'], port: 443, sourceLabels: { app: 'web' }, gateways: ['mesh'] }],
        route: [{ destination: dest('login', undefined, 443) }],
      },
    ],
  },
};

const policies: Obj = {
  loadBalancer: { simple: 'LEAST_REQUEST', localityLbSetting: { enabled: true, distribute: [{ from: 'us-west/zone1/*', to: { 'us-west/zone1/*': 80, 'us-west/zone2/*': 20 } }] } },
  connectionPool: {
    tcp: { maxConnections: 100, connectTimeout: '30ms', tcpKeepalive: { probes: 3, time: '7200s', interval: '75s' } },
    http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 1, maxRetries: 3, idleTimeout: '1h', h2UpgradePolicy: 'UPGRADE', useClientProtocol: false },
  },
  outlierDetection: {
    consecutiveErrors: 7,
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 3,
    interval: '5m',
    baseEjectionTime: '15m',
    maxEjectionPercent: 100,
    minHealthPercent: 50,
    splitExternalLocalOriginErrors: true,
  },
  tls: {
    mode: 'MUTUAL',
    clientCertificate: '/etc/certs/client.pem',
    privateKey: '/etc/certs/key.pem',
    caCertificates: '/etc/certs/ca.pem',
    credentialName: 'reviews-client',
    subjectAltNames: ['reviews.default.svc'],
    sni: 'reviews.example.com',
    insecureSkipVerify: false,
  },
};

const fullDestinationRule: Obj = {
  apiVersion: `${ISTIO_GROUP}/v1beta1`,
  kind: 'DestinationRule',
  metadata: { name: 'full-dr', namespace: NS },
  spec: {
    host: 'reviews.default.svc.cluster.local',
    exportTo: ['*'],
    workloadSelector: { matchLabels: { app: 'productpage' } },
    trafficPolicy: {
      ...policies,
      portLevelSettings: [
        {
          port: { number: 9080 },
          ...policies,
          loadBalancer: { consistentHash: { httpCookie: { name: 'user', path: '/', ttl: '0s' }, minimumRingSize: 1024 } },
          tls: { mode: 'SIMPLE', credentialName: 'reviews-cred' },
        },
      ],
    },
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } },
      { name: 'v3', labels: { version: 'v3' }, trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } }, tls: { mode: 'ISTIO_MUTUAL' } } },
      { name: 'v4', labels: { version: 'v4' }, trafficPolicy: { loadBalancer: { consistentHash: { httpQueryParameterName: 'session', minimumRingSize: '2048' } } } },
    ],
  },
};

const fullPeerAuthentication: Obj = {
  apiVersion: `${SECURITY_GROUP}/v1beta1`,
  kind: 'PeerAuthentication',
  metadata: { name: 'full-pa', namespace: NS },
  spec: {
    selector: { matchLabels: { app: 'reviews', 'app.kubernetes.io/version': 'v2' } },
    mtls: { mode: 'STRICT' },
    portLevelMtls: { '8080': { mode: 'DISABLE' }, '9090': { mode: 'PERMISSIVE' }, '15000': { mode: 'UNSET' }, '65535': {} },
  },
};

const fullRequestAuthentication: Obj = {
  apiVersion: `${SECURITY_GROUP}/v1beta1`,
  kind: 'RequestAuthentication',
  metadata: { name: 'full-ra', namespace: NS },
  spec: {
    selector: { matchLabels: { app: 'httpbin' } },
    jwtRules: [
      {
        issuer: 'https://issuer.example.com',
        audiences: ['httpbin', 'api.example.com'],
        jwksUri: 'https://issuer.example.com/.well-known/jwks.json',
        fromHeaders: [{ name: 'x-jwt-assertion' }, { name: 'authorization', prefix: 'Bearer ' }],
        fromParams: ['token'],
        fromCookies: ['session'],
        outputPayloadToHeader: 'x-jwt-payload',
        forwardOriginalToken: true,
        outputClaimToHeaders: [{ header: 'x-jwt-sub', claim: 'sub' }],
        timeout: '3s',
      },
      { issuer: 'inline@example.com', jwks: '{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}' },
    ],
  },
};

const fullAuthorizationPolicy: Obj = {
  apiVersion: `${SECURITY_GROUP}/v1beta1`,
  kind: 'AuthorizationPolicy',
  metadata: { name: 'full-ap', namespace: NS },
  spec: {
    selector: { matchLabels: { app: 'httpbin' } },
    action: 'ALLOW',
    rules: [
      {
        from: [
          {
            source: {
              principals: ['cluster.local/ns/foo/sa/sleep'],
              notPrincipals: ['*/sa/blocked'],
              requestPrincipals: ['https://issuer.example.com/alice'],
              notRequestPrincipals: ['*'],
              namespaces: ['foo'],
              notNamespaces: ['bar'],
              serviceAccounts: ['foo/sleep'],
              notServiceAccounts: ['robot'],
              ipBlocks: ['10.0.0.0/8'],
              notIpBlocks: ['10.9.0.1'],
              remoteIpBlocks: ['203.0.113.0/24'],
              notRemoteIpBlocks: ['203.0.113.9'],
            },
          },
        ],
        to: [{ operation: { hosts: ['*.example.com'], notHosts: ['admin.example.com'], ports: ['8080'], notPorts: ['9090'], methods: ['GET'], notMethods: ['POST'], paths: ['/headers'], notPaths: ['/admin/*'] } }],
        when: [{ key: 'request.headers[x-tenant]', values: ['acme'], notValues: ['blocked'] }],
      },
      {},
    ],
  },
};

describe('manifests: applied to kube-apiserver', { timeout: 600_000 }, () => {
  let kube: KubeCluster;
  let paths: Paths;
  const as = (token: 'admin' | 'meshd') => (token === 'admin' ? kube.adminToken : kube.meshdToken);

  before(async () => {
    kube = await startKube();
    paths = new Paths(kube);
  });

  after(async () => {
    await kube?.stop();
  });

  async function waitEstablished(name: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const crd = await kube.request<Obj>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
      const conds = (get(crd, 'status', 'conditions') ?? []) as { type: string; status: string }[];
      if (conds.some((c) => c.type === 'Established' && c.status === 'True')) return;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after 60 s: ${JSON.stringify(conds)}`);
      await sleep(100);
    }
  }

  /** Waits until every version of a CRD serves `plural` (discovery catches up after Established). */
  async function waitServed(crd: Obj): Promise<void> {
    const deadline = Date.now() + 60_000;
    const group = String(get(crd, 'spec', 'group'));
    const plural = String(get(crd, 'spec', 'names', 'plural'));
    for (const v of (get(crd, 'spec', 'versions') as Obj[]).map((x) => String(x.name))) {
      for (;;) {
        const r = await kube.requestRaw('GET', `/apis/${group}/${v}/${plural}`);
        if (r.status === 200) break;
        if (Date.now() > deadline) throw new Error(`${plural} not served at ${v} after 60 s: HTTP ${r.status}`);
        await sleep(100);
      }
    }
  }

  /** Server-side applies every object of a profile, one at a time, CRDs first; returns what was applied and read back. */
  async function applyProfile(p: Profile): Promise<{ objects: Obj[]; live: Map<string, Obj> }> {
    const objects = [...renderProfile(p).objects].sort((a, b) => kindRank(a) - kindRank(b));
    const live = new Map<string, Obj>();
    for (const o of objects) {
      const path = await paths.of(o);
      const u = `${path}?fieldManager=${FIELD_MANAGER}&force=true`;
      await kube.request('PATCH', u, stringifyYaml(o), kube.adminToken, { contentType: 'application/apply-patch+yaml' });
      if (o.kind === 'CustomResourceDefinition') {
        await waitEstablished(meta(o).name);
        await waitServed(o);
      }
    }
    for (const o of objects) live.set(keyOf(o), await kube.request<Obj>('GET', await paths.of(o)));
    return { objects, live };
  }

  it('before the manifests, the meshd identity may not read the cluster', async () => {
    assert.equal(await status(kube.request('GET', '/api/v1/services', undefined, kube.meshdToken)), 403);
  });

  for (const profile of PROFILES) {
    it(`profile ${profile}: every object applies server-side and reads back with every field`, async () => {
      const { objects, live } = await applyProfile(profile);
      for (const o of objects) {
        const got = live.get(keyOf(o))!;
        assertSubset(o, got, keyOf(o));
        const managers = ((get(got, 'metadata', 'managedFields') ?? []) as { manager: string; operation: string }[]).filter((m) => m.operation === 'Apply');
        assert.ok(managers.some((m) => m.manager === FIELD_MANAGER), `${keyOf(o)} is managed by ${FIELD_MANAGER}`);
      }

      const istiod = live.get('apps/v1/Deployment/istio-system/istiod')!;
      assert.equal(get(istiod, 'spec', 'replicas'), profile === 'minimal' ? 1 : 2);
      const pod = get(istiod, 'spec', 'template', 'spec') as Obj;
      assert.equal(pod.serviceAccountName, 'istiod');
      const c = get(pod, 'containers', 0) as Obj;
      assert.equal(c.image, 'meshd:dev');
      assert.equal(c.args, undefined, 'the image ENTRYPOINT runs `serve`; no args');
      assert.deepEqual(c.env, [
        { name: 'MESHD_GRPC_ADDR', value: ':15010' },
        { name: 'MESHD_MONITORING_ADDR', value: ':15014' },
      ]);
      assert.deepEqual(
        (c.ports as Obj[]).map((x) => [x.name, x.containerPort]),
        [
          ['grpc-xds', 15010],
          ['https-dns', 15012],
          ['http-monitoring', 15014],
          ['https-webhook', 15017],
        ],
      );
      assert.deepEqual(get(c, 'readinessProbe', 'httpGet'), { path: '/ready', port: 15014, scheme: 'HTTP' });
      assert.deepEqual(get(c, 'livenessProbe', 'httpGet'), { path: '/ready', port: 15014, scheme: 'HTTP' });
      assert.ok((get(c, 'livenessProbe', 'initialDelaySeconds') as number) >= 30, 'liveness waits long enough for the first sync');
      assert.deepEqual(c.resources, { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } });
      const sc = c.securityContext as Obj;
      assert.equal(sc.runAsNonRoot, true);
      assert.equal(sc.runAsUser, 1337);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.deepEqual(get(sc, 'capabilities', 'drop'), ['ALL']);
      assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' });

      const svc = live.get('v1/Service/istio-system/istiod')!;
      assert.deepEqual(get(svc, 'spec', 'selector'), { app: 'istiod' });
      assert.deepEqual(
        (get(svc, 'spec', 'ports') as Obj[]).map((x) => [x.name, x.port, x.targetPort]),
        [
          ['grpc-xds', 15010, 15010],
          ['https-dns', 15012, 15012],
          ['http-monitoring', 15014, 15014],
          ['https-webhook', 443, 15017],
        ],
      );

      const pdb = await kube.requestRaw('GET', '/apis/policy/v1/namespaces/istio-system/poddisruptionbudgets/istiod');
      if (profile === 'minimal') assert.equal(pdb.status, 404, 'minimal has no PDB');
      else assert.equal(get(JSON.parse(pdb.text), 'spec', 'maxUnavailable'), 1);

      if (profile !== 'minimal') {
        const gw = live.get('apps/v1/Deployment/istio-system/istio-ingressgateway')!;
        assert.deepEqual(get(gw, 'spec', 'selector', 'matchLabels'), { app: 'istio-ingressgateway', istio: 'ingressgateway' });
        assert.equal(get(gw, 'spec', 'template', 'spec', 'containers', 0, 'image'), 'envoyproxy/envoy:v1.40.0');
        const gsvc = live.get('v1/Service/istio-system/istio-ingressgateway')!;
        assert.equal(get(gsvc, 'spec', 'type'), 'LoadBalancer');
        assert.deepEqual(
          (get(gsvc, 'spec', 'ports') as Obj[]).map((x) => [x.name, x.port, x.targetPort]),
          [
            ['status-port', 15021, 15021],
            ['http2', 80, 8080],
            ['https', 443, 8443],
          ],
        );
        assert.ok(typeof get(gsvc, 'spec', 'clusterIP') === 'string', 'the Service got a cluster IP');
      } else {
        const gw = await kube.requestRaw('GET', '/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway');
        assert.equal(gw.status, 404, `${profile} has no ingress gateway`);
      }
      if (profile === 'demo') {
        const egw = live.get('apps/v1/Deployment/istio-system/istio-egressgateway')!;
        assert.equal(get(egw, 'spec', 'template', 'spec', 'containers', 0, 'image'), 'envoyproxy/envoy:v1.40.0');
        assert.equal(get(live.get('v1/Service/istio-system/istio-egressgateway'), 'spec', 'type'), 'ClusterIP');
      } else {
        const egw = await kube.requestRaw('GET', '/apis/apps/v1/namespaces/istio-system/deployments/istio-egressgateway');
        assert.equal(egw.status, 404, `${profile} has no egress gateway`);
      }
    });
  }

  it('applying the demo profile again changes nothing', async () => {
    const objects = renderProfile('demo').objects;
    const versions = new Map<string, string>();
    for (const o of objects) versions.set(keyOf(o), String(get(await kube.request<Obj>('GET', await paths.of(o)), 'metadata', 'resourceVersion')));
    for (const o of objects) {
      const after = await kube.apply<Obj>(await paths.of(o), stringifyYaml(o), { fieldManager: FIELD_MANAGER });
      assert.equal(get(after, 'metadata', 'resourceVersion'), versions.get(keyOf(o)), `${keyOf(o)} unchanged`);
    }
  });

  it('CRDs: served at v1 (storage), v1beta1 and v1alpha3, with short names, categories and printer columns', async () => {
    const expect = { gateways: 'gw', virtualservices: 'vs', destinationrules: 'dr' };
    for (const [plural, short] of Object.entries(expect)) {
      const crd = await kube.request<Obj>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.${ISTIO_GROUP}`);
      assert.equal(get(crd, 'spec', 'scope'), 'Namespaced');
      const versions = get(crd, 'spec', 'versions') as Obj[];
      assert.deepEqual(
        versions.map((v) => [v.name, v.served, v.storage]),
        [
          ['v1', true, true],
          ['v1beta1', true, false],
          ['v1alpha3', true, false],
        ],
      );
      const schemas = versions.map((v) => JSON.stringify(get(v, 'schema', 'openAPIV3Schema')));
      assert.ok(schemas.every((s) => s === schemas[0]), `${plural}: one schema for every version`);
      for (const v of versions) {
        assert.equal(get(v, 'schema', 'openAPIV3Schema', 'properties', 'spec', 'x-kubernetes-preserve-unknown-fields'), undefined);
        assert.equal(get(v, 'schema', 'openAPIV3Schema', 'properties', 'status', 'x-kubernetes-preserve-unknown-fields'), true);
        assert.deepEqual(get(v, 'subresources'), { status: {} });
      }
      const conds = (get(crd, 'status', 'conditions') ?? []) as { type: string; status: string; message?: string }[];
      assert.ok(!conds.some((c) => c.type === 'NonStructuralSchema'), `${plural}: structural schema`);
      for (const v of ISTIO_VERSIONS) {
        const r = (await paths.resources(`${ISTIO_GROUP}/${v}`, true)).find((x) => x.name === plural);
        assert.deepEqual(r?.shortNames, [short], `${plural} at ${v}`);
      }
    }
    // `kubectl get vs` columns, as the server computes them.
    await kube.apply(`/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices/columns`, {
      apiVersion: `${ISTIO_GROUP}/v1`,
      kind: 'VirtualService',
      metadata: { name: 'columns', namespace: NS },
      spec: { hosts: ['a.example.com'], gateways: ['gw-a'] },
    });
    await kube.apply(`/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/destinationrules/columns`, {
      apiVersion: `${ISTIO_GROUP}/v1`,
      kind: 'DestinationRule',
      metadata: { name: 'columns', namespace: NS },
      spec: { host: 'a.default.svc.cluster.local' },
    });
    const table = (path: string) => getWithAccept(kube, path, 'application/json;as=Table;v=v1;g=meta.k8s.io');
    const vsTable = await table(`/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices/columns`);
    assert.deepEqual((vsTable.columnDefinitions as Obj[]).map((c) => c.name), ['Name', 'Gateways', 'Hosts', 'Age']);
    // List columns are printed as JSON text, as `kubectl get vs` shows them.
    assert.equal(get(vsTable, 'rows', 0, 'cells', 1), '["gw-a"]');
    assert.equal(get(vsTable, 'rows', 0, 'cells', 2), '["a.example.com"]');
    const drTable = await table(`/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/destinationrules/columns`);
    assert.deepEqual((drTable.columnDefinitions as Obj[]).map((c) => c.name), ['Name', 'Host', 'Age']);
    assert.equal(get(drTable, 'rows', 0, 'cells', 1), 'a.default.svc.cluster.local');
  });

  it('a VirtualService created through v1alpha3 reads back through v1 and v1beta1 with every field', async () => {
    const created = await kube.request<Obj>('POST', `/apis/${ISTIO_GROUP}/v1alpha3/namespaces/${NS}/virtualservices?fieldValidation=Strict`, fullVirtualService);
    assert.deepEqual(created.spec, fullVirtualService.spec);
    for (const v of ISTIO_VERSIONS) {
      const got = await kube.request<Obj>('GET', `/apis/${ISTIO_GROUP}/${v}/namespaces/${NS}/virtualservices/full-vs`);
      assert.equal(got.apiVersion, `${ISTIO_GROUP}/${v}`);
      assert.deepEqual(got.spec, fullVirtualService.spec, `read through ${v}`);
    }
  });

  it('a Gateway (v1) and a DestinationRule (v1beta1) with every field read back through every version', async () => {
    for (const [o, plural] of [
      [fullGateway, 'gateways'],
      [fullDestinationRule, 'destinationrules'],
    ] as const) {
      const v = String(o.apiVersion).split('/')[1]!;
      await kube.request('POST', `/apis/${ISTIO_GROUP}/${v}/namespaces/${NS}/${plural}?fieldValidation=Strict`, o);
      for (const rv of ISTIO_VERSIONS) {
        const got = await kube.request<Obj>('GET', `/apis/${ISTIO_GROUP}/${rv}/namespaces/${NS}/${plural}/${meta(o).name}`);
        assert.deepEqual(got.spec, o.spec, `${plural} read through ${rv}`);
      }
    }
  });

  it('PeerAuthentication CRD: served at v1 (preferred, storage) and v1beta1, short name pa, Mode column; every field reads back through both versions, and meshd reads it', async () => {
    const crd = await kube.request<Obj>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peerauthentications.${SECURITY_GROUP}`);
    assert.equal(get(crd, 'spec', 'scope'), 'Namespaced');
    assert.deepEqual(get(crd, 'spec', 'names', 'categories'), ['istio-io', 'security-istio-io']);
    const versions = get(crd, 'spec', 'versions') as Obj[];
    assert.deepEqual(
      versions.map((v) => [v.name, v.served, v.storage]),
      [
        ['v1', true, true],
        ['v1beta1', true, false],
      ],
    );
    const schemas = versions.map((v) => JSON.stringify(get(v, 'schema', 'openAPIV3Schema')));
    assert.equal(schemas[0], schemas[1], 'one schema for both versions');
    for (const v of versions) {
      assert.equal(get(v, 'schema', 'openAPIV3Schema', 'properties', 'spec', 'x-kubernetes-preserve-unknown-fields'), undefined);
      assert.equal(get(v, 'schema', 'openAPIV3Schema', 'properties', 'status', 'x-kubernetes-preserve-unknown-fields'), true);
      assert.deepEqual(get(v, 'subresources'), { status: {} });
    }
    const conds = (get(crd, 'status', 'conditions') ?? []) as { type: string; status: string }[];
    assert.ok(!conds.some((c) => c.type === 'NonStructuralSchema'), 'structural schema');
    for (const v of SECURITY_VERSIONS) {
      const r = (await paths.resources(`${SECURITY_GROUP}/${v}`, true)).find((x) => x.name === 'peerauthentications');
      assert.deepEqual(r?.shortNames, ['pa'], `peerauthentications at ${v}`);
    }
    // meshd's informer watches the version the server prefers.
    assert.equal(get(await kube.request<Obj>('GET', `/apis/${SECURITY_GROUP}`), 'preferredVersion', 'version'), 'v1');

    const created = await kube.request<Obj>('POST', `/apis/${SECURITY_GROUP}/v1beta1/namespaces/${NS}/peerauthentications?fieldValidation=Strict`, fullPeerAuthentication);
    assert.deepEqual(created.spec, fullPeerAuthentication.spec);
    for (const v of SECURITY_VERSIONS) {
      const got = await kube.request<Obj>('GET', `/apis/${SECURITY_GROUP}/${v}/namespaces/${NS}/peerauthentications/full-pa`);
      assert.equal(got.apiVersion, `${SECURITY_GROUP}/${v}`);
      assert.deepEqual(got.spec, fullPeerAuthentication.spec, `read through ${v}: nothing pruned or added`);
      const parsed = parseMeshObject(got);
      assert.ok(parsed.ok === true, `meshd accepts it as read through ${v}: ${JSON.stringify(parsed)}`);
      assert.deepEqual((parsed.value as { spec: unknown }).spec, fullPeerAuthentication.spec);
      assert.equal(parsed.value.metadata.creationTimestamp, get(got, 'metadata', 'creationTimestamp'));
    }

    const table = await getWithAccept(kube, `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/peerauthentications/full-pa`, 'application/json;as=Table;v=v1;g=meta.k8s.io');
    assert.deepEqual((table.columnDefinitions as Obj[]).map((c) => c.name), ['Name', 'Mode', 'Age']);
    assert.equal(get(table, 'rows', 0, 'cells', 1), 'STRICT');
  });

  it('PeerAuthentication schema: bad modes, keys that are not ports 1-65535 and portLevelMtls without a selector are refused (422); unknown fields pruned', async () => {
    const paOf = (name: string, spec: unknown): Obj => ({ apiVersion: `${SECURITY_GROUP}/v1`, kind: 'PeerAuthentication', metadata: { name, namespace: NS }, spec });
    const selector = { matchLabels: { app: 'a' } };
    const bad: [Obj, RegExp | undefined][] = [
      [paOf('bad-mode', { mtls: { mode: 'MUTUAL' } }), /Unsupported value: \\?"MUTUAL\\?"/],
      [paOf('bad-port-mode', { selector, portLevelMtls: { '8080': { mode: 'strict' } } }), /Unsupported value: \\?"strict\\?"/],
      [paOf('port-zero', { selector, portLevelMtls: { '0': { mode: 'STRICT' } } }), /keys must be port numbers from 1 to 65535/],
      [paOf('port-too-big', { selector, portLevelMtls: { '65536': { mode: 'STRICT' } } }), /keys must be port numbers from 1 to 65535/],
      [paOf('port-name', { selector, portLevelMtls: { http: { mode: 'STRICT' } } }), /keys must be port numbers from 1 to 65535/],
      [paOf('ports-no-selector', { mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' } } }), /portLevelMtls needs selector\.matchLabels/],
      [paOf('ports-empty-selector', { selector: { matchLabels: {} }, portLevelMtls: { '8080': { mode: 'DISABLE' } } }), /portLevelMtls needs selector\.matchLabels/],
      [paOf('ports-empty', { selector, portLevelMtls: {} }), undefined],
      [paOf('selector-type', { selector: 'app=a' }), undefined],
      [paOf('labels-type', { selector: { matchLabels: { app: 1 } } }), undefined],
    ];
    for (const [o, message] of bad) {
      const r = await kube.requestRaw('POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/peerauthentications`, o);
      assert.equal(r.status, 422, `${meta(o).name}: expected 422, got ${r.status}: ${r.text.slice(0, 300)}`);
      if (message) assert.match(r.text, message, meta(o).name);
    }
    // Every mode, and the edge ports, are accepted (dry run).
    const ok = [
      ...['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'].map((mode) => paOf(`mode-${mode.toLowerCase()}`, { mtls: { mode } })),
      paOf('edge-ports', { selector, portLevelMtls: { '1': { mode: 'STRICT' }, '65535': { mode: 'UNSET' }, '8080': {} } }),
      paOf('empty', {}),
    ];
    for (const o of ok) {
      const r = await kube.requestRaw('POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/peerauthentications?dryRun=All&fieldValidation=Strict`, o);
      assert.equal(r.status, 201, `${meta(o).name}: ${r.text.slice(0, 300)}`);
    }
    const pruned = await kube.request<Obj>('POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/peerauthentications?fieldValidation=Ignore`, paOf('unknown-field', { bogus: 1, mtls: { mode: 'STRICT', bogus: true } }));
    assert.deepEqual(pruned.spec, { mtls: { mode: 'STRICT' } });
  });

  it('AuthorizationPolicy CRD: served at v1 and v1beta1, short name ap, Action column; every field reads back through both versions and meshd reads it; CEL refuses selector with targetRefs and CUSTOM without provider', async () => {
    for (const v of SECURITY_VERSIONS) {
      const r = (await paths.resources(`${SECURITY_GROUP}/${v}`, true)).find((x) => x.name === 'authorizationpolicies');
      assert.deepEqual(r?.shortNames, ['ap'], `authorizationpolicies at ${v}`);
    }
    const created = await kube.request<Obj>('POST', `/apis/${SECURITY_GROUP}/v1beta1/namespaces/${NS}/authorizationpolicies?fieldValidation=Strict`, fullAuthorizationPolicy);
    assert.deepEqual(created.spec, fullAuthorizationPolicy.spec);
    for (const v of SECURITY_VERSIONS) {
      const got = await kube.request<Obj>('GET', `/apis/${SECURITY_GROUP}/${v}/namespaces/${NS}/authorizationpolicies/full-ap`);
      assert.deepEqual(got.spec, fullAuthorizationPolicy.spec, `read through ${v}: nothing pruned or added`);
      const parsed = parseMeshObject(got);
      assert.ok(parsed.ok === true, `meshd accepts it as read through ${v}: ${JSON.stringify(parsed)}`);
    }
    const table = await getWithAccept(kube, `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/authorizationpolicies/full-ap`, 'application/json;as=Table;v=v1;g=meta.k8s.io');
    assert.deepEqual((table.columnDefinitions as Obj[]).map((c) => c.name), ['Name', 'Action', 'Age']);
    assert.equal(get(table, 'rows', 0, 'cells', 1), 'ALLOW');

    const apOf = (name: string, spec: unknown): Obj => ({ apiVersion: `${SECURITY_GROUP}/v1`, kind: 'AuthorizationPolicy', metadata: { name, namespace: NS }, spec });
    const ref = { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'shop' };
    const bad: [Obj, RegExp][] = [
      [apOf('both', { selector: { matchLabels: { app: 'a' } }, targetRefs: [ref] }), /only one of selector or targetRef\(s\) can be set/],
      [apOf('custom-no-provider', { action: 'CUSTOM', rules: [{}] }), /provider must be set with action CUSTOM/],
      [apOf('provider-on-allow', { action: 'ALLOW', provider: { name: 'x' } }), /provider must be set with action CUSTOM/],
      [apOf('bad-action', { action: 'PERMIT' }), /Unsupported value: \\?"PERMIT\\?"/],
    ];
    for (const [o, message] of bad) {
      const r = await kube.requestRaw('POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/authorizationpolicies`, o);
      assert.equal(r.status, 422, `${meta(o).name}: expected 422, got ${r.status}: ${r.text.slice(0, 300)}`);
      assert.match(r.text, message, meta(o).name);
    }
    const r = await kube.requestRaw('POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/authorizationpolicies?dryRun=All&fieldValidation=Strict`, apOf('targeted', { targetRefs: [ref], action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }));
    assert.equal(r.status, 201, r.text.slice(0, 300));
  });

  it('RequestAuthentication CRD: served at v1 and v1beta1, short name ra; every field reads back through both versions and meshd reads it; CEL refuses a non-http(s) jwksUri, jwks with jwksUri, selector with targetRefs, a rule without issuer', async () => {
    for (const v of SECURITY_VERSIONS) {
      const r = (await paths.resources(`${SECURITY_GROUP}/${v}`, true)).find((x) => x.name === 'requestauthentications');
      assert.deepEqual(r?.shortNames, ['ra'], `requestauthentications at ${v}`);
    }
    const created = await kube.request<Obj>('POST', `/apis/${SECURITY_GROUP}/v1beta1/namespaces/${NS}/requestauthentications?fieldValidation=Strict`, fullRequestAuthentication);
    assert.deepEqual(created.spec, fullRequestAuthentication.spec);
    for (const v of SECURITY_VERSIONS) {
      const got = await kube.request<Obj>('GET', `/apis/${SECURITY_GROUP}/${v}/namespaces/${NS}/requestauthentications/full-ra`);
      assert.deepEqual(got.spec, fullRequestAuthentication.spec, `read through ${v}: nothing pruned or added`);
      const parsed = parseMeshObject(got);
      assert.ok(parsed.ok === true, `meshd accepts it as read through ${v}: ${JSON.stringify(parsed)}`);
    }
    const table = await getWithAccept(kube, `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/requestauthentications/full-ra`, 'application/json;as=Table;v=v1;g=meta.k8s.io');
    assert.deepEqual((table.columnDefinitions as Obj[]).map((c) => c.name), ['Name', 'Age']);

    const raOf = (name: string, spec: unknown): Obj => ({ apiVersion: `${SECURITY_GROUP}/v1`, kind: 'RequestAuthentication', metadata: { name, namespace: NS }, spec });
    const ref = { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'shop' };
    const bad: [Obj, RegExp][] = [
      [raOf('ftp', { jwtRules: [{ issuer: 'a', jwksUri: 'ftp://keys.example.com/jwks' }] }), /jwksUri must be an http or https URL/],
      [raOf('not-a-url', { jwtRules: [{ issuer: 'a', jwksUri: 'keys' }] }), /jwksUri must be an http or https URL/],
      [raOf('both-keys', { jwtRules: [{ issuer: 'a', jwksUri: 'https://k.example.com/', jwks: '{"keys":[]}' }] }), /only one of jwks or jwksUri can be set/],
      [raOf('no-issuer', { jwtRules: [{ jwksUri: 'https://k.example.com/' }] }), /issuer: Required value/],
      [raOf('both-scopes', { selector: { matchLabels: { app: 'a' } }, targetRefs: [ref] }), /only one of selector or targetRef\(s\) can be set/],
      [raOf('bad-timeout', { jwtRules: [{ issuer: 'a', jwksUri: 'https://k.example.com/', timeout: 'soon' }] }), /timeout/],
    ];
    for (const [o, message] of bad) {
      const r = await kube.requestRaw('POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/requestauthentications`, o);
      assert.equal(r.status, 422, `${meta(o).name}: expected 422, got ${r.status}: ${r.text.slice(0, 300)}`);
      assert.match(r.text, message, meta(o).name);
    }
    const r = await kube.requestRaw('POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/requestauthentications?dryRun=All&fieldValidation=Strict`, raOf('targeted', { targetRefs: [ref], jwtRules: [{ issuer: 'a', jwksUri: 'http://jwks.auth.svc.cluster.local:8080/keys' }] }));
    assert.equal(r.status, 201, r.text.slice(0, 300));
  });

  it("the seeds apply cleanly: the tutorial's httpbin, Gateway and VirtualService (v1beta1) read back unpruned", async () => {
    for (const file of ['httpbin.yaml', 'httpbin-gateway.yaml']) {
      for (const o of readObjects(join(MANIFESTS, 'samples', file))) {
        const path = await paths.of(o);
        assert.ok(path.includes(`/namespaces/${NS}/`), `${file}: ${keyOf(o)} goes to ${NS}`);
        await kube.apply(`${path}?fieldValidation=Strict`, stringifyYaml(o), { fieldManager: FIELD_MANAGER });
        const got = await kube.request<Obj>('GET', path);
        assertSubset(o, got, `${file}: ${keyOf(o)}`);
        if (o.kind === 'Gateway' || o.kind === 'VirtualService') assert.deepEqual(got.spec, o.spec, `${keyOf(o)}: nothing pruned or added`);
      }
    }
    const vs = await kube.request<Obj>('GET', `/apis/${ISTIO_GROUP}/v1beta1/namespaces/${NS}/virtualservices/httpbin-vs`);
    assert.deepEqual(
      (get(vs, 'spec', 'http', 0, 'match') as Obj[]).map((m) => get(m, 'uri', 'prefix')),
      ['/status', '/headers'],
    );
    assert.deepEqual(get(vs, 'spec', 'http', 0, 'route', 0, 'destination'), { host: 'httpbin', port: { number: 80 } });
    const gw = await kube.request<Obj>('GET', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/gateways/httpbin-gateway`);
    assert.deepEqual(get(gw, 'spec', 'servers', 0), { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['httpbin.example.com'] });
    assert.deepEqual(get(gw, 'spec', 'selector'), { istio: 'ingressgateway' });
  });

  it('the schemas reject wrong types, bad enums and bad durations (422), and refuse (Strict) or prune unknown fields', async () => {
    const vs = (name: string, spec: Obj): Obj => ({ apiVersion: `${ISTIO_GROUP}/v1`, kind: 'VirtualService', metadata: { name, namespace: NS }, spec });
    const dr = (name: string, spec: Obj): Obj => ({ apiVersion: `${ISTIO_GROUP}/v1`, kind: 'DestinationRule', metadata: { name, namespace: NS }, spec });
    const gwy = (name: string, spec: Obj): Obj => ({ apiVersion: `${ISTIO_GROUP}/v1`, kind: 'Gateway', metadata: { name, namespace: NS }, spec });
    const bad: [string, Obj][] = [
      ['virtualservices', vs('bad-hosts', { hosts: 5 })],
      ['virtualservices', vs('bad-hosts-item', { hosts: [5] })],
      ['virtualservices', vs('bad-match', { hosts: ['a'], http: [{ match: [{ uri: { exact: '/a', prefix: '/b' } }], route: [{ destination: { host: 'a' } }] }] })],
      ['virtualservices', vs('bad-timeout', { hosts: ['a'], http: [{ timeout: '10 seconds', route: [{ destination: { host: 'a' } }] }] })],
      ['virtualservices', vs('no-dest-host', { hosts: ['a'], http: [{ route: [{ destination: { subset: 'v1' } }] }] })],
      ['virtualservices', vs('bad-weight', { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' }, weight: 'half' }] }] })],
      ['virtualservices', vs('bad-percent', { hosts: ['a'], http: [{ fault: { abort: { httpStatus: 503, percentage: { value: 101 } } }, route: [{ destination: { host: 'a' } }] }] })],
      ['gateways', gwy('bad-tls-mode', { servers: [{ port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'STRICT' } }] })],
      ['gateways', gwy('bad-port', { servers: [{ port: { number: 70000, name: 'x', protocol: 'HTTP' }, hosts: ['*'] }] })],
      ['gateways', gwy('no-hosts', { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' } }] })],
      ['destinationrules', dr('no-host', { subsets: [{ name: 'v1' }] })],
      ['destinationrules', dr('bad-lb', { host: 'a', trafficPolicy: { loadBalancer: { simple: 'FASTEST' } } })],
      ['destinationrules', dr('bad-tls', { host: 'a', trafficPolicy: { tls: { mode: 'OPTIONAL_MUTUAL' } } })],
      ['destinationrules', dr('bad-conns', { host: 'a', trafficPolicy: { connectionPool: { tcp: { maxConnections: 'many' } } } })],
    ];
    for (const [plural, o] of bad) {
      const r = await kube.requestRaw('POST', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/${plural}`, o);
      assert.equal(r.status, 422, `${meta(o).name}: expected 422, got ${r.status}: ${r.text.slice(0, 300)}`);
      assert.equal((JSON.parse(r.text) as Obj).reason, 'Invalid');
    }
    // The same through server-side apply, as kubectl apply --server-side would send it.
    const viaApply = await kube.requestRaw('PATCH', `/apis/${ISTIO_GROUP}/v1beta1/namespaces/${NS}/virtualservices/bad-hosts?fieldManager=${FIELD_MANAGER}`, 'apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata:\n  name: bad-hosts\n  namespace: default\nspec:\n  hosts: 5\n', kube.adminToken, { contentType: 'application/apply-patch+yaml' });
    // Rejected too, though not with 422: the apiserver fails while building the typed patch
    // and answers 500 (kubernetes/kubernetes#139253). What matters is the refusal and that
    // nothing is stored.
    assert.ok(viaApply.status >= 400, `server-side apply of hosts: 5 is refused (HTTP ${viaApply.status})`);
    assert.match(viaApply.text, /\.spec\.hosts: expected list/);
    assert.equal((await kube.requestRaw('GET', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices/bad-hosts`)).status, 404);

    // Every enum value Istio defines is accepted (dry run: nothing is stored).
    const ok: [string, Obj][] = [
      ...['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'].map(
        (mode): [string, Obj] => ['gateways', gwy(`tls-${mode.toLowerCase().replaceAll('_', '-')}`, { servers: [{ port: { number: 443, name: 'tls', protocol: 'TLS' }, hosts: ['*'], tls: { mode } }] })],
      ),
      ...['UNSPECIFIED', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN'].map(
        (simple): [string, Obj] => ['destinationrules', dr(`lb-${simple.toLowerCase().replaceAll('_', '-')}`, { host: 'a', trafficPolicy: { loadBalancer: { simple } } })],
      ),
      ...['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'].map(
        (mode): [string, Obj] => ['destinationrules', dr(`tls-${mode.toLowerCase().replaceAll('_', '-')}`, { host: 'a', trafficPolicy: { tls: { mode } } })],
      ),
      ['virtualservices', vs('durations', { hosts: ['a'], http: [{ timeout: '1h30m', retries: { attempts: 2, perTryTimeout: '0.5s' }, route: [{ destination: { host: 'a' } }] }] })],
    ];
    for (const [plural, o] of ok) {
      const r = await kube.requestRaw('POST', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/${plural}?dryRun=All&fieldValidation=Strict`, o);
      assert.equal(r.status, 201, `${meta(o).name}: ${r.text.slice(0, 300)}`);
    }

    // Unknown fields: refused with fieldValidation=Strict, pruned otherwise (the spec is not preserve-unknown-fields).
    const unknown = vs('unknown-field', { hosts: ['a'], bogus: true, http: [{ route: [{ destination: { host: 'a', bogus: 1 } }] }] });
    const strict = await kube.requestRaw('POST', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices?fieldValidation=Strict`, unknown);
    assert.equal(strict.status, 400, strict.text);
    assert.match(strict.text, /unknown field \\?"spec\.bogus\\?"/);
    const pruned = await kube.request<Obj>('POST', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices?fieldValidation=Ignore`, unknown);
    assert.deepEqual(pruned.spec, { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' } }] }] });

    // status is free-form.
    const st = await kube.request<Obj>('PATCH', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices/unknown-field/status`, { status: { anything: { goes: [1, 'two'] } } });
    assert.deepEqual(st.status, { anything: { goes: [1, 'two'] } });
  });

  it('RBAC: the istiod identity may read and watch everything meshd watches, review tokens, and write status', async () => {
    const meshd = as('meshd');
    assert.equal(kube.meshdToken, meshd);
    const reads = [
      '/api/v1/services',
      '/api/v1/pods',
      '/api/v1/namespaces',
      '/api/v1/secrets',
      '/apis/discovery.k8s.io/v1/endpointslices',
      `/apis/${ISTIO_GROUP}/v1/gateways`,
      `/apis/${ISTIO_GROUP}/v1/virtualservices`,
      `/apis/${ISTIO_GROUP}/v1/destinationrules`,
      `/apis/${ISTIO_GROUP}/v1beta1/virtualservices`,
      `/apis/${ISTIO_GROUP}/v1alpha3/namespaces/${NS}/virtualservices`,
      `/apis/${SECURITY_GROUP}/v1/peerauthentications`,
      `/apis/${SECURITY_GROUP}/v1beta1/namespaces/${NS}/peerauthentications`,
      '/api/v1/namespaces/default/services/kubernetes',
    ];
    for (const path of reads) assert.equal(await status(kube.request('GET', path, undefined, meshd)), 200, `GET ${path}`);
    // Watches end after a second (timeoutSeconds); run them together.
    const watches = await Promise.all(
      reads.filter((p) => !p.endsWith('/kubernetes')).map(async (path) => ({ path, r: await kube.requestRaw('GET', `${path}?watch=1&timeoutSeconds=1`, undefined, meshd) })),
    );
    for (const { path, r } of watches) assert.equal(r.status, 200, `watch ${path}: ${r.text.slice(0, 200)}`);

    // TokenReview: a real service-account token (as istio-agent would send to the CA) is reviewed by meshd.
    const tr = await kube.request<Obj>('POST', '/api/v1/namespaces/istio-system/serviceaccounts/istiod/token', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: ['istio-ca'], expirationSeconds: 600 },
    });
    const review = await kube.request<Obj>(
      'POST',
      '/apis/authentication.k8s.io/v1/tokenreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: get(tr, 'status', 'token'), audiences: ['istio-ca'] } },
      meshd,
    );
    assert.equal(get(review, 'status', 'authenticated'), true, JSON.stringify(review.status));
    assert.equal(get(review, 'status', 'user', 'username'), MESHD_USER);

    // Status, not spec.
    const vsStatus = `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices/httpbin-vs/status`;
    const patched = await kube.request<Obj>('PATCH', vsStatus, { status: { validationMessages: [{ type: { code: 'IST0000' } }] } }, meshd);
    assert.deepEqual(get(patched, 'status', 'validationMessages', 0, 'type', 'code'), 'IST0000');
    for (const plural of ['gateways', 'destinationrules']) {
      const name = plural === 'gateways' ? 'httpbin-gateway' : 'full-dr';
      assert.equal(await status(kube.request('PATCH', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/${plural}/${name}/status`, { status: { observedGeneration: 1 } }, meshd)), 200, `${plural}/status`);
    }
    assert.equal(await status(kube.request('PATCH', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices/httpbin-vs`, { spec: { hosts: ['evil.example.com'] } }, meshd)), 403, 'spec update');

    // The root-cert ConfigMap in any namespace: create, get, update, list/watch by name.
    const cmPath = `/api/v1/namespaces/${NS}/configmaps`;
    await kube.request('POST', cmPath, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio-ca-root-cert' }, data: { 'root-cert.pem': 'one' } }, meshd);
    const cm = await kube.request<Obj>('GET', `${cmPath}/istio-ca-root-cert`, undefined, meshd);
    await kube.request('PUT', `${cmPath}/istio-ca-root-cert`, { ...cm, data: { 'root-cert.pem': 'two' } }, meshd);
    const byName = `${cmPath.replace(`/namespaces/${NS}`, '')}?fieldSelector=metadata.name%3Distio-ca-root-cert`;
    assert.equal(await status(kube.request('GET', byName, undefined, meshd)), 200, 'list root certs by name, all namespaces');
    assert.equal((await kube.requestRaw('GET', `${byName}&watch=1&timeoutSeconds=1`, undefined, meshd)).status, 200, 'watch root certs by name');

    // The CA secret in istio-system: create and rotate.
    const secrets = '/api/v1/namespaces/istio-system/secrets';
    await kube.request('POST', secrets, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'istio-ca-secret' }, type: 'istio.io/ca-root', data: { 'ca-cert.pem': 'MQ==' } }, meshd);
    const ca = await kube.request<Obj>('GET', `${secrets}/istio-ca-secret`, undefined, meshd);
    await kube.request('PUT', `${secrets}/istio-ca-secret`, { ...ca, data: { 'ca-cert.pem': 'Mg==' } }, meshd);

    // And what SelfSubjectAccessReview says, for every verb meshd's informers use.
    const can = async (verb: string, group: string, resource: string, extra: Obj = {}): Promise<boolean> => {
      const r = await kube.request<Obj>(
        'POST',
        '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
        { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { verb, group, resource, ...extra } } },
        meshd,
      );
      return get(r, 'status', 'allowed') === true;
    };
    for (const [group, resource] of [
      ['', 'services'],
      ['', 'pods'],
      ['', 'namespaces'],
      ['', 'secrets'],
      ['discovery.k8s.io', 'endpointslices'],
      [ISTIO_GROUP, 'gateways'],
      [ISTIO_GROUP, 'virtualservices'],
      [ISTIO_GROUP, 'destinationrules'],
      [SECURITY_GROUP, 'peerauthentications'],
      [SECURITY_GROUP, 'authorizationpolicies'],
      [SECURITY_GROUP, 'requestauthentications'],
    ] as const) {
      for (const verb of ['get', 'list', 'watch']) assert.ok(await can(verb, group, resource), `${verb} ${resource}`);
    }
    for (const resource of ['gateways', 'virtualservices', 'destinationrules']) {
      for (const verb of ['update', 'patch']) assert.ok(await can(verb, ISTIO_GROUP, resource, { subresource: 'status', namespace: NS }), `${verb} ${resource}/status`);
    }
    for (const resource of ['peerauthentications', 'authorizationpolicies', 'requestauthentications']) {
      for (const verb of ['update', 'patch']) assert.ok(await can(verb, SECURITY_GROUP, resource, { subresource: 'status', namespace: NS }), `${verb} ${resource}/status`);
      assert.ok(!(await can('update', SECURITY_GROUP, resource, { namespace: NS })), `no update of ${resource} (read only)`);
    }
    assert.ok(await can('create', 'authentication.k8s.io', 'tokenreviews'));
    assert.ok(await can('update', '', 'configmaps', { namespace: 'any-namespace', name: 'istio-ca-root-cert' }));
    assert.ok(await can('update', '', 'secrets', { namespace: 'istio-system', name: 'istio-ca-secret' }));
    // The mesh config and the injector's settings, by name, in istiod's namespace; and a watch of the mesh config by name.
    for (const name of ['istio', 'istio-sidecar-injector']) {
      for (const verb of ['get', 'list', 'watch']) assert.ok(await can(verb, '', 'configmaps', { namespace: 'istio-system', name }), `${verb} configmap ${name}`);
    }
    assert.equal(await status(kube.request('GET', '/api/v1/namespaces/istio-system/configmaps/istio', undefined, meshd)), 200, 'get the mesh config');
    assert.equal((await kube.requestRaw('GET', '/api/v1/namespaces/istio-system/configmaps?fieldSelector=metadata.name%3Distio&watch=1&timeoutSeconds=1', undefined, meshd)).status, 200, 'watch the mesh config by name');
  });

  it('RBAC: the istiod identity may not change what it only reads, nor reach beyond its names', async () => {
    const meshd = as('meshd');
    const forbidden: [string, string, unknown?][] = [
      ['DELETE', '/api/v1/namespaces/default/services/kubernetes'],
      ['POST', '/api/v1/namespaces/default/pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'x', image: 'x' }] } }],
      ['POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ port: 80 }] } }],
      ['PATCH', '/api/v1/namespaces/istio-system', { metadata: { labels: { a: 'b' } } }],
      ['GET', '/api/v1/endpoints'],
      ['GET', '/apis/apps/v1/deployments'],
      ['DELETE', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices/httpbin-vs`],
      ['POST', `/apis/${ISTIO_GROUP}/v1/namespaces/${NS}/virtualservices`, { apiVersion: `${ISTIO_GROUP}/v1`, kind: 'VirtualService', metadata: { name: 'x' }, spec: { hosts: ['x'] } }],
      ['POST', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/peerauthentications`, { apiVersion: `${SECURITY_GROUP}/v1`, kind: 'PeerAuthentication', metadata: { name: 'x' }, spec: { mtls: { mode: 'DISABLE' } } }],
      ['PATCH', `/apis/${SECURITY_GROUP}/v1/namespaces/${NS}/peerauthentications/full-pa`, { spec: { mtls: { mode: 'DISABLE' } } }],
      [
        'POST',
        '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user: 'someone', resourceAttributes: { verb: 'get', resource: 'pods' } } },
      ],
      // ConfigMaps other than the root cert, and listing them all.
      ['GET', '/api/v1/configmaps'],
      ['GET', `/api/v1/namespaces/${NS}/configmaps`],
      ['GET', '/api/v1/namespaces/istio-system/configmaps/istio-ingressgateway-bootstrap'],
      ['DELETE', `/api/v1/namespaces/${NS}/configmaps/istio-ca-root-cert`],
      // Secrets: no writes outside the CA secret in istio-system.
      ['POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' } }],
      ['DELETE', '/api/v1/namespaces/istio-system/secrets/istio-ca-secret'],
      ['PATCH', `/api/v1/namespaces/${NS}/secrets/whatever`, { data: {} }],
      // Its own permissions.
      ['PATCH', '/apis/rbac.authorization.k8s.io/v1/clusterroles/istiod', { rules: [] }],
    ];
    await kube.request('POST', '/api/v1/namespaces/istio-system/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other' }, data: { a: 'MQ==' } });
    const other = await kube.request<Obj>('GET', '/api/v1/namespaces/istio-system/secrets/other', undefined, meshd);
    forbidden.push(['PUT', '/api/v1/namespaces/istio-system/secrets/other', { ...other, data: { a: 'Mg==' } }]);
    for (const [method, path, body] of forbidden) {
      const r = await kube.requestRaw(method, path, body, meshd);
      assert.equal(r.status, 403, `${method} ${path}: expected 403, got ${r.status}: ${r.text.slice(0, 200)}`);
    }
  });

  it('kubectl apply --server-side --dry-run=server accepts every file and profile', () => {
    const kubectl = kubectlBinary();
    const kubeconfig = kube.kubeconfig(kube.adminToken);
    const files = new Set<string>();
    for (const p of PROFILES) for (const f of renderProfile(p).files) files.add(f);
    const run = (args: string[]) => {
      const r = spawnSync(kubectl, ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '--dry-run=server', ...args], { encoding: 'utf8', cwd: REPO_ROOT, timeout: 120_000 });
      assert.equal(r.status, 0, `kubectl apply ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    for (const f of [...files].sort()) run(['-f', f]);
    for (const f of ['manifests/samples/httpbin.yaml', 'manifests/samples/httpbin-gateway.yaml']) run(['-n', NS, '-f', f]);
    for (const p of PROFILES) {
      const out = run(['-k', `manifests/profiles/${p}`]);
      assert.match(out, /deployment\.apps\/istiod serverside-applied \(server dry run\)/);
    }
  });
});
