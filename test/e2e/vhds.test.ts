// VHDS through a real Envoy on delta ADS: its route configurations name VHDS and its
// service virtual hosts arrive one by one, so routing works for every host (those added
// after it started too), and a VirtualService edit reaches it as the one virtual host it
// changed: no listener drain, no whole route configuration, a few hundred bytes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startMeshd, MESHD_CLI, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, httpGet, type EnvoyProcess } from '../support/envoy.js';
import { startHttpBackend, freePort, type Backend } from '../support/backends.js';
import { syncDiff, type MeshdDump } from '../../src/inspect/sync-diff.js';

/** Each service has its own backend address; the backends share one port. */
const IPS: Record<string, string> = { alpha: '127.0.0.2', beta: '127.0.0.3', gamma: '127.0.0.4', delta: '127.0.0.5', epsilon: '127.0.0.6', zeta: '127.0.0.7' };

function serviceYaml(name: string, port: number, backendPort: number): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: ${port}, targetPort: ${backendPort}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-a, namespace: default, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: http, port: ${backendPort}}]
endpoints: [{addresses: ["${IPS[name]}"]}]
`;
}

function gammaRoute(to: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gamma, namespace: default}
spec:
  hosts: [gamma]
  http:
  - match: [{uri: {prefix: /pinned}}]
    route: [{destination: {host: gamma}}]
  - route: [{destination: {host: ${to}}}]
`;
}

const ALPHA_ROUTE = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: alpha, namespace: default}
spec:
  hosts: [alpha]
  http:
  - match: [{headers: {x-to: {exact: beta}}}]
    route: [{destination: {host: beta}}]
  - route: [{destination: {host: alpha}}]
