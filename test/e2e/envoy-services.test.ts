// The core promise, end to end: a stock Envoy started from `meshd bootstrap` gets its
// config from `meshd serve` and carries real HTTP traffic to local backends; editing
// the YAML directory moves the traffic. Run for state-of-the-world and delta ADS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';

/** Upper bound for a YAML edit to change where Envoy sends traffic (debounce is 20 ms in tests). */
const CONVERGENCE_BOUND_MS = 3000;
const HOST = 'web.default.svc.cluster.local';

async function spread(envoy: EnvoyProcess, port: number, n: number, host = HOST): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await httpGet(`http://127.0.0.1:${port}/spread/${i}`, { headers: { host }, timeoutMs: 5000 });
    const who = r.status === 200 ? r.headers['x-backend'] ?? '?' : `status-${r.status}`;
    seen.set(who, (seen.get(who) ?? 0) + 1);
  }
  return seen;
}

for (const mode of ['sotw', 'delta'] as const) {
  describe(`Envoy over ${mode} ADS reaches services through meshd`, () => {
    let meshd: MeshdProcess;
    let envoy: EnvoyProcess;
    const backends: Backend[] = [];
    let backendPort: number;
    let servicePort: number;

    const config = (ips: string[]): string =>
      serviceYaml({
        name: 'web',
        clusterIP: '10.96.7.7',
        ports: [{ name: 'http', port: servicePort, targetPort: backendPort }],
        endpoints: ips.map((ip, i) => ({ ip, pod: `web-${i}` })),
      });

    before(async () => {
      // One port on several loopback addresses: one EndpointSlice port serves all endpoints.
      backendPort = await freePort('127.0.0.2');
      servicePort = await freePort();
      for (const [i, ip] of ['127.0.0.2', '127.0.0.3', '127.0.0.4'].entries()) backends.push(await startHttpBackend(`web-${i}`, { host: ip, port: backendPort }));
      meshd = await startMeshd({ files: { 'web.yaml': config(['127.0.0.2', '127.0.0.3']) } });
      const bootstrap = execFileSync(process.execPath, [
        MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', `client-${mode}`, '--namespace', 'default',
        '--labels', 'app=client', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', ...(mode === 'delta' ? ['--delta'] : []),
      ], { encoding: 'utf8' });
      envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: `services-${mode}` });
      await envoy.waitFor(() => envoy.hasActiveListener(`127.0.0.1_${servicePort}`), { what: 'the outbound listener', timeoutMs: 10_000 });
    });

    after(async () => {
      await envoy?.stop();
      await meshd?.stop();
      for (const b of backends) await b.close();
    });

    it('speaks the protocol the bootstrap asked for', async () => {
      const syncz = JSON.parse((await meshd.monitoring('/debug/syncz')).body) as { protocol: string; types: Record<string, { status: string }> }[];
      assert.equal(syncz.length, 1);
      assert.equal(syncz[0]!.protocol, mode);
      for (const t of ['cds', 'eds', 'lds', 'rds']) assert.equal(syncz[0]!.types[t]?.status, 'SYNCED', `${t}: ${JSON.stringify(syncz[0]!.types[t])}`);
    });

    it('balances requests over both backends, by every service name', async () => {
      const seen = await spread(envoy, servicePort, 40);
      assert.deepEqual([...seen.keys()].sort(), ['web-0', 'web-1'], JSON.stringify([...seen]));
      for (const host of ['web', `web:${servicePort}`, 'web.default', 'web.default.svc', '10.96.7.7']) {
        const r = await httpGet(`http://127.0.0.1:${servicePort}/`, { headers: { host } });
        assert.equal(r.status, 200, `Host: ${host}`);
      }
      const unknown = await httpGet(`http://127.0.0.1:${servicePort}/`, { headers: { host: 'nowhere.example' } });
      assert.notEqual(unknown.status, 200, 'an unknown host must not reach a backend');
    });

    it('adding a backend in the YAML sends traffic to it within the bound', async () => {
      const start = Date.now();
      meshd.writeConfig('web.yaml', config(['127.0.0.2', '127.0.0.3', '127.0.0.4']));
      await envoy.waitFor(async () => (await spread(envoy, servicePort, 6)).has('web-2'), { what: 'traffic to the new backend', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 20 });
      const elapsed = Date.now() - start;
      console.log(`# ${mode}: new backend received traffic ${elapsed} ms after the YAML edit`);
      assert.ok(elapsed < CONVERGENCE_BOUND_MS);
    });

    it('removing a backend takes it out of rotation within the bound', async () => {
      const start = Date.now();
      meshd.writeConfig('web.yaml', config(['127.0.0.3', '127.0.0.4']));
      await envoy.waitFor(async () => !(await spread(envoy, servicePort, 8)).has('web-0'), { what: 'the removed backend to get no traffic', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 20 });
      console.log(`# ${mode}: removed backend out of rotation ${Date.now() - start} ms after the YAML edit`);
      const before0 = backends[0]!.requests.length;
      const seen = await spread(envoy, servicePort, 30);
      assert.deepEqual([...seen.keys()].sort(), ['web-1', 'web-2']);
      assert.equal(backends[0]!.requests.length, before0);
    });

    it('an endpoint-only change is pushed as endpoints only', async () => {
      const stats = await envoy.stats();
      const cds = stats.get('cluster_manager.cds.update_success') ?? 0;
      const lds = stats.get('listener_manager.lds.update_success') ?? 0;
      meshd.writeConfig('web.yaml', config(['127.0.0.3']));
      await envoy.waitFor(async () => !(await spread(envoy, servicePort, 6)).has('web-2'), { what: 'endpoint removal', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 20 });
      const after = await envoy.stats();
      assert.equal(after.get('cluster_manager.cds.update_success'), cds, 'no CDS update for an endpoint change');
      assert.equal(after.get('listener_manager.lds.update_success'), lds, 'no LDS update for an endpoint change');
    });

    it('removing the service removes its listener and cluster', async () => {
      // Deleting the file removes its objects (a file emptied in place keeps its last good content).
      meshd.removeConfig('web.yaml');
      await envoy.waitFor(async () => !(await envoy.clusterNames()).includes(`outbound|${servicePort}||${HOST}`), { what: 'cluster removal', timeoutMs: CONVERGENCE_BOUND_MS });
      await envoy.waitFor(async () => !(await envoy.hasActiveListener(`127.0.0.1_${servicePort}`)), { what: 'listener removal', timeoutMs: CONVERGENCE_BOUND_MS });
      meshd.writeConfig('web.yaml', config(['127.0.0.2']));
      await envoy.waitFor(async () => (await spread(envoy, servicePort, 2)).has('web-0'), { what: 'the service to come back', timeoutMs: CONVERGENCE_BOUND_MS, intervalMs: 50 });
    });

    it('Envoy rejected no update', async () => {
      assert.equal(await envoy.rejectedUpdates(), 0);
      const metrics = (await meshd.monitoring('/metrics')).body;
      assert.doesNotMatch(metrics, /pilot_total_xds_rejects\{[^}]*\} [1-9]/);
    });
  });
}
