// The push logic of one ADS stream, driven in-process with a recording sink.
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
import { serviceYaml } from '../support/meshd.js';

interface Sent {
  type: string;
  names: string[];
  removed: string[];
  nonce: string;
  version: string;
}

const hooks: ConnectionHooks = { onSent: () => undefined, onAck: () => undefined, onNack: () => undefined, onStaleNonce: () => undefined, onSecretRefused: () => undefined };

function harness(protocol: 'sotw' | 'delta', yaml: string) {
  const store = new ConfigStore();
  const load = (y: string): void => void store.replaceSource('t', parseYamlText(y, 't.yaml').objects);
  load(yaml);
  const generator = new ConfigGenerator();
  generator.update(buildSnapshot(store, 'cluster.local'));
  const sent: Sent[] = [];
  const sink = {
    write: async (bytes: Buffer): Promise<void> => {
      if (protocol === 'sotw') {
        const r = decodeMessage<{ type_url: string; nonce: string; version_info: string; resources?: { value: Uint8Array }[] }>('envoy.service.discovery.v3.DiscoveryResponse', bytes);
        const typeName = r.type_url.slice(r.type_url.indexOf('/') + 1);
        const names = (r.resources ?? []).map((a) => {
          const m = decodeMessage<{ name?: string; cluster_name?: string }>(typeName, a.value);
          return m.name ?? m.cluster_name ?? '';
        });
        sent.push({ type: SHORT_TYPE[r.type_url as TypeUrl], names, removed: [], nonce: r.nonce, version: r.version_info });
      } else {
        const r = decodeMessage<{ type_url: string; nonce: string; system_version_info: string; resources?: { name: string }[]; removed_resources?: string[] }>('envoy.service.discovery.v3.DeltaDiscoveryResponse', bytes);
        sent.push({ type: SHORT_TYPE[r.type_url as TypeUrl], names: (r.resources ?? []).map((x) => x.name), removed: r.removed_resources ?? [], nonce: r.nonce, version: r.system_version_info });
      }
    },
  };
  const proxy = parseProxy('sidecar~10.0.0.1~c-1.default~default.svc.cluster.local', { INTERCEPTION_MODE: 'NONE' });
  const conn = new Connection(proxy, protocol, generator, sink, hooks, 'meshd');
  const update = (y: string): void => {
    const prev = generator.snapshot!;
    load(y);
    conn.schedule(generator.update(buildSnapshot(store, 'cluster.local', prev)));
  };
  return { conn, sent, update };
}

const A = serviceYaml({ name: 'a', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.1' }] });
const B = serviceYaml({ name: 'b', ports: [{ name: 'tcp', port: 3306 }], endpoints: [{ ip: '10.0.0.2' }] });
const clusterA = 'outbound|80||a.default.svc.cluster.local';
const clusterB = 'outbound|3306||b.default.svc.cluster.local';

async function subscribeAll(h: ReturnType<typeof harness>, protocol: 'sotw' | 'delta'): Promise<void> {
  const { conn } = h;
  if (protocol === 'sotw') {
    conn.onSotwRequest(TypeUrl.Cluster, [], '', '', undefined);
    conn.onSotwRequest(TypeUrl.Listener, [], '', '', undefined);
    conn.onSotwRequest(TypeUrl.ClusterLoadAssignment, [clusterA, clusterB], '', '', undefined);
    conn.onSotwRequest(TypeUrl.RouteConfiguration, ['80'], '', '', undefined);
  } else {
    conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, '', undefined);
    conn.onDeltaRequest(TypeUrl.Listener, [], [], {}, '', undefined);
    conn.onDeltaRequest(TypeUrl.ClusterLoadAssignment, [clusterA, clusterB], [], {}, '', undefined);
    conn.onDeltaRequest(TypeUrl.RouteConfiguration, ['80'], [], {}, '', undefined);
  }
  await conn.flush();
}

for (const protocol of ['sotw', 'delta'] as const) {
  describe(`connection (${protocol})`, () => {
    it('pushes in make-before-break order and removes clusters last', async () => {
      const h = harness(protocol, A + '---\n' + B);
      await subscribeAll(h, protocol);
      assert.deepEqual(h.sent.map((s) => s.type), ['cds', 'eds', 'lds', 'rds']);
      h.sent.length = 0;
      h.update(A); // b goes away
      await h.conn.flush();
      const types = h.sent.map((s) => s.type);
      const lds = types.indexOf('lds');
      const lastCds = types.lastIndexOf('cds');
      assert.ok(lds >= 0 && lastCds > lds, `cluster removal must follow the listener update: ${JSON.stringify(h.sent)}`);
      const final = h.sent[lastCds]!;
      if (protocol === 'sotw') {
        assert.ok(!final.names.includes(clusterB));
        assert.ok(h.sent.slice(0, lds).every((s) => s.type !== 'cds' || s.names.includes(clusterB)), 'clusters still used are kept until listeners move');
      } else {
        assert.deepEqual(final.removed, [clusterB]);
      }
    });

    it('sends nothing when nothing changed, and only the changed endpoints otherwise', async () => {
      const h = harness(protocol, A + '---\n' + B);
      await subscribeAll(h, protocol);
      h.sent.length = 0;
      h.update(A + '---\n' + B);
      await h.conn.flush();
      assert.equal(h.sent.length, 0, JSON.stringify(h.sent));
      h.update(A.replace('10.0.0.1', '10.0.0.9') + '---\n' + B);
      await h.conn.flush();
      assert.deepEqual(h.sent.map((s) => [s.type, s.names]), [['eds', [clusterA]]]);
    });

    it('answers unknown route and endpoint names with empty resources', async () => {
      const h = harness(protocol, A);
      if (protocol === 'sotw') {
        h.conn.onSotwRequest(TypeUrl.ClusterLoadAssignment, ['outbound|1||nope.default.svc.cluster.local'], '', '', undefined);
        h.conn.onSotwRequest(TypeUrl.RouteConfiguration, ['9999'], '', '', undefined);
      } else {
        h.conn.onDeltaRequest(TypeUrl.ClusterLoadAssignment, ['outbound|1||nope.default.svc.cluster.local'], [], {}, '', undefined);
        h.conn.onDeltaRequest(TypeUrl.RouteConfiguration, ['9999'], [], {}, '', undefined);
      }
      await h.conn.flush();
      assert.deepEqual(h.sent.map((s) => [s.type, s.names]), [['eds', ['outbound|1||nope.default.svc.cluster.local']], ['rds', ['9999']]]);
    });

    it('does not resend config the proxy rejected', async () => {
      const h = harness(protocol, A);
      await subscribeAll(h, protocol);
      const cds = h.sent.find((s) => s.type === 'cds')!;
      const nack = { code: 3, message: 'bad cluster' };
      if (protocol === 'sotw') h.conn.onSotwRequest(TypeUrl.Cluster, [], cds.nonce, '', nack);
      else h.conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, cds.nonce, nack);
      h.sent.length = 0;
      h.update(A + '\n# a comment changes nothing\n');
      await h.conn.flush();
      assert.deepEqual(h.sent, []);
      assert.equal(h.conn.watches.get(TypeUrl.Cluster)!.nack?.message, 'bad cluster');
      assert.equal(h.conn.watches.get(TypeUrl.Cluster)!.status(), 'STALE');
    });
  });
}