`;

describe('VHDS: per-virtual-host route updates to a real Envoy on delta ADS', () => {
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  const backends: Backend[] = [];
  let p1: number;
  let p2: number;
  let p3: number;
  let backendPort: number;

  /** Which backend answered a request for `host` on `port` (`-` when none did). */
  const via = async (host: string, port: number, path = '/', headers: Record<string, string> = {}): Promise<string> => {
    const r = await httpGet(`http://127.0.0.1:${port}${path}`, { headers: { host, ...headers }, timeoutMs: 5000 }).catch(() => undefined);
    return r?.status === 200 ? (r.headers['x-backend'] ?? '?') : `-${r?.status ?? 'none'}`;
  };
  /** meshd's `pilot_xds_pushes` by type (responses sent). */
  const meshdPushes = async (): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    for (const m of (await meshd.monitoring('/metrics')).body.matchAll(/^pilot_xds_pushes\{type="(\w+)"\} (\d+)$/gm)) out.set(m[1]!, Number(m[2]));
    return out;
  };
  const stat = async (name: string): Promise<number> => (await envoy.stats()).get(name) ?? 0;
  const statsMatching = async (re: RegExp): Promise<Map<string, number>> => new Map([...(await envoy.stats())].filter(([k]) => re.test(k)));

  before(async () => {
    backendPort = await freePort('127.0.0.2');
    [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    for (const [name, ip] of Object.entries(IPS)) {
      backends.push(
        await startHttpBackend(name, {
          host: ip,
          port: backendPort,
          handler: (req, res) => {
            req.resume();
            res.writeHead(200, { 'x-backend': name }).end(name);
          },
        }),
      );
    }
    meshd = await startMeshd({
      files: {
        'services.yaml': [serviceYaml('alpha', p1, backendPort), serviceYaml('beta', p1, backendPort), serviceYaml('gamma', p1, backendPort), serviceYaml('delta', p2, backendPort)].join('---\n'),
        'alpha.yaml': ALPHA_ROUTE,
        'gamma.yaml': gammaRoute('gamma'),
      },
    });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'client-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'vhds' });
    await envoy.waitFor(async () => (await via('delta', p2)) === 'delta' && (await via('gamma', p1)) === 'gamma', { what: 'routes on both ports', timeoutMs: 10_000 });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    for (const b of backends) await b.close();
  });

  it('takes the virtual hosts of both route configurations over VHDS, the catch-all inline', async () => {
    const dump = await envoy.configDump();
    const rds = dump.configs.find((c: { '@type': string }) => c['@type'] === 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump');
    const byName = new Map<string, { virtual_hosts: { name: string; domains: string[] }[]; vhds?: unknown }>();
    for (const d of rds.dynamic_route_configs) byName.set(d.route_config.name, d.route_config);
    for (const port of [p1, p2]) {
      const rc = byName.get(String(port));
      assert.ok(rc?.vhds, `route configuration ${port} names VHDS`);
      const names = rc.virtual_hosts.map((v) => v.name).sort();
      const expected = port === p1 ? ['alpha', 'beta', 'gamma'] : ['delta'];
      assert.deepEqual(names, ['block_all', ...expected.map((s) => `${port}/${s}.default.svc.cluster.local:${port}`)].sort(), `route configuration ${port}`);
    }
    // Envoy's own VHDS counters, one scope per route configuration.
    assert.ok((await statsMatching(new RegExp(`vhds\\.${p1}\\.config_reload$`))).size > 0, 'a VHDS subscription for the first port');
    assert.ok([...(await statsMatching(new RegExp(`vhds\\.${p2}\\.config_reload$`))).values()].some((v) => v > 0), 'the second port received its virtual hosts');
  });

  it('routes every host, VirtualService routes included', async () => {
    assert.equal(await via('alpha', p1), 'alpha');
    assert.equal(await via('alpha', p1, '/', { 'x-to': 'beta' }), 'beta');
    assert.equal(await via('alpha.default.svc.cluster.local', p1), 'alpha');
    assert.equal(await via('beta', p1), 'beta');
    assert.equal(await via('gamma', p1), 'gamma');
    assert.equal(await via('delta', p2), 'delta');
    // The catch-all (inline): without capture, unknown hosts get 502 (block_all).
    assert.equal(await via('unknown.example', p1), '-502');
  });

  it('routes hosts added after the proxy started: on a known port and on a new one', async () => {
    meshd.writeConfig('later.yaml', [serviceYaml('epsilon', p1, backendPort), serviceYaml('zeta', p3, backendPort)].join('---\n'));
    await envoy.waitFor(async () => (await via('epsilon', p1)) === 'epsilon', { what: 'the new host on the first port', timeoutMs: 10_000 });
    // A new port is a new listener and route configuration: its virtual hosts follow it.
    await envoy.waitFor(async () => (await via('zeta', p3)) === 'zeta', { what: 'the new host on a new port', timeoutMs: 10_000 });
    assert.equal(await via('alpha', p1), 'alpha', 'the others still route');
  });

  it('applies a VirtualService edit as one virtual host: no listener change, no drain, a few hundred bytes', async () => {
    const listenerName = `127.0.0.1_${p1}`;
    const listenerVersion = async (): Promise<string | undefined> => {
      const dump = await envoy.configDump();
      const lds = dump.configs.find((c: { '@type': string }) => c['@type'].endsWith('ListenersConfigDump'));
      return lds.dynamic_listeners.find((l: { name: string }) => l.name === listenerName)?.active_state?.version_info;
    };
    // Let anything still settling from the last test finish before the counters are read.
    await new Promise((r) => setTimeout(r, 300));
    const before = {
      version: await listenerVersion(),
      modified: await stat('listener_manager.listener_modified'),
      drained: await stat('listener_manager.total_filter_chains_draining'),
      rx: await stat('cluster.xds-grpc.upstream_cx_rx_bytes_total'),
      vhdsReloads: [...(await statsMatching(new RegExp(`vhds\\.${p1}\\.config_reload$`))).values()].reduce((a, b) => a + b, 0),
    };
    assert.ok(before.version, `listener ${listenerName} is active`);
    const pushesBefore = await meshdPushes();
    meshd.writeConfig('gamma.yaml', gammaRoute('beta'));
    await envoy.waitFor(async () => (await via('gamma', p1)) === 'beta', { what: 'the edit to take effect', timeoutMs: 10_000 });
    assert.equal(await via('gamma', p1, '/pinned'), 'gamma', 'the route the edit kept');
    assert.equal(await via('alpha', p1), 'alpha', 'other virtual hosts untouched');
    // Bytes go on arriving after traffic moved (the ACK round trip): wait for them to settle.
    await new Promise((r) => setTimeout(r, 300));
    const rx = (await stat('cluster.xds-grpc.upstream_cx_rx_bytes_total')) - before.rx;
    const pushes = await meshdPushes();
    const sentOf = (t: string): number => (pushes.get(t) ?? 0) - (pushesBefore.get(t) ?? 0);
    const vhdsReloads = [...(await statsMatching(new RegExp(`vhds\\.${p1}\\.config_reload$`))).values()].reduce((a, b) => a + b, 0);
    console.log(`# VirtualService edit: Envoy received ${rx} bytes from meshd (xds-grpc upstream_cx_rx_bytes_total); VHDS reloads +${vhdsReloads - before.vhdsReloads}; meshd sent ${[...pushes.keys()].map((t) => `${t} ${sentOf(t)}`).join(', ')} responses`);
    assert.equal(await listenerVersion(), before.version, 'the listener was not updated');
    assert.equal(await stat('listener_manager.listener_modified'), before.modified, 'no listener modified');
    assert.equal(await stat('listener_manager.total_filter_chains_draining'), before.drained, 'no filter chain draining');
    assert.deepEqual(
      [...pushes.keys()].filter((t) => sentOf(t) > 0),
      ['vhds'],
      'only virtual hosts were sent (no listener, no route configuration)',
    );
    assert.ok(vhdsReloads > before.vhdsReloads, 'the change came over VHDS');
    assert.ok(rx > 0 && rx < 2048, `the edit cost ${rx} bytes`);
  });

  it("proxy-status's comparison: meshd's dump (VHDS virtual hosts merged as Envoy merges them) matches the Envoy's", async () => {
    const syncz = JSON.parse((await meshd.monitoring('/debug/syncz')).body) as { proxy: string }[];
    const id = syncz.find((e) => e.proxy.includes('~client-1.default~'))!.proxy;
    const mine = JSON.parse((await meshd.monitoring(`/debug/config_dump?proxyID=${encodeURIComponent(id)}`)).body) as MeshdDump;
    assert.ok((mine.configs?.vhds ?? []).length >= 5, 'meshd lists the VHDS resources it sent');
    const diff = syncDiff(mine, await envoy.configDump());
    assert.match(diff, /^Clusters Match\nListeners Match\nRoutes Match/, diff);
  });

  it('after meshd restarts, the Envoy reconnects holding its virtual hosts, keeps routing and takes the next edit', async () => {
    // The same files and port: Envoy resumes with initial_resource_versions for its VirtualHosts.
    const files = Object.fromEntries(['services.yaml', 'alpha.yaml', 'gamma.yaml', 'later.yaml'].map((f) => [f, readFileSync(join(meshd.configDir, f), 'utf8')]));
    const port = meshd.grpcPort;
    await meshd.stop();
    meshd = await startMeshd({ files, grpcPort: port });
    await envoy.waitFor(
      async () => {
        const syncz = JSON.parse((await meshd.monitoring('/debug/syncz')).body) as { proxy: string; types: Record<string, { status: string }> }[];
        return syncz.some((e) => e.proxy.includes('~client-1.default~') && e.types.vhds?.status === 'SYNCED' && e.types.rds?.status === 'SYNCED');
      },
      { what: 'the Envoy to reconnect and acknowledge its virtual hosts', timeoutMs: 20_000 },
    );
    assert.equal(await via('gamma', p1), 'beta', 'routing as before the restart');
    assert.equal(await via('zeta', p3), 'zeta');
    meshd.writeConfig('gamma.yaml', gammaRoute('gamma'));
    await envoy.waitFor(async () => (await via('gamma', p1)) === 'gamma', { what: 'an edit after the reconnect', timeoutMs: 10_000 });
  });

  it('Envoy rejected nothing', async () => {
    assert.equal(await envoy.rejectedUpdates(), 0, envoy.logTail(40));
  });
});
