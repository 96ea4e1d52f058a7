// What hostile or broken clients cannot do to the ADS side, driven in-process: a failed
// push is not lost, a repeated NACK is counted once, a slow flush does not hold a push
// slot, a departed proxy's translation is released, new streams are admitted at a rate.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseProxy } from '../../src/model/proxy.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { Connection, MAX_NACK_MESSAGE, type ConnectionHooks } from '../../src/xds/connection.js';
import { PushQueue } from '../../src/xds/push-queue.js';
import { AdmissionRefused, StreamAdmission } from '../../src/xds/admission.js';
import { TypeUrl } from '../../src/translate/types.js';
import { serviceYaml } from '../support/meshd.js';

const YAML = serviceYaml({ name: 'a', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.1' }] });

function generatorWith(yaml: string): ConfigGenerator {
  const store = new ConfigStore();
  store.replaceSource('t', parseYamlText(yaml, 't.yaml').objects);
  const generator = new ConfigGenerator();
  generator.update(buildSnapshot(store, 'cluster.local'));
  return generator;
}

function recordingHooks(): ConnectionHooks & { nacks: string[] } {
  const nacks: string[] = [];
  return { nacks, onSent: () => undefined, onAck: () => undefined, onNack: (_c, _t, m) => void nacks.push(m), onStaleNonce: () => undefined, onSecretRefused: () => undefined };
}

function proxy(i = 1, metadata: Record<string, unknown> = {}) {
  return parseProxy(`sidecar~10.0.0.${i}~c-${i}.default~default.svc.cluster.local`, { INTERCEPTION_MODE: 'NONE', ...metadata });
}

describe('a push that fails is not lost', () => {
  it('keeps the push pending when building it throws, and sends it on the next flush', async () => {
    const generator = generatorWith(YAML);
    const written: Buffer[] = [];
    const conn = new Connection(proxy(), 'delta', generator, { write: async (b) => void written.push(b) }, recordingHooks(), 'meshd');
    const real = generator.resourcesFor.bind(generator);
    let failures = 1;
    generator.resourcesFor = (ctx) => {
      if (failures-- > 0) throw new Error('translation failed');
      return real(ctx);
    };
    assert.ok(conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, '', undefined));
    await assert.rejects(conn.flush(), /translation failed/);
    assert.equal(conn.hasPending, true, 'the failed push is pending again');
    await conn.flush();
    assert.equal(written.length, 1, 'the retry sends the clusters');
    assert.equal(conn.hasPending, false);
  });
});

describe('NACKs', () => {
  it('records, logs and counts a NACK of one nonce once, with its message bounded', async () => {
    const generator = generatorWith(YAML);
    const hooks = recordingHooks();
    const conn = new Connection(proxy(), 'delta', generator, { write: async () => undefined }, hooks, 'meshd');
    conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, '', undefined);
    await conn.flush();
    const nonce = conn.watches.get(TypeUrl.Cluster)!.lastNonce;
    const huge = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 200; i++) conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, nonce, { code: 13, message: huge });
    assert.equal(hooks.nacks.length, 1, 'one NACK per nonce');
    assert.ok(hooks.nacks[0]!.length < MAX_NACK_MESSAGE + 64, `the message is cut to ~${MAX_NACK_MESSAGE} characters (got ${hooks.nacks[0]!.length})`);
    assert.match(hooks.nacks[0]!, /more characters/);
    // A NACK naming a nonce meshd never sent is stale, not a rejection.
    conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, 'forged-nonce', { code: 13, message: 'no' });
    assert.equal(hooks.nacks.length, 1);
  });

  it('in SotW too', async () => {
    const generator = generatorWith(YAML);
    const hooks = recordingHooks();
    const conn = new Connection(proxy(), 'sotw', generator, { write: async () => undefined }, hooks, 'meshd');
    conn.onSotwRequest(TypeUrl.Cluster, [], '', '', undefined);
    await conn.flush();
    const nonce = conn.watches.get(TypeUrl.Cluster)!.lastNonce;
    for (let i = 0; i < 50; i++) conn.onSotwRequest(TypeUrl.Cluster, [], nonce, '', { code: 13, message: `bad ${i}` });
    assert.equal(hooks.nacks.length, 1);
  });
});

