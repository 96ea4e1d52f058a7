// The Sidecar resource through a real Envoy: a Sidecar restricting egress to its own
// namespace leaves a service of another namespace without a route or cluster (the catch-all
// answers) while the imported one works; widening it imports the other service, and
// deleting it restores everything. The services share one port, so one listener serves both
// and only the Sidecar decides which virtual hosts and clusters the proxy gets.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';

const OTHER_CLUSTER_HOST = 'other.other.svc.cluster.local';

/** The sum of a Prometheus metric's samples over all its labels. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

describe('Sidecar: egress scoping through a real Envoy', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let httpbin: Backend;
  let other: Backend;
  let port: number;

  const get = (host: string) => httpGet(`http://127.0.0.1:${port}/get`, { headers: { host }, timeoutMs: 5000 });

  async function clusterNames(): Promise<string[]> {
    const dump = (await envoy.configDump('?resource=dynamic_active_clusters')) as { configs: { cluster: { name: string } }[] };
    return dump.configs.map((c) => c.cluster.name);
  }

  const sidecar = (hosts: string[], mode = 'REGISTRY_ONLY'): string =>
    ['apiVersion: networking.istio.io/v1', 'kind: Sidecar', 'metadata: {name: default, namespace: default}', 'spec:', '  egress:', `  - hosts: ${JSON.stringify(hosts)}`, `  outboundTrafficPolicy: {mode: ${mode}}`, ''].join('\n');

  before(async () => {
    httpbin = await startHttpBackend('httpbin-0', { host: '127.0.0.5' });
    other = await startHttpBackend('other-0', { host: '127.0.0.6' });
    port = await freePort();
    meshd = await startMeshd({
      files: {
        'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port, targetPort: httpbin.port }], endpoints: [{ ip: '127.0.0.5' }] }),
        'other.yaml': serviceYaml({ name: 'other', namespace: 'other', ports: [{ name: 'http', port, targetPort: other.port }], endpoints: [{ ip: '127.0.0.6' }] }),
      },
    });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'sleep-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'sidecar-scope' });
    await envoy.waitFor(async () => (await get('other.other').catch(() => undefined))?.status === 200, { what: 'the route to the other namespace', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    await httpbin?.close();
    await other?.close();
  });

  it('without a Sidecar, every service is reachable', async () => {
    assert.equal((await get('httpbin')).status, 200);
    assert.equal((await get('other.other')).status, 200);
    assert.ok((await clusterNames()).includes(`outbound|${port}||${OTHER_CLUSTER_HOST}`));
  });

  it('a Sidecar importing "./*" leaves the other namespace without a route or cluster', async () => {
    meshd.writeConfig('sidecar.yaml', sidecar(['./*']));
    await envoy.waitFor(async () => !(await clusterNames()).includes(`outbound|${port}||${OTHER_CLUSTER_HOST}`), { what: 'the other cluster to go', timeoutMs: 10_000 });
    const before = other.requests.length;
    const r = await get('other.other');
    // No virtual host for it: the catch-all answers (502 without capture, as under REGISTRY_ONLY).
    assert.equal(r.status, 502);
    assert.equal(other.requests.length, before, 'the unimported service got no request');
    assert.equal((await get('httpbin')).status, 200, 'the imported service still works');
    assert.ok((await clusterNames()).includes(`outbound|${port}||httpbin.default.svc.cluster.local`));
  });

  it('a change to a service the Sidecar does not import is not pushed to it; one it imports is', async () => {
    const pushes = async (): Promise<number> => metricSum((await meshd.monitoring('/metrics')).body, 'pilot_xds_pushes');
    const triggers = async (): Promise<number> => metricSum((await meshd.monitoring('/metrics')).body, 'pilot_push_triggers');
    const pushesBefore = await pushes();
    const triggersBefore = await triggers();
    // The unimported service gains an endpoint and a port, and a VirtualService names it.
    meshd.writeConfig('other.yaml', serviceYaml({ name: 'other', namespace: 'other', ports: [{ name: 'http', port, targetPort: other.port }, { name: 'http-alt', port: port + 1, targetPort: other.port }], endpoints: [{ ip: '127.0.0.6' }, { ip: '127.0.0.7' }] }));
    meshd.writeConfig('other-vs.yaml', ['apiVersion: networking.istio.io/v1', 'kind: VirtualService', 'metadata: {name: other, namespace: other}', 'spec:', '  hosts: [other.other.svc.cluster.local]', '  http:', '  - route:', '    - destination: {host: other.other.svc.cluster.local}', '    timeout: 3s', ''].join('\n'));
    await envoy.waitFor(async () => (await triggers()) >= triggersBefore + 1, { what: 'meshd to process the change', timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 1500)); // past the debounce and any push it could have caused
    assert.equal(await pushes(), pushesBefore, 'nothing was sent to the proxy that does not import the service');
    // The control: an imported service's change does reach it.
    meshd.writeConfig('httpbin.yaml', serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port, targetPort: httpbin.port }], endpoints: [{ ip: '127.0.0.5' }, { ip: '127.0.0.8' }] }));
    await envoy.waitFor(async () => (await pushes()) > pushesBefore, { what: 'the imported change to be pushed', timeoutMs: 10_000 });
    meshd.writeConfig('httpbin.yaml', serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port, targetPort: httpbin.port }], endpoints: [{ ip: '127.0.0.5' }] }));
    meshd.removeConfig('other-vs.yaml');
    meshd.writeConfig('other.yaml', serviceYaml({ name: 'other', namespace: 'other', ports: [{ name: 'http', port, targetPort: other.port }], endpoints: [{ ip: '127.0.0.6' }] }));
  });

  it('importing "other/*" as well makes it reachable again', async () => {
    meshd.writeConfig('sidecar.yaml', sidecar(['./*', 'other/*']));
    await envoy.waitFor(async () => (await get('other.other')).status === 200, { what: 'the other service to be imported', timeoutMs: 10_000 });
    assert.equal((await get('httpbin')).status, 200);
  });

  it('deleting the Sidecar restores access to everything', async () => {
    meshd.writeConfig('sidecar.yaml', sidecar(['./*']));
    await envoy.waitFor(async () => (await get('other.other')).status === 502, { what: 'the restriction to apply', timeoutMs: 10_000 });
    meshd.removeConfig('sidecar.yaml');
    await envoy.waitFor(async () => (await get('other.other')).status === 200, { what: 'access to come back', timeoutMs: 10_000 });
    assert.ok((await clusterNames()).includes(`outbound|${port}||${OTHER_CLUSTER_HOST}`));
  });

  it('an invalid Sidecar is refused, naming the field', async () => {
    meshd.writeConfig('sidecar.yaml', ['apiVersion: networking.istio.io/v1', 'kind: Sidecar', 'metadata: {name: bad, namespace: default}', 'spec:', '  egress:', '  - hosts: ["httpbin"]', ''].join('\n'));
    await envoy.waitFor(() => meshd.records().some((r) => String(r.msg).includes('spec.egress[0].hosts[0]')), { what: 'the refusal', timeoutMs: 10_000 });
    assert.equal((await get('other.other')).status, 200, 'nothing else breaks');
    meshd.removeConfig('sidecar.yaml');
  });
});
