// VHDS for delta sidecars: the translation's split, and what one stream is sent (driven
// in-process with a recording sink, as connection.test.ts does).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseProxy } from '../../src/model/proxy.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { Connection, type ConnectionHooks } from '../../src/xds/connection.js';
import { decodeMessage } from '../../src/xds/wire.js';
import { SHORT_TYPE, TypeUrl } from '../../src/translate/types.js';
import { routeOfVirtualHost, splitVirtualHosts, VHDS_OVER_ADS } from '../../src/translate/virtual-hosts.js';
import { supportsVhdsOverAds } from '../../src/xds/vhds-support.js';
import { serviceYaml } from '../support/meshd.js';

const hooks: ConnectionHooks = { onSent: () => undefined, onAck: () => undefined, onNack: () => undefined, onStaleNonce: () => undefined, onSecretRefused: () => undefined };

interface Sent {
  type: string;
  names: string[];
  removed: string[];
}

function harness(yaml: string, vhds = true) {
  const store = new ConfigStore();
  const load = (y: string): void => void store.replaceSource('t', parseYamlText(y, 't.yaml').objects);
  load(yaml);
  const generator = new ConfigGenerator();
  generator.update(buildSnapshot(store, 'cluster.local'));
  const sent: Sent[] = [];
  const sink = {
    write: async (bytes: Buffer): Promise<void> => {
      const r = decodeMessage<{ type_url: string; resources?: { name: string }[]; removed_resources?: string[] }>('envoy.service.discovery.v3.DeltaDiscoveryResponse', bytes);
      sent.push({ type: SHORT_TYPE[r.type_url as TypeUrl], names: (r.resources ?? []).map((x) => x.name), removed: r.removed_resources ?? [] });
    },
  };
  const proxy = parseProxy('sidecar~10.0.0.1~c-1.default~default.svc.cluster.local', { INTERCEPTION_MODE: 'NONE' });
  if (vhds) proxy.vhds = true;
  const conn = new Connection(proxy, 'delta', generator, sink, hooks, 'meshd');
  const update = (y: string): void => {
    const prev = generator.snapshot!;
    load(y);
    conn.schedule(generator.update(buildSnapshot(store, 'cluster.local', prev)));
  };
  return { conn, sent, update, generator };
}

const svc = (name: string, port = 80): string => serviceYaml({ name, ports: [{ name: 'http', port }], endpoints: [{ ip: '10.0.0.1' }] });
const vs = (host: string, to: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${host}, namespace: default}
spec:
  hosts: [${host}]
  http:
  - route: [{destination: {host: ${to}}}]
