// The leader elector's state machine on virtual time, against an in-memory Lease API with the
// API server's optimistic concurrency (a write with a stale resourceVersion gets 409).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { LeaderElector, microTime, type Lease, type LeaseApi } from '../../src/kube/leader-election.js';
import type { Clock } from '../../src/util/clock.js';
import { KubeApiError } from '../../src/kube/client.js';
import { silentLogger } from '../../src/util/log.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
};

class FakeClock implements Clock {
  t = Date.parse('2030-01-01T00:00:00Z');
  private seq = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }
  /** Moves time forward by `ms`, firing timers in order and letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
    await flush();
  }
  /** Advances in small steps until `cond` holds; returns the time it took. */
  async until(cond: () => boolean, maxMs: number, stepMs = 10): Promise<number> {
    const start = this.t;
    while (!cond()) {
      if (this.t - start > maxMs) throw new Error(`condition not met within ${maxMs} ms of virtual time`);
      await this.advance(stepMs);
    }
    return this.t - start;
  }
}

/** One Lease store; each replica gets its own view, which can be cut off from it. */
class FakeServer {
  lease: Lease | undefined;
  private rv = 0;
  writes = 0;
  view(): LeaseApi & { down: boolean } {
    const conflict = (): KubeApiError => new KubeApiError(409, '/leases', 'the object has been modified');
    const copy = <T>(x: T): T => structuredClone(x);
    const v = {
      down: false,
      get: async (_ns: string, _name: string): Promise<Lease | undefined> => {
        if (v.down) throw new Error('connect ECONNREFUSED');
        return this.lease ? copy(this.lease) : undefined;
      },
      create: async (_ns: string, lease: Lease): Promise<Lease> => {
        if (v.down) throw new Error('connect ECONNREFUSED');
        if (this.lease) throw conflict();
        return this.store(lease);
      },
      replace: async (_ns: string, lease: Lease): Promise<Lease> => {
        if (v.down) throw new Error('connect ECONNREFUSED');
        if (!this.lease || lease.metadata.resourceVersion !== this.lease.metadata.resourceVersion) throw conflict();
        return this.store(lease);
      },
    };
    return v;
  }
  store(lease: Lease): Lease {
    this.writes++;
    this.lease = structuredClone({ ...lease, metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } });
    return structuredClone(this.lease);
  }
}

function replica(server: FakeServer, clock: FakeClock, id: string, extra: { random?: () => number } = {}) {
  const api = server.view();
  const registry = new Registry();
  const events: string[] = [];
  const elector = new LeaderElector({
    leases: api,
    namespace: 'istio-system',
    identity: id,
    log: silentLogger,
    registry,
    clock,
    random: extra.random ?? (() => 0.5),
    onStartedLeading: () => void events.push('started'),
    onStoppedLeading: () => void events.push('stopped'),
  });
  const gauge = async (): Promise<number> => Number(/^meshd_leader (\d+)$/m.exec(await registry.metrics())?.[1]);
  return { elector, api, events, gauge };
}

