import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigStore } from '../../src/model/store.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { ConfigGenerator, type PushRequest } from '../../src/xds/generator.js';
import { PushController } from '../../src/xds/push-controller.js';
import type { Clock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { serviceYaml } from '../support/meshd.js';

class FakeClock implements Clock {
  t = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private seq = 0;
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
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

function setup(debounceMs = 100, debounceMaxMs = 1000, debounceEndpointsMs?: number) {
  const store = new ConfigStore();
  const clock = new FakeClock();
  const pushes: PushRequest[] = [];
  const generator = new ConfigGenerator();
  const ctl = new PushController({ store, generator, domain: 'cluster.local', debounceMs, debounceMaxMs, ...(debounceEndpointsMs !== undefined ? { debounceEndpointsMs } : {}), push: (r) => pushes.push(r), log: silentLogger, clock });
  const load = (yaml: string): void => void store.replaceSource('t', parseYamlText(yaml, 't.yaml').objects);
  return { store, clock, pushes, generator, ctl, load };
}

const svc = (ip: string, name = 'a'): string => serviceYaml({ name, ports: [{ name: 'http', port: 80 }], endpoints: [{ ip }] });

describe('push controller', () => {
  it('coalesces a burst of changes into one push after the quiet time', () => {
    const { clock, pushes, ctl, load } = setup();
    load(svc('10.0.0.1'));
    ctl.start();
    load(svc('10.0.0.2'));
    clock.advance(50);
    load(svc('10.0.0.3'));
    clock.advance(50);
    load(svc('10.0.0.4'));
    assert.equal(pushes.length, 0);
    clock.advance(100);
    assert.equal(pushes.length, 1);
    assert.equal(pushes[0]!.full, false, 'only endpoints changed');
    assert.deepEqual([...pushes[0]!.edsNames], ['outbound|80||a.default.svc.cluster.local']);
  });

  it('pushes by the maximum delay even while changes keep coming', () => {
    const { clock, pushes, ctl, load } = setup(100, 300);
    load(svc('10.0.0.1'));
    ctl.start();
    for (let i = 2; i < 12; i++) {
      load(svc(`10.0.0.${i}`));
      clock.advance(60);
    }
    assert.ok(pushes.length >= 2, `expected pushes during the stream of changes, got ${pushes.length}`);
  });

  it('takes the cheap path for endpoint-only changes and the full one otherwise', () => {
    const { clock, pushes, ctl, load, generator } = setup();
    load(svc('10.0.0.1'));
    ctl.start();
    const encodesBefore = generator.cache.encodes;
    load(svc('10.0.0.2'));
    clock.advance(200);
    assert.equal(ctl.stats.endpointsOnly, 1);
    assert.equal(generator.cache.encodes - encodesBefore, 1, 'one ClusterLoadAssignment encoded, nothing else');
    load(svc('10.0.0.2') + '---\n' + svc('10.0.0.5', 'b'));
    clock.advance(200);
    assert.equal(pushes.at(-1)!.full, true);
    assert.ok(pushes.at(-1)!.edsNames.has('outbound|80||b.default.svc.cluster.local'));
  });

  it('uses the shorter endpoint debounce only while every pending change is an endpoint change', () => {
    const { clock, pushes, ctl, load } = setup(100, 1000, 20);
    load(svc('10.0.0.1'));
    ctl.start();
    load(svc('10.0.0.2'));
    clock.advance(25);
    assert.equal(pushes.length, 1, 'endpoint-only change pushed after 20 ms');
    load(svc('10.0.0.2') + '---\n' + svc('10.0.0.5', 'b'));
    clock.advance(25);
    assert.equal(pushes.length, 1, 'a service change waits for the full debounce');
    clock.advance(100);
    assert.equal(pushes.length, 2);
  });

  it('warns once about a PeerAuthentication that another one overrides', () => {
    const store = new ConfigStore();
    const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = { ...silentLogger, warn: (obj: Record<string, unknown>, msg: string) => void warnings.push({ obj, msg }) } as unknown as typeof silentLogger;
    const generator = new ConfigGenerator();
    const ctl = new PushController({ store, generator, domain: 'cluster.local', debounceMs: 10, debounceMaxMs: 100, push: () => undefined, log, clock: new FakeClock() });
    const pa = (name: string, created: string): string =>
      `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ${name}, namespace: shop, creationTimestamp: "${created}"}\nspec: {mtls: {mode: STRICT}}\n---\n`;
    store.replaceSource('t', parseYamlText(pa('old', '2026-01-01T00:00:00Z') + pa('new', '2026-02-01T00:00:00Z'), 't.yaml').objects);
    ctl.start();
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0]!.obj.object, 'shop/new');
    assert.equal(warnings[0]!.obj.winner, 'shop/old');
    assert.match(warnings[0]!.msg, /ignored/);
  });

  it('does not push when a change leaves the endpoints as they were', () => {
    const { clock, pushes, ctl, load } = setup();
    load(svc('10.0.0.1'));
    ctl.start();
    // A not-ready endpoint added: the ready set is the same.
    load(serviceYaml({ name: 'a', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.1' }, { ip: '10.0.0.9', ready: false }] }));
    clock.advance(200);
    assert.equal(pushes.length, 0);
  });
});