`;
const MESH = [svc('a'), svc('b'), svc('c'), vs('a', 'b'), vs('c', 'c')].join('---\n');
const vh = (name: string, port = 80): string => `${port}/${name}.default.svc.cluster.local:${port}`;

async function subscribe(h: ReturnType<typeof harness>, routes: string[]): Promise<void> {
  h.conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, '', undefined);
  h.conn.onDeltaRequest(TypeUrl.Listener, [], [], {}, '', undefined);
  h.conn.onDeltaRequest(TypeUrl.RouteConfiguration, routes, [], {}, '', undefined);
  // Envoy's VHDS watches over ADS name nothing: the wildcard.
  h.conn.onDeltaRequest(TypeUrl.VirtualHost, [], [], {}, '', undefined);
  await h.conn.flush();
}

describe('VHDS translation', () => {
  it('moves every virtual host but the catch-all out of the route configuration, named <route>/<virtual host>', () => {
    const routes = [
      {
        name: '80',
        body: {
          name: '80',
          virtual_hosts: [
            { name: 'b.default.svc.cluster.local:80', domains: ['b'] },
            { name: 'a.default.svc.cluster.local:80', domains: ['a'] },
            { name: 'allow_any', domains: ['*'] },
          ],
          validate_clusters: false,
        },
      },
    ];
    const out = splitVirtualHosts(routes);
    assert.deepEqual(out.routes, [{ name: '80', body: { name: '80', virtual_hosts: [{ name: 'allow_any', domains: ['*'] }], validate_clusters: false, vhds: VHDS_OVER_ADS } }]);
    assert.deepEqual(
      out.virtualHosts.map((v) => [v.name, v.body.name, v.body.domains]),
      [
        ['80/a.default.svc.cluster.local:80', '80/a.default.svc.cluster.local:80', ['a']],
        ['80/b.default.svc.cluster.local:80', '80/b.default.svc.cluster.local:80', ['b']],
      ],
    );
    assert.equal(routeOfVirtualHost('80/a.default.svc.cluster.local:80'), '80');
  });

  it('gives a delta sidecar with VHDS its own class; without, whole route configurations', () => {
    const withVhds = harness(MESH);
    const without = harness(MESH, false);
    assert.notEqual(withVhds.conn.ctx.classKey, without.conn.ctx.classKey);
    const a = withVhds.generator.resourcesForProxy(withVhds.conn.proxy);
    const b = without.generator.resourcesForProxy(without.conn.proxy);
    assert.deepEqual(
      a[TypeUrl.VirtualHost].map((r) => r.name),
      ['a', 'b', 'c'].map((n) => vh(n)),
    );
    assert.equal(b[TypeUrl.VirtualHost].length, 0);
    assert.equal((b[TypeUrl.RouteConfiguration][0]!.body.virtual_hosts as unknown[]).length, 4);
  });
});

describe('which clients get VHDS', () => {
  it('an Envoy from 1.38 on; older Envoys, other clients and clients that give no version keep whole routes', () => {
    const envoy = (major: number, minor: number) => ({ user_agent_name: 'envoy', user_agent_build_version: { version: { major_number: major, minor_number: minor } } });
    assert.equal(supportsVhdsOverAds(envoy(1, 40)), true);
    assert.equal(supportsVhdsOverAds(envoy(1, 38)), true);
    assert.equal(supportsVhdsOverAds(envoy(2, 0)), true);
    assert.equal(supportsVhdsOverAds(envoy(1, 37)), false);
    assert.equal(supportsVhdsOverAds(envoy(1, 28)), false);
    assert.equal(supportsVhdsOverAds({ user_agent_name: 'envoy' }), false);
    assert.equal(supportsVhdsOverAds({ user_agent_name: 'grpc-node-js', user_agent_build_version: { version: { major_number: 1, minor_number: 40 } } }), false);
    assert.equal(supportsVhdsOverAds(undefined), false);
  });
});

describe('VHDS on a delta stream', () => {
  it('sends the virtual hosts after their route configuration', async () => {
    const h = harness(MESH);
    await subscribe(h, ['80']);
    const types = h.sent.map((s) => s.type);
    assert.ok(types.indexOf('vhds') > types.indexOf('rds'), JSON.stringify(h.sent));
    assert.deepEqual(h.sent.find((s) => s.type === 'vhds')!.names, ['a', 'b', 'c'].map((n) => vh(n)));
  });

  it('holds back the virtual hosts of a route configuration not yet sent (Envoy would drop them)', async () => {
    const h = harness(MESH + '---\n' + svc('d', 8080));
    await subscribe(h, ['80']);
    const first = h.sent.filter((s) => s.type === 'vhds').flatMap((s) => s.names);
    assert.ok(!first.some((n) => n.startsWith('8080/')), `nothing of 8080 before its route configuration: ${first.join(', ')}`);
    h.sent.length = 0;
    // The listener for 8080 asks for its route configuration: it and then its virtual hosts go.
    h.conn.onDeltaRequest(TypeUrl.RouteConfiguration, ['8080'], [], {}, '', undefined);
    await h.conn.flush();
    assert.deepEqual(
      h.sent.map((s) => [s.type, s.names]),
      [
        ['rds', ['8080']],
        ['vhds', [vh('d', 8080)]],
      ],
    );
  });

  it('sends a VirtualService edit as the one virtual host it changed', async () => {
    const h = harness(MESH);
    await subscribe(h, ['80']);
    h.sent.length = 0;
    h.update([svc('a'), svc('b'), svc('c'), vs('a', 'b'), vs('c', 'a')].join('---\n'));
    await h.conn.flush();
    assert.deepEqual(
      h.sent.map((s) => [s.type, s.names, s.removed]),
      [['vhds', [vh('c')], []]],
    );
  });

  it('sends a new service as its virtual host, and a deleted one as a removal', async () => {
    const h = harness(MESH);
    await subscribe(h, ['80']);
    h.sent.length = 0;
    h.update(MESH + '---\n' + svc('e'));
    await h.conn.flush();
    assert.deepEqual(
      h.sent.filter((s) => s.type === 'vhds' || s.type === 'rds').map((s) => [s.type, s.names, s.removed]),
      [['vhds', [vh('e')], []]],
    );
    h.sent.length = 0;
    h.update(MESH);
    await h.conn.flush();
    assert.deepEqual(
      h.sent.filter((s) => s.type === 'vhds' || s.type === 'rds').map((s) => [s.type, s.names, s.removed]),
      [['vhds', [], [vh('e')]]],
    );
  });

  it('sends the virtual hosts again to a route configuration watched anew (Envoy made a new VHDS watch)', async () => {
    const h = harness(MESH);
    await subscribe(h, ['80']);
    h.conn.onDeltaRequest(TypeUrl.RouteConfiguration, [], ['80'], {}, '', undefined);
    await h.conn.flush();
    h.sent.length = 0;
    h.conn.onDeltaRequest(TypeUrl.RouteConfiguration, ['80'], [], {}, '', undefined);
    await h.conn.flush();
    assert.deepEqual(
      h.sent.map((s) => [s.type, s.names]),
      [
        ['rds', ['80']],
        ['vhds', ['a', 'b', 'c'].map((n) => vh(n))],
      ],
    );
  });

  it('sends only what differs to a proxy that reconnects holding virtual hosts', async () => {
    const first = harness(MESH);
    await subscribe(first, ['80']);
    const held = first.conn.watches.get(TypeUrl.VirtualHost)!.subscription;
    // It holds every virtual host but c's.
    const versions = Object.fromEntries([...held.heldEntries()].filter(([n]) => n !== vh('c')).map(([n, e]) => [n, typeof e === 'string' ? e : e.version]));
    const rdsHeld = first.conn.watches.get(TypeUrl.RouteConfiguration)!.subscription;
    const rdsVersions = Object.fromEntries([...rdsHeld.heldEntries()].map(([n, e]) => [n, typeof e === 'string' ? e : e.version]));
    const h = harness(MESH);
    h.conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, '', undefined);
    h.conn.onDeltaRequest(TypeUrl.Listener, [], [], {}, '', undefined);
    h.conn.onDeltaRequest(TypeUrl.RouteConfiguration, ['80'], [], rdsVersions, '', undefined);
    h.conn.onDeltaRequest(TypeUrl.VirtualHost, ['*'], [], versions, '', undefined);
    await h.conn.flush();
    assert.deepEqual(h.sent.find((s) => s.type === 'vhds')?.names, [vh('c')]);
  });
});
