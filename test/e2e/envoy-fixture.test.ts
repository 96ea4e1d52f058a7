// Self-test of the Envoy fixture against the real Envoy binary: static bootstrap, traffic
// through a listener to two backends, admin helpers, and `--mode validate`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  startEnvoy, validateEnvoyConfig, httpGet, envoyBinaryPath, parseStats, ENVOY_VERSION, type EnvoyProcess,
} from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

function staticBootstrap(listenerPort: number, backends: { host: string; port: number }[], routeCluster = 'backends'): object {
  return {
    node: { id: 'fixture-test', cluster: 'fixture-test' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'ingress',
          address: { socket_address: { address: '127.0.0.1', port_value: listenerPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM,
                    stat_prefix: 'ingress',
                    route_config: {
                      name: 'local',
                      virtual_hosts: [
                        { name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: routeCluster } }] },
                      ],
                    },
                    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'backends',
          type: 'STATIC',
          connect_timeout: '1s',
          lb_policy: 'ROUND_ROBIN',
          load_assignment: {
            cluster_name: 'backends',
            endpoints: [
              {
                lb_endpoints: backends.map((b) => ({
                  endpoint: { address: { socket_address: { address: b.host, port_value: b.port } } },
                })),
              },
            ],
          },
        },
      ],
    },
  };
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('envoy binary is provisioned and is 1.40', () => {
  const out = execFileSync(envoyBinaryPath(), ['--version'], { encoding: 'utf8' });
  assert.match(out, new RegExp(`/${ENVOY_VERSION.replaceAll('.', '\\.')}/`));
});

test('static bootstrap: 20 requests through Envoy reach both backends round-robin', async () => {
  const a: Backend = await startHttpBackend('a');
  const b: Backend = await startHttpBackend('b');
  cleanups.push(() => a.close(), () => b.close());
  const listenerPort = await freePort();
  const envoy: EnvoyProcess = await startEnvoy({ name: 'fixture-static', bootstrap: staticBootstrap(listenerPort, [a, b]) });
  cleanups.push(() => envoy.stop());

  assert.ok(envoy.adminPort > 0, 'admin port learned from --admin-address-path');
  assert.equal((await envoy.admin('/ready')).trim(), 'LIVE');
  assert.equal(await envoy.hasActiveListener('ingress'), true);
  assert.equal(await envoy.hasActiveListener('nope'), false);
  assert.ok((await envoy.clusterNames()).includes('backends'));

  const seen = new Map<string, number>();
  for (let i = 0; i < 20; i++) {
    const r = await httpGet(`http://127.0.0.1:${listenerPort}/hello?i=${i}`, { headers: { host: 'example.test' } });
    assert.equal(r.status, 200, `request ${i}: ${r.body}\n${envoy.logTail(20)}`);
    const who = r.headers['x-backend'] ?? '?';
    seen.set(who, (seen.get(who) ?? 0) + 1);
    const body = JSON.parse(r.body) as { backend: string; path: string; headers: Record<string, string> };
    assert.equal(body.backend, who);
    assert.equal(body.path, `/hello?i=${i}`);
    assert.equal(body.headers.host, 'example.test', 'Host header passes through Envoy');
  }
  assert.equal(a.requests.length + b.requests.length, 20);
  assert.ok(a.requests.length >= 5 && b.requests.length >= 5, `uneven split: a=${a.requests.length} b=${b.requests.length}`);
  assert.deepEqual([...seen.keys()].sort(), ['a', 'b']);

  const elapsed = await envoy.waitFor(
    async () => (await envoy.stats()).get('cluster.backends.upstream_rq_total') === 20,
    { timeoutMs: 5000, what: 'cluster.backends.upstream_rq_total == 20' },
  );
  assert.ok(elapsed >= 0);
  assert.equal(await envoy.rejectedUpdates(), 0);

  const dump = await envoy.configDump();
  const types = (dump.configs as { '@type': string }[]).map((c) => c['@type']);
  assert.ok(types.some((t) => t.endsWith('ListenersConfigDump')), types.join(', '));
  assert.match(envoy.logs(), /starting main dispatch loop/);

  await envoy.stop();
  assert.ok(envoy.exitStatus() !== undefined, 'envoy exited after stop()');
});

test('several Envoys run side by side', async () => {
  const [x, y] = await Promise.all([
    startEnvoy({ name: 'side-x', bootstrap: 'admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}\n' }),
    startEnvoy({ name: 'side-y', bootstrap: '{"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}' }),
  ]);
  cleanups.push(() => x.stop(), () => y.stop());
  assert.notEqual(x.adminPort, y.adminPort);
  assert.notEqual(x.baseId, y.baseId);
  assert.equal((await x.admin('/ready')).trim(), 'LIVE');
  assert.equal((await y.admin('/ready')).trim(), 'LIVE');
  await Promise.all([x.stop(), y.stop()]);
});

test('waitFor times out with the description and Envoy log lines', async () => {
  const envoy = await startEnvoy({ name: 'waitfor', bootstrap: {} });
  cleanups.push(() => envoy.stop());
  await assert.rejects(
    envoy.waitFor(() => false, { timeoutMs: 200, what: 'something that never happens' }),
    (err: Error) => /something that never happens/.test(err.message) && /main dispatch loop/.test(err.message),
  );
  await envoy.stop();
});

test('startEnvoy fails fast with the Envoy log when the bootstrap is rejected', async () => {
  const port = await freePort();
  await assert.rejects(
    startEnvoy({ name: 'bad', bootstrap: staticBootstrap(port, [{ host: '127.0.0.1', port: 1 }], 'missing-cluster') }),
    (err: Error) => /exited during startup/.test(err.message) && /unknown cluster 'missing-cluster'/.test(err.message),
  );
});

test('validateEnvoyConfig accepts a good bootstrap', async () => {
  const r = await validateEnvoyConfig(staticBootstrap(10000, [{ host: '127.0.0.1', port: 8080 }]));
  assert.equal(r.ok, true, r.output);
});

test('validateEnvoyConfig rejects a route to an undefined cluster', async () => {
  const r = await validateEnvoyConfig(staticBootstrap(10000, [{ host: '127.0.0.1', port: 8080 }], 'no-such-cluster'));
  assert.equal(r.ok, false);
  assert.match(r.output, /unknown cluster 'no-such-cluster'/);
});

test('validateEnvoyConfig rejects an unknown field', async () => {
  const b = staticBootstrap(10000, [{ host: '127.0.0.1', port: 8080 }]) as { static_resources: { clusters: Record<string, unknown>[] } };
  b.static_resources.clusters[0]!.bogus_field = 1;
  const r = await validateEnvoyConfig(b);
  assert.equal(r.ok, false);
  assert.match(r.output, /bogus_field/);
});

test('parseStats keeps counters and gauges, skips histograms and text readouts', () => {
  const m = parseStats(
    [
      'cluster.a.upstream_rq_total: 7',
      'server.memory_allocated: 123456',
      'cluster_manager.cds.version_text: "v1"',
      'http.ingress.downstream_rq_time: P0(nan,1) P25(nan,1.025)',
      'listener.127.0.0.1_10000.downstream_cx_total: 3',
      '',
    ].join('\n'),
  );
  assert.deepEqual([...m.entries()], [
    ['cluster.a.upstream_rq_total', 7],
    ['server.memory_allocated', 123456],
    ['listener.127.0.0.1_10000.downstream_cx_total', 3],
  ]);
});
