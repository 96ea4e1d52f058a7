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

  it('logs once, as a counted error, a PeerAuthentication that another one overrides (a finding of the snapshot)', () => {
    const store = new ConfigStore();
    const errors: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = { ...silentLogger, error: (obj: Record<string, unknown>, msg: string) => void errors.push({ obj, msg }) } as unknown as typeof silentLogger;
    const generator = new ConfigGenerator();
    const clock = new FakeClock();
    const ctl = new PushController({ store, generator, domain: 'cluster.local', debounceMs: 10, debounceMaxMs: 100, push: () => undefined, log, clock });
    const pa = (name: string, created: string): string =>
      `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ${name}, namespace: shop, creationTimestamp: "${created}"}\nspec: {mtls: {mode: STRICT}}\n---\n`;
    store.replaceSource('t', parseYamlText(pa('old', '2026-01-01T00:00:00Z') + pa('new', '2026-02-01T00:00:00Z'), 't.yaml').objects);
    ctl.start();
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]!.obj.object, 'shop/new');
    assert.equal(errors[0]!.obj.code, 'IST0167');
    assert.match(errors[0]!.msg, /^Error \[IST0167\] \(PeerAuthentication shop\/new\) .*shop\/old applies instead and this one is ignored/);
    // Another config change: the same finding is not logged again.
    store.replaceSource('t2', parseYamlText(svc('10.0.0.1'), 't2.yaml').objects);
    clock.advance(50);
    assert.equal(errors.length, 1);
  });

  it('a refusal alone makes a findings-only snapshot: the finding, with the refused generation, and no push; a valid version clears it', () => {
    const { store, clock, pushes, generator, ctl, load } = setup();
    load(svc('10.0.0.1'));
    const seen: number[] = [];
    ctl.onSnapshot((s) => seen.push(s.findings.length));
    ctl.start();
    const before = generator.snapshot!;
    store.refuse('kube:VirtualService', { kind: 'VirtualService', namespace: 'default', name: 'r', generation: 7, errors: [{ kind: 'VirtualService', namespace: 'default', name: 'r', field: 'spec.http[0].route', message: 'weights sum to 130; they must sum to 100' }] });
    clock.advance(200);
    assert.equal(pushes.length, 0, 'nothing is pushed: the config did not change');
    assert.equal(ctl.stats.findingsOnly, 1);
    const after = generator.snapshot!;
    assert.ok(after.version > before.version);
    assert.equal(after.config, before.config, 'the config is the previous snapshot\'s');
    assert.deepEqual(
      after.findings.map((f) => [f.severity, f.code, `${f.kind} ${f.namespace}/${f.name}`, f.field, f.generation]),
      [['Error', 'IST0106', 'VirtualService default/r', 'spec.http[0].route', 7]],
    );
    // The same refusal again changes nothing; deleting the object clears it.
    store.refuse('kube:VirtualService', { kind: 'VirtualService', namespace: 'default', name: 'r', generation: 7, errors: [{ kind: 'VirtualService', namespace: 'default', name: 'r', field: 'spec.http[0].route', message: 'weights sum to 130; they must sum to 100' }] });
    clock.advance(200);
    assert.equal(ctl.stats.findingsOnly, 1);
    store.delete('kube:VirtualService', 'VirtualService', 'default', 'r');
    clock.advance(200);
    assert.equal(ctl.stats.findingsOnly, 2);
    assert.deepEqual(generator.snapshot!.findings, []);
    assert.equal(pushes.length, 0);
    assert.deepEqual(seen, [0, 1, 0], 'every snapshot reaches the listeners');
  });

  it('a resync records and clears a source\'s refusals; an invalid object keeps its last good version', () => {
    const store = new ConfigStore();
    const refusal = { kind: 'Service', namespace: 'default', name: 'a', errors: [{ kind: 'Service', namespace: 'default', name: 'a', field: 'spec.ports[0].port', message: 'too small' }] };
    const [obj] = parseYamlText(svc('10.0.0.1'), 't.yaml').objects;
    store.replaceSource('s', [obj!], [refusal]);
    assert.deepEqual(store.refusals(), [refusal]);
    assert.ok(store.get('Service', 'default', 'a'), 'the last good version stays');
    const changes = store.replaceSource('s', [obj!]);
    assert.deepEqual(changes.map((c) => [c.op, c.kind, c.name]), [['refusal', 'Service', 'a']]);
    assert.deepEqual(store.refusals(), []);
    store.refuse('s', refusal);
    store.upsert('s', obj!);
    assert.deepEqual(store.refusals(), [], 'a valid version clears the refusal');
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
