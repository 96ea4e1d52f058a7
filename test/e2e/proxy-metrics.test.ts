// Proxy metrics through a real Envoy bootstrapped by `meshd bootstrap`: its 15090-style listener
// serves Envoy's stats in Prometheus text, and the stats of Istio-named clusters carry the
// service, port, subset and direction as labels (parsed from `outbound|80|v1|host`), so a
// dashboard can count requests per service from stock Envoy.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { startMeshd, serviceYaml, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, httpRequest, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';

const HOST = 'httpbin.default.svc.cluster.local';

/** The value of the one sample of `metric` whose labels include all of `labels`. */
function sample(text: string, metric: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const body = line.slice(metric.length + 1, line.lastIndexOf('}'));
    const have = new Map([...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('proxy metrics: Prometheus text on the stats port, labelled by service', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let httpbin: Backend;
  let port: number;
  let statsPort: number;

  const scrape = async (path = '/stats/prometheus'): Promise<{ status: number; body: string }> => httpGet(`http://127.0.0.1:${statsPort}${path}`, { timeoutMs: 5000 });

  before(async () => {
    httpbin = await startHttpBackend('httpbin-0', { host: '127.0.0.5' });
    port = await freePort();
    statsPort = await freePort();
    meshd = await startMeshd({ files: { 'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port, targetPort: httpbin.port }], endpoints: [{ ip: '127.0.0.5' }] }) } });
    const adminPort = await freePort();
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'sleep-1', '--interception', 'NONE', '--admin-port', String(adminPort), '--readiness-port', '0', '--prometheus-port', String(statsPort)], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'proxy-metrics' });
    await envoy.waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/get`, { headers: { host: 'httpbin' } }).catch(() => undefined))?.status === 200, { what: 'the route to httpbin', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    await httpbin?.close();
  });

  it('counts the requests to a service under its own labels', async () => {
    const labels = { cluster_name: `outbound|${port}||${HOST}`, direction: 'outbound', service: HOST, service_port: String(port), subset: '' };
    const before = sample((await scrape()).body, 'envoy_cluster_upstream_rq_total', labels) ?? 0;
    for (let i = 0; i < 7; i++) assert.equal((await httpGet(`http://127.0.0.1:${port}/get`, { headers: { host: 'httpbin' } })).status, 200);
    const r = await scrape();
    assert.equal(r.status, 200);
    assert.equal(sample(r.body, 'envoy_cluster_upstream_rq_total', labels), before + 7, 'seven requests counted for httpbin');
    // Response codes keep Envoy's own label; the name has no cluster in it.
    assert.ok((sample(r.body, 'envoy_cluster_upstream_rq', { ...labels, envoy_response_code: '200' }) ?? 0) >= 7);
    assert.doesNotMatch(r.body, /^envoy_cluster_outbound_/m, 'no metric name carries a cluster name');
    // A cluster that is not Istio-named is labelled by its name alone.
    assert.ok(sample(r.body, 'envoy_cluster_upstream_cx_total', { cluster_name: 'xds-grpc' }) !== undefined);
  });

  it('serves only the Prometheus page: the rest of the admin API is not reachable through it', async () => {
    assert.equal((await scrape('/config_dump')).status, 404);
    assert.equal((await scrape('/quitquitquit')).status, 404);
    assert.equal((await httpRequest(`http://127.0.0.1:${statsPort}/stats/prometheus`, { method: 'POST' })).status, 404);
    assert.equal(envoy.exitStatus(), undefined, 'Envoy is still running');
  });
});