describe('LeaderElector (virtual time)', () => {
  it('defaults: 15 s lease, 10 s renew deadline, 2 s retry; MicroTime has microseconds', () => {
    const e = new LeaderElector({ leases: new FakeServer().view(), namespace: 'ns', log: silentLogger });
    assert.deepEqual([e.leaseDurationMs, e.renewDeadlineMs, e.retryPeriodMs, e.name], [15_000, 10_000, 2_000, 'meshd-leader']);
    assert.match(e.identity, /_[0-9a-f]{8}$/);
    assert.equal(microTime(Date.parse('2030-01-01T00:00:01.234Z')), '2030-01-01T00:00:01.234000Z');
    assert.throws(() => new LeaderElector({ leases: new FakeServer().view(), namespace: 'ns', log: silentLogger, leaseDurationMs: 5000, renewDeadlineMs: 5000 }), /renew deadline/);
  });

  it('one of two replicas leads, renews, and keeps the lease while alive', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    const a = replica(server, clock, 'a');
    const b = replica(server, clock, 'b');
    a.elector.start();
    await clock.advance(1);
    b.elector.start();
    await clock.advance(60_000);
    assert.equal(a.elector.isLeader, true);
    assert.equal(b.elector.isLeader, false);
    assert.deepEqual([a.elector.state, b.elector.state], ['leading', 'following']);
    assert.deepEqual(a.events, ['started']);
    assert.deepEqual(b.events, []);
    assert.equal(await a.gauge(), 1);
    assert.equal(await b.gauge(), 0);
    const spec = server.lease!.spec!;
    assert.equal(spec.holderIdentity, 'a');
    assert.equal(spec.leaseDurationSeconds, 15);
    assert.equal(spec.leaseTransitions, 0);
    assert.ok(clock.now() - Date.parse(spec.renewTime!) <= 2_000, 'renewed every retry period');
    assert.ok(server.writes >= 29 && server.writes <= 31, `one write per renewal, got ${server.writes}`);
    assert.equal(b.elector.status().holder, 'a');
    await Promise.all([a.elector.stop(), b.elector.stop()]);
  });

  it('replicas starting together on no Lease: exactly one wins the create', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    const rs = ['a', 'b', 'c'].map((id) => replica(server, clock, id));
    for (const r of rs) r.elector.start();
    await clock.advance(20_000);
    assert.equal(rs.filter((r) => r.elector.isLeader).length, 1);
    assert.equal(rs.filter((r) => r.events.length > 0).length, 1);
    await Promise.all(rs.map((r) => r.elector.stop()));
  });

  it('a leader cut off stops leading at the renew deadline; the other takes over only after the lease duration', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    const a = replica(server, clock, 'a');
    const b = replica(server, clock, 'b');
    a.elector.start();
    await clock.advance(1);
    b.elector.start();
    await clock.advance(5_000);
    assert.equal(a.elector.isLeader, true);
    const lastRenew = Date.parse(server.lease!.spec!.renewTime!);
    a.api.down = true;
    await clock.until(() => !a.elector.isLeader, 15_000);
    const stoppedAfter = clock.now() - lastRenew;
    assert.ok(stoppedAfter >= 10_000 && stoppedAfter <= 10_050, `a stopped ${stoppedAfter} ms after its last renewal`);
    assert.deepEqual(a.events, ['started', 'stopped']);
    assert.equal(await a.gauge(), 0);
    assert.equal(b.elector.isLeader, false, 'not before the lease expires');
    await clock.until(() => b.elector.isLeader, 10_000);
    const takenAfter = clock.now() - lastRenew;
    assert.ok(takenAfter > 15_000 && takenAfter <= 15_000 + 2_400 + 50, `b took over ${takenAfter} ms after a's last renewal`);
    assert.equal(server.lease!.spec!.holderIdentity, 'b');
    assert.equal(server.lease!.spec!.leaseTransitions, 1);
    // a comes back: it follows.
    a.api.down = false;
    await clock.advance(10_000);
    assert.deepEqual([a.elector.isLeader, b.elector.isLeader], [false, true]);
    assert.deepEqual(a.events, ['started', 'stopped']);
    await Promise.all([a.elector.stop(), b.elector.stop()]);
  });

  it('stop() stops the leader work, then releases the lease; the other takes it within a retry period', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    const order: string[] = [];
    const a = replica(server, clock, 'a');
    const b = replica(server, clock, 'b');
    a.elector.start();
    await clock.advance(1);
    b.elector.start();
    await clock.advance(5_000);
    const api = a.api;
    const replace = api.replace.bind(api);
    api.replace = async (ns, lease, t) => {
      if (lease.spec?.holderIdentity === '') order.push(`released (callbacks: ${a.events.join(',')})`);
      return replace(ns, lease, t);
    };
    const stopping = a.elector.stop();
    await clock.advance(0);
    await stopping;
    assert.deepEqual(order, ['released (callbacks: started,stopped)']);
    assert.equal(server.lease!.spec!.holderIdentity, '');
    assert.equal(server.lease!.spec!.leaseDurationSeconds, 1);
    assert.equal(a.elector.state, 'stopped');
    const took = await clock.until(() => b.elector.isLeader, 3_000);
    assert.ok(took <= 2_400 + 10, `b took over ${took} ms after the release`);
    await b.elector.stop();
  });

  it('a leader whose lease another holder took steps down at its next renewal', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    const a = replica(server, clock, 'a');
    a.elector.start();
    await clock.advance(3_000);
    assert.equal(a.elector.isLeader, true);
    server.store({ ...server.lease!, spec: { ...server.lease!.spec, holderIdentity: 'intruder', renewTime: microTime(clock.now()) } });
    await clock.advance(2_100);
    assert.equal(a.elector.isLeader, false);
    assert.deepEqual(a.events, ['started', 'stopped']);
    assert.equal(a.elector.status().holder, 'intruder');
    await a.elector.stop();
    assert.equal(server.lease!.spec!.holderIdentity, 'intruder', 'not released: not ours');
  });

  it('a holder whose clock runs ahead (renewTime in the future) is replaced once its record has not changed for the lease duration', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    server.store({ metadata: { name: 'meshd-leader' }, spec: { holderIdentity: 'dead', leaseDurationSeconds: 15, renewTime: microTime(clock.now() + 3_600_000) } });
    const b = replica(server, clock, 'b');
    b.elector.start();
    await clock.advance(14_000);
    assert.equal(b.elector.isLeader, false);
    const took = await clock.until(() => b.elector.isLeader, 5_000);
    assert.ok(took <= 2_500, `${took}`);
    await b.elector.stop();
  });

  it('a stale Lease (a holder long gone) is taken at once', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    server.store({ metadata: { name: 'meshd-leader' }, spec: { holderIdentity: 'dead', leaseDurationSeconds: 15, renewTime: microTime(clock.now() - 60_000), leaseTransitions: 4 } });
    const b = replica(server, clock, 'b');
    b.elector.start();
    await clock.advance(1);
    assert.equal(b.elector.isLeader, true);
    assert.equal(server.lease!.spec!.leaseTransitions, 5);
    await b.elector.stop();
  });

  it('a renewal failing briefly does not lose the lease', async () => {
    const clock = new FakeClock();
    const server = new FakeServer();
    const a = replica(server, clock, 'a');
    a.elector.start();
    await clock.advance(3_000);
    a.api.down = true; // last renewal at 2 s: the deadline is 12 s
    await clock.advance(6_500); // 4 s, 6 s and 8 s fail; 10 s succeeds
    a.api.down = false;
    await clock.advance(5_000);
    assert.equal(a.elector.isLeader, true);
    assert.deepEqual(a.events, ['started']);
    await a.elector.stop();
  });
});
