// The seeds' headline `curl -H "Host: httpbin.example.com" http://$INGRESS_HOST/status/200`
// on the demo profile, with the demo profile's own ingress gateway: its Service sends port 80
// to targetPort 8080, and its container (a stock Envoy as uid 1337, which cannot bind 80) runs
// the Deployment's start command on the bootstrap ConfigMap. meshd, like istiod, binds the
// Gateway's port 80 server on that targetPort: listener 0.0.0.0_8080, route http.8080.
//
// The pod is a network namespace of its own (its own ports 15000, 15021, 8080...), where
// `istiod.istio-system.svc` resolves to meshd, which listens on the bootstrap's port 15010,
// as cluster DNS and the istiod Service would make it. What the cluster would provide is
// stood in for: the volumes are directories (their mount paths in the start command point at
// them) and the pod's fields POD_IP and POD_NAME are set. The token is left out
// (ISTIO_TOKEN_FILE unset, which the start command supports): this meshd reads files and has
// no Kubernetes API to review a token with.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { envoyForProxyUid, httpGet, parseStats } from '../support/envoy.js';
import { startHttpBackend, type Backend } from '../support/backends.js';
import { createPod, type Pod } from '../support/netns.js';
import { readManifests } from '../support/kube-objects.js';

const INGRESS = join(REPO_ROOT, 'manifests', 'gateways', 'ingress');
const POD_NAME = 'istio-ingressgateway-5d8f7c6b9-x2x7q';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  command: string[];
  args: string[];
  env: EnvVar[];
  ports: { name: string; containerPort: number }[];
  securityContext?: { runAsUser?: number; runAsGroup?: number };
  volumeMounts: { name: string; mountPath: string }[];
}
interface Deployment {
  spec: {
    template: {
      metadata: { labels: Record<string, string> };
      spec: { securityContext?: { runAsUser?: number; runAsGroup?: number }; containers: Container[]; volumes: { name: string; configMap?: { name: string }; emptyDir?: object; projected?: object }[] };
    };
  };
}
interface ServiceManifest {
  metadata: { name: string; namespace: string };
  spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: number }[] };
}
interface ConfigMap {
  metadata: { name: string };
  data: Record<string, string>;
}

function manifest<T>(file: string, kind: string): T {
  const found = readManifests(join(INGRESS, file)).filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `${file} holds one ${kind}`);
  return found[0] as unknown as T;
}