describe('connection (sotw) acknowledgements', () => {
  it('ignores a stale nonce and marks SYNCED on a matching ACK', async () => {
    const h = harness('sotw', A);
    await subscribeAll(h, 'sotw');
    const cds = h.sent.find((s) => s.type === 'cds')!;
    assert.equal(h.conn.onSotwRequest(TypeUrl.Cluster, [], 'old-nonce', '', undefined), false);
    assert.equal(h.conn.watches.get(TypeUrl.Cluster)!.status(), 'STALE');
    assert.equal(h.conn.onSotwRequest(TypeUrl.Cluster, [], cds.nonce, cds.version, undefined), false);
    assert.equal(h.conn.watches.get(TypeUrl.Cluster)!.status(), 'SYNCED');
  });
});

describe('connection distribution state (status)', () => {
  /** ACKs the last response of every type sent so far. */
  const ackAll = (h: ReturnType<typeof harness>): void => {
    const last = new Map<string, Sent>();
    for (const s of h.sent) last.set(s.type, s);
    const byShort = new Map(Object.entries(SHORT_TYPE).map(([url, short]) => [short, url as TypeUrl]));
    for (const [type, s] of last) h.conn.onSotwRequest(byShort.get(type)!, type === 'eds' ? [clusterA, clusterB] : type === 'rds' ? ['80'] : [], s.nonce, s.version, undefined);
  };

  it('is in sync with the newest snapshot once every response is ACKed; a push that changes nothing keeps it so', async () => {
    const h = harness('sotw', A);
    await subscribeAll(h, 'sotw');
    assert.equal(h.conn.settled, false, 'sent, not yet acknowledged');
    assert.equal(h.conn.syncedVersion(1), 0);
    assert.equal(h.conn.acknowledgedAny, false, 'still connecting');
    ackAll(h);
    assert.equal(h.conn.settled, true);
    assert.equal(h.conn.acknowledgedAny, true);
    assert.equal(h.conn.syncedVersion(1), 1);
    // A new snapshot (2) that changes nothing for it: in sync with 2 as soon as the push is done.
    h.sent.length = 0;
    h.update(A + '\n# nothing\n');
    assert.equal(h.conn.syncedVersion(2), 1, 'pending: in sync with the snapshot before');
    await h.conn.flush();
    assert.deepEqual(h.sent, []);
    assert.equal(h.conn.syncedVersion(2), 2);
  });

  it('a change waits for its ACK; a NACK stands as the rejection until a fix is ACKed', async () => {
    const h = harness('sotw', A);
    await subscribeAll(h, 'sotw');
    ackAll(h);
    h.sent.length = 0;
    h.update(A + '---\n' + B); // snapshot 2 adds a cluster
    await h.conn.flush();
    assert.equal(h.conn.syncedVersion(2), 1, 'sent, not acknowledged');
    const cds = h.sent.find((s) => s.type === 'cds')!;
    h.conn.onSotwRequest(TypeUrl.Cluster, [], cds.nonce, '', { code: 3, message: 'bad cluster' });
    assert.equal(h.conn.rejection(), 'cds: bad cluster');
    assert.equal(h.conn.syncedVersion(2), 1);
    h.sent.length = 0;
    h.update(A); // snapshot 3: the cluster goes again
    await h.conn.flush();
    ackAll(h);
    assert.equal(h.conn.rejection(), undefined);
    assert.equal(h.conn.syncedVersion(3), 3);
  });
});