describe('memory a proxy held', () => {
  it('is released when its last stream ends', async () => {
    const generator = generatorWith(YAML);
    const conns: Connection[] = [];
    for (let i = 1; i <= 20; i++) {
      const c = new Connection(proxy(i, { LABELS: { app: `app-${i}`, big: 'y'.repeat(10_000) } }), 'delta', generator, { write: async () => undefined }, recordingHooks(), 'meshd');
      c.onDeltaRequest(TypeUrl.Cluster, [], [], {}, '', undefined);
      await c.flush();
      conns.push(c);
    }
    assert.equal(generator.held().contexts, 20);
    assert.ok(generator.held().views >= 1);
    for (const c of conns.slice(1)) c.close();
    assert.equal(generator.held().contexts, 1, 'only the connected proxy is held');
    conns[0]!.close();
    assert.deepEqual(generator.held(), { contexts: 0, classes: 0, views: 0 });
  });

  it('is shared while two proxies of one class are connected', () => {
    const generator = generatorWith(YAML);
    const a = new Connection(proxy(1, { LABELS: { app: 'x' } }), 'delta', generator, { write: async () => undefined }, recordingHooks(), 'meshd');
    const b = new Connection(proxy(1, { LABELS: { app: 'x' } }), 'delta', generator, { write: async () => undefined }, recordingHooks(), 'meshd');
    generator.resourcesFor(a.ctx);
    a.close();
    assert.equal(generator.held().contexts, 1);
    assert.equal(generator.held().views, 1);
    b.close();
    assert.equal(generator.held().contexts, 0);
  });
});

describe('push slots', () => {
  it('a flush that does not finish gives up its slot after the slot timeout', async () => {
    const started: string[] = [];
    const make = (name: string, forever: boolean) => {
      let pending = true;
      return {
        name,
        get hasPending() {
          return pending;
        },
        detached: false,
        flush: () => {
          pending = false;
          started.push(name);
          return forever ? new Promise<void>(() => undefined) : Promise.resolve();
        },
      };
    };
    const q = new PushQueue<ReturnType<typeof make>>({ concurrency: 2, slotTimeoutMs: 50, onError: () => undefined });
    q.enqueue(make('stuck-1', true));
    q.enqueue(make('stuck-2', true));
    q.enqueue(make('fresh', false));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(started, ['stuck-1', 'stuck-2'], 'both slots are taken');
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(started.includes('fresh'), 'the fresh proxy is flushed once the stuck ones outlive their slots');
    assert.equal(q.overdue, 2);
  });
});

describe('stream admission', () => {
  it('admits a burst, queues the rest in order at the rate, refuses beyond the queue', async () => {
    let t = 0;
    const a = new StreamAdmission({ ratePerSecond: 100, burst: 2, maxQueue: 3, now: () => t });
    const admitted: number[] = [];
    for (let i = 0; i < 5; i++) a.admit(() => admitted.push(i));
    assert.deepEqual(admitted, [0, 1]);
    assert.equal(a.waiting, 3);
    assert.throws(() => a.admit(() => undefined), AdmissionRefused);
    t = 20; // two tokens' worth (the burst caps what accrues)
    await new Promise((r) => setTimeout(r, 40));
    assert.deepEqual(admitted, [0, 1, 2, 3]);
    t = 40;
    await new Promise((r) => setTimeout(r, 40));
    assert.deepEqual(admitted, [0, 1, 2, 3, 4]);
    a.stop();
  });

  it('forgets a stream that closed while waiting', () => {
    const a = new StreamAdmission({ ratePerSecond: 1, burst: 1, maxQueue: 10, now: () => 0 });
    a.admit(() => undefined);
    const withdraw = a.admit(() => assert.fail('a withdrawn stream is never admitted'));
    assert.equal(a.waiting, 1);
    withdraw();
    assert.equal(a.waiting, 0);
    a.stop();
  });
});