/** A connection attempt: 'connected', or the error code (ECONNREFUSED...). */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 3000 });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("the demo profile's ingress gateway listens on its Service's targetPort", () => {
  const deployment = manifest<Deployment>('deployment.yaml', 'Deployment');
  const service = manifest<ServiceManifest>('service.yaml', 'Service');
  const bootstrapConfigMap = manifest<ConfigMap>('bootstrap.yaml', 'ConfigMap');
  const podSpec = deployment.spec.template.spec;
  const container = podSpec.containers.find((c) => c.name === 'istio-proxy')!;
  const uid = container.securityContext?.runAsUser ?? podSpec.securityContext?.runAsUser;
  const gid = container.securityContext?.runAsGroup ?? podSpec.securityContext?.runAsGroup ?? uid;
  const http2 = service.spec.ports.find((p) => p.port === 80)!;

  let pod: Pod;
  let meshd: MeshdProcess;
  let httpbin: Backend;
  let gateway: ChildProcess;
  let gatewayLog = '';
  let workDir: string;
  let netnsEtc: string | undefined;

  /** Envoy's admin API, on 127.0.0.1:15000 inside the pod. */
  const admin = async (path: string): Promise<string> => {
    const r = await pod.exec(['curl', '-sS', '--max-time', '5', `http://127.0.0.1:15000${path}`], { timeoutMs: 10_000 });
    assert.equal(r.code, 0, `admin ${path}: ${r.stderr}`);
    return r.stdout;
  };
  const listenerNames = async (): Promise<string[]> =>
    ((JSON.parse(await admin('/listeners?format=json')) as { listener_statuses?: { name: string }[] }).listener_statuses ?? []).map((l) => l.name);
  const curlSeeds = (host = 'httpbin.example.com', path = '/status/200') => httpGet(`http://${pod.podIp}:${http2.targetPort}${path}`, { headers: { host }, timeoutMs: 5000 });

  before(async () => {
    assert.ok(uid !== undefined && uid !== 0, 'the gateway Deployment runs as a non-root user');
    assert.deepEqual(service.spec.selector, { app: 'istio-ingressgateway', istio: 'ingressgateway' });
    assert.equal(http2.targetPort, 8080, 'the Service sends 80 to 8080');
    assert.ok(container.ports.some((p) => p.containerPort === http2.targetPort), 'the container declares the targetPort');
    for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(deployment.spec.template.metadata.labels[k], v, 'the Service selects the gateway pods');

    pod = await createPod({ name: 'ingressgw', proxyUid: uid, captureInbound: false, captureOutbound: false });

    // The bootstrap dials istiod.istio-system.svc:15010: in the pod that name is meshd's address.
    const template = bootstrapConfigMap.data['envoy.yaml.tmpl']!;
    const xds = (parse(template) as { static_resources: { clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] }[] } }[] } })
      .static_resources.clusters.find((c) => c.name === 'xds-grpc')!.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address;
    assert.equal(xds.address, 'istiod.istio-system.svc');
    netnsEtc = join('/etc/netns', pod.netns);
    mkdirSync(netnsEtc, { recursive: true });
    writeFileSync(join(netnsEtc, 'hosts'), `127.0.0.1 localhost\n${pod.hostIp} ${xds.address}\n`);

    httpbin = await startHttpBackend('httpbin', { host: pod.hostIp });
    meshd = await startMeshd({
      extraArgs: ['--grpc-addr', `${pod.hostIp}:${xds.port_value}`],
      files: {
        // The gateway's Service as the demo profile installs it, and the seeds' Gateway and VirtualService.
        'istio-ingressgateway-service.yaml': readFileSync(join(INGRESS, 'service.yaml'), 'utf8'),
        'httpbin-gateway.yaml': readFileSync(join(REPO_ROOT, 'manifests', 'samples', 'httpbin-gateway.yaml'), 'utf8'),
        'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port: 80, targetPort: httpbin.port }], endpoints: [{ ip: pod.hostIp }] }),
      },
    });

    // The pod's volumes: the bootstrap ConfigMap, and the writable emptyDir for the filled-in copy.
    workDir = mkdtempSync(join(tmpdir(), 'meshd-ingressgw-'));
    chmodSync(workDir, 0o755);
    const volumeDirs = new Map<string, string>();
    for (const v of podSpec.volumes) {
      const dir = join(workDir, v.name);
      if (v.configMap) {
        assert.equal(v.configMap.name, bootstrapConfigMap.metadata.name);
        mkdirSync(dir, { mode: 0o755 });
        for (const [file, text] of Object.entries(bootstrapConfigMap.data)) writeFileSync(join(dir, file), text, { mode: 0o644 });
      } else if (v.emptyDir) {
        mkdirSync(dir, { mode: 0o755 });
        chownSync(dir, uid, gid!);
      } else continue; // the projected token: not mounted, see the header
      volumeDirs.set(v.name, dir);
    }
    let script = container.args.join(' ');
    for (const m of container.volumeMounts) {
      const dir = volumeDirs.get(m.name);
      if (!dir) continue;
      assert.ok(script.includes(m.mountPath), `the start command uses ${m.mountPath}`);
      script = script.replaceAll(m.mountPath, dir);
    }
    const env: Record<string, string> = { PATH: `${dirname(envoyForProxyUid())}:/usr/sbin:/usr/bin:/sbin:/bin` };
    for (const e of container.env) {
      if (e.name === 'ISTIO_TOKEN_FILE') continue;
      const field = e.valueFrom?.fieldRef?.fieldPath;
      env[e.name] = field === 'status.podIP' ? pod.podIp : field === 'metadata.name' ? POD_NAME : (e.value ?? '');
    }
    assert.deepEqual(container.command, ['/bin/sh', '-c']);
    gateway = pod.spawn(['env', '-u', 'ISTIO_TOKEN_FILE', ...container.command, script], { uid, gid: gid!, env });
    gateway.stdout!.setEncoding('utf8').on('data', (s: string) => (gatewayLog += s));
    gateway.stderr!.setEncoding('utf8').on('data', (s: string) => (gatewayLog += s));

    // Up when the Gateway's server answers on the targetPort (its listener and route have arrived).
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (gateway.exitCode !== null) assert.fail(`the gateway exited with ${gateway.exitCode}:\n${gatewayLog.slice(-4000)}`);
      const r = await curlSeeds().catch((e: Error) => ({ status: 0, body: e.message }));
      if (r.status === 200) break;
      if (Date.now() > deadline) assert.fail(`no 200 on ${pod.podIp}:${http2.targetPort} (last: ${r.status} ${r.body.slice(0, 200)}):\n${gatewayLog.slice(-4000)}`);
      await sleep(100);
    }
  });

  after(async () => {
    await pod?.destroy();
    await meshd?.stop();
    await httpbin?.close();
    if (netnsEtc) rmSync(netnsEtc, { recursive: true, force: true });
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it("runs as the Deployment's user, which cannot bind port 80 in the pod", async () => {
    const status = readFileSync(`/proc/${gateway.pid}/status`, 'utf8');
    assert.equal(readFileSync(`/proc/${gateway.pid}/comm`, 'utf8').trim(), 'envoy');
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
    assert.match(status, /^CapEff:\s+0+$/m);
    const probe = "const s = require('node:net').createServer(); s.on('error', (e) => { console.log(e.code); process.exit(0); }); s.listen(80, '0.0.0.0', () => { console.log('bound'); s.close(); });";
    const r = await pod.exec([process.execPath, '-e', probe], { uid, gid: gid! });
    assert.equal(r.stdout.trim(), 'EACCES', r.stderr);
  });

  it("answers the seeds' curl (Host httpbin.example.com, /status/200) on the targetPort", async () => {
    const r = await curlSeeds();
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-backend'], 'httpbin');
    assert.equal((JSON.parse(r.body) as { path: string }).path, '/status/200');
    assert.equal((await curlSeeds('httpbin.example.com', '/anything')).status, 404, 'only /status and /headers are routed');
    assert.equal((await curlSeeds('other.example.com')).status, 404, 'only httpbin.example.com is served');
  });

  it('has the listener 0.0.0.0_8080 with route http.8080 and none on 80; every update accepted', async () => {
    const names = await listenerNames();
    assert.ok(names.includes(`0.0.0.0_${http2.targetPort}`), names.join(', '));
    assert.ok(!names.includes('0.0.0.0_80'), names.join(', '));
    assert.equal(await tryConnect(pod.podIp, 80), 'ECONNREFUSED', 'nothing listens on 80');
    const dump = JSON.parse(await admin('/config_dump?resource=dynamic_route_configs')) as { configs: { route_config: { name: string; virtual_hosts: { name: string; domains: string[] }[] } }[] };
    const route = dump.configs.map((c) => c.route_config).find((r) => r.name === `http.${http2.targetPort}`);
    assert.ok(route, 'route configuration http.8080');
    assert.deepEqual(route.virtual_hosts.map((v) => v.name), ['httpbin.example.com:80'], 'virtual hosts keep the Gateway port');
    const stats = parseStats(await admin('/stats'));
    let rejected = 0;
    for (const [k, v] of stats) if (k.endsWith('.update_rejected')) rejected += v;
    assert.equal(rejected, 0);
    assert.doesNotMatch(gatewayLog, /cannot bind|Permission denied/);
    // The readiness endpoint the Service's status-port targets.
    assert.equal((await httpGet(`http://${pod.podIp}:15021/healthz/ready`)).status, 200);
  });
});
