// Property test of incremental translation: meshd's generator keeps virtual hosts and clusters
// from one config version to the next and rebuilds only those whose inputs changed
// (src/translate/memo.ts). After any sequence of edits (objects removed, added, or replaced by
// a different object of the same kind and name; a new mesh config), what it serves must equal
// what a fresh generator translates from the same store, resource by resource.
//
//   MESHD_INCREMENTAL_CASES  number of seeds (default 40); MESHD_INCREMENTAL_SEED runs one
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseMeshObject, type MeshObject } from '../../src/model/objects.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot, REGISTRY_KINDS } from '../../src/model/mesh.js';
import { parseMeshConfig, type MeshConfig } from '../../src/model/mesh-config.js';
import { parseProxy, type Proxy } from '../../src/model/proxy.js';
import { PUSH_ORDER } from '../../src/translate/index.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { generateCase, Rng } from '../support/istio-generators.js';

type Json = Record<string, unknown>;

function proxies(): { name: string; proxy: Proxy }[] {
  const sidecar = (id: string, metadata: Json): Proxy => parseProxy(id, metadata);
  const mtls = sidecar('sidecar~10.0.0.8~web-1.default~default.svc.cluster.local', { LABELS: { app: 'web' }, INSTANCE_IPS: '10.0.0.8' });
  mtls.workloadIdentity = { namespace: 'default', serviceAccount: 'web', trustDomain: 'cluster.local' };
  mtls.certificates = { source: 'meshd', trustDomain: 'cluster.local' };
  const vhds = sidecar('sidecar~10.0.0.9~sleep-2.foo~foo.svc.cluster.local', { LABELS: { app: 'sleep', version: 'v2' }, INSTANCE_IPS: '10.0.0.9' });
  vhds.vhds = true;
  return [
    { name: 'sidecar', proxy: sidecar('sidecar~10.0.0.5~sleep-1.default~default.svc.cluster.local', { LABELS: { app: 'sleep' }, INSTANCE_IPS: '10.0.0.5' }) },
    { name: 'sidecar-mtls', proxy: mtls },
    { name: 'sidecar-vhds-foo', proxy: vhds },
    { name: 'router', proxy: parseProxy('router~10.0.9.1~ingress-1.istio-system~istio-system.svc.cluster.local', { LABELS: { istio: 'ingressgateway' } }) },
    { name: 'grpc', proxy: parseProxy('sidecar~10.0.0.7~grpc-client-1.default~default.svc.cluster.local', { GENERATOR: 'grpc' }) },
  ];
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : Number(v);
}

function seeds(): number[] {
  const one = envInt('MESHD_INCREMENTAL_SEED');
  if (one !== undefined) return [one];
  return Array.from({ length: envInt('MESHD_INCREMENTAL_CASES') ?? 40 }, (_, i) => i + 1);
}

interface Raw {
  raw: Json;
  parsed: MeshObject;
}

function parsedAll(objects: Json[]): Raw[] {
  const out: Raw[] = [];
  for (const raw of objects) {
    const r = parseMeshObject(raw);
    if (r.ok === true) out.push({ raw, parsed: r.value });
  }
  return out;
}

function meta(o: Json): { name: string; namespace: string } {
  return o.metadata as { name: string; namespace: string };
}

/** One round of edits: some objects dropped, some replaced by another of the kind under the same name, some added. */
function edit(rng: Rng, current: Raw[], pool: Raw[], editable: (kind: unknown) => boolean): Raw[] {
  const out: Raw[] = [];
  for (const o of current) {
    const roll = editable(o.raw.kind) ? rng.next() : 1;
    if (roll < 0.08) continue;
    if (roll < 0.25) {
      const same = pool.filter((p) => p.raw.kind === o.raw.kind);
      if (same.length > 0) {
        const other = rng.pick(same).raw;
        const raw = { ...other, metadata: { ...(other.metadata as Json), name: meta(o.raw).name, namespace: meta(o.raw).namespace } };
        const r = parseMeshObject(raw);
        if (r.ok === true) {
          out.push({ raw, parsed: r.value });
          continue;
        }
      }
    }
    // A DestinationRule whose load balancing changes: the routes to its host change their hash policy.
    if (o.raw.kind === 'DestinationRule' && roll < 0.5) {
      const spec = o.raw.spec as Json;
      const hashed = { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } };
      const raw = { ...o.raw, spec: { ...spec, trafficPolicy: spec.trafficPolicy ? undefined : hashed } };
      const r = parseMeshObject(raw);
      if (r.ok === true) {
        out.push({ raw, parsed: r.value });
        continue;
      }
    }
    out.push(o);
  }
  for (const p of pool) if (editable(p.raw.kind) && rng.chance(0.1)) out.push(p);
  // One object per kind, namespace and name: the last one wins, as in a source.
  const byKey = new Map<string, Raw>();
  for (const o of out) byKey.set(`${String(o.raw.kind)}/${meta(o.raw).namespace}/${meta(o.raw).name}`, o);
  return [...byKey.values()];
}

function served(gen: ConfigGenerator, proxy: Proxy): Record<string, string[]> {
  const res = gen.resourcesForProxy(proxy);
  const out: Record<string, string[]> = {};
  for (const t of PUSH_ORDER) out[t] = res[t].map((r) => `${r.name} ${r.version}`);
  return out;
}

describe('incremental translation', () => {
  it('serves after every edit what a fresh translation of the same config gives', () => {
    const ps = proxies();
    let rebuilt = 0;
    let reused = 0;
    for (const seed of seeds()) {
      const a = generateCase(seed);
      const b = generateCase(seed + 5000);
      const meshConfigs: MeshConfig[] = [parseMeshConfig(a.meshConfig, 'a').config, { ...parseMeshConfig(b.meshConfig, 'b').config, defaultHttpRetryPolicy: { attempts: 5 }, connectTimeout: '3s' }];
      const pool = parsedAll(b.objects);
      let current = parsedAll(a.objects);
      const store = new ConfigStore();
      store.replaceSource('test', current.map((o) => o.parsed));
      const gen = new ConfigGenerator();
      let mesh = meshConfigs[0]!;
      gen.update(buildSnapshot(store, 'cluster.local', undefined, mesh));
      for (const p of ps) gen.resourcesForProxy(p.proxy);
      const rng = new Rng(seed * 7919);
      for (let round = 0; round < 5; round++) {
        // Rounds 1 and 3 edit Istio config only (the snapshot keeps the registry); the others anything.
        current = edit(rng, current, pool, round % 2 === 1 ? (kind) => !REGISTRY_KINDS.has(String(kind)) : () => true);
        const changes = store.replaceSource('test', current.map((o) => o.parsed));
        const meshChanged = round === 2;
        if (meshChanged) mesh = meshConfigs[1]!;
        const before = { ...gen.memo.stats };
        // As the push controller does: the kinds that changed let an edit of Istio config keep the registry.
        const kinds = meshChanged ? undefined : new Set(changes.filter((c) => c.op !== 'refusal').map((c) => c.kind));
        gen.update(buildSnapshot(store, 'cluster.local', gen.snapshot, mesh, kinds));
        const fresh = new ConfigGenerator();
        fresh.update(buildSnapshot(store, 'cluster.local', undefined, mesh));
        for (const p of ps) {
          assert.deepEqual(served(gen, p.proxy), served(fresh, p.proxy), `seed ${seed}, round ${round}, proxy ${p.name}: incremental and fresh translations differ`);
        }
        reused += gen.memo.stats.hits - before.hits;
        rebuilt += gen.memo.stats.misses - before.misses;
      }
    }
    // The property means something only if pieces were in fact reused.
    assert.ok(reused > rebuilt, `pieces reused ${reused}, rebuilt ${rebuilt}`);
  });
});
