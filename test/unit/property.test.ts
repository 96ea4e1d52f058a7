// Property test: generated Services, EndpointSlices, Pods, Gateways, VirtualServices and
// DestinationRules (valid and invalid) go through validation, the snapshot and the
// translator for a sidecar, an ingress gateway router and a proxyless gRPC client. Every
// object rejected must name a field; everything accepted must be accepted by
// `envoy --mode validate`.
//
//   MESHD_PROPERTY_CASES      number of cases (default 40)
//   MESHD_PROPERTY_BASE_SEED  seed of the first case; case i uses base + i (default 1)
//   MESHD_PROPERTY_SEED       run just this seed (to replay a failure)
//   MESHD_PROPERTY_SUMMARY    write a JSON summary (counts) to this file (used by npm run fuzz)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseMeshObject, type MeshObject, type ObjectError } from '../../src/model/objects.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseMeshConfig } from '../../src/model/mesh-config.js';
import { parseProxy } from '../../src/model/proxy.js';
import { TypeUrl, type ResourcesByType } from '../../src/translate/index.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { staticBootstrap } from '../support/static-bootstrap.js';
import { validateEnvoyConfig } from '../support/envoy.js';
import { generateCase } from '../support/istio-generators.js';

const PROXIES = [
  { name: 'sidecar', id: 'sidecar~10.0.0.5~sleep-1.default~default.svc.cluster.local', metadata: { LABELS: { app: 'sleep' }, INSTANCE_IPS: '10.0.0.5' } },
  { name: 'router', id: 'router~10.0.9.1~ingress-1.istio-system~istio-system.svc.cluster.local', metadata: { LABELS: { istio: 'ingressgateway' } } },
  { name: 'grpc', id: 'sidecar~10.0.0.7~grpc-client-1.default~default.svc.cluster.local', metadata: { GENERATOR: 'grpc' } },
  // A sidecar whose stream proved an identity: auto mTLS, ISTIO_MUTUAL and PeerAuthentication apply.
  { name: 'sidecar-mtls', id: 'sidecar~10.0.0.8~web-1.default~default.svc.cluster.local', metadata: { LABELS: { app: 'web' }, INSTANCE_IPS: '10.0.0.8' }, identity: { namespace: 'default', serviceAccount: 'web' } },
] as const;

function proxyOf(p: (typeof PROXIES)[number]): ReturnType<typeof parseProxy> {
  const proxy = parseProxy(p.id, p.metadata);
  if ('identity' in p) {
    proxy.workloadIdentity = { ...p.identity, trustDomain: 'cluster.local' };
    proxy.certificates = { source: 'meshd', trustDomain: 'cluster.local' };
  }
  return proxy;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${v} must be a non-negative integer`);
  return n;
}

function seeds(): number[] {
  const one = envInt('MESHD_PROPERTY_SEED');
  if (one !== undefined) return [one];
  const n = envInt('MESHD_PROPERTY_CASES') ?? 40;
  const base = envInt('MESHD_PROPERTY_BASE_SEED') ?? 1;
  return Array.from({ length: n }, (_, i) => (base + i) >>> 0);
}

interface Counts {
  cases: number;
  objects: number;
  accepted: number;
  rejected: number;
  /** VirtualServices the snapshot left out (undefined subsets). */
  rejectedInSnapshot: number;
  intendedInvalid: number;
  envoyRuns: number;
  resources: number;
  routes: number;
}

interface Failure {
  seed: number;
  proxy?: string;
  problem: string;
}

/** Errors must say which field is wrong (the object itself is fine only for kind/apiVersion). */
function checkErrors(seed: number, errors: readonly ObjectError[], failures: Failure[]): void {
  if (errors.length === 0) failures.push({ seed, problem: 'an object was rejected with no error' });
  for (const e of errors) {
    if (!e.field || !e.message) failures.push({ seed, problem: `error without a field or message: ${JSON.stringify(e)}` });
  }
}

function countRoutes(res: ResourcesByType): number {
  let n = 0;
  for (const rc of res[TypeUrl.RouteConfiguration]) for (const vh of (rc.body.virtual_hosts as { routes?: unknown[] }[] | undefined) ?? []) n += vh.routes?.length ?? 0;
  return n;
}

/** The gist of Envoy's complaint: the innermost proto constraint, or the critical log line. */
function envoyReason(output: string): string {
  const causes = output.match(/caused by [A-Za-z]+ValidationError\.[^|)]*/g);
  if (causes) return causes.at(-1)!.replace(/^caused by /, '');
  const critical = output.split('\n').find((l) => /\[critical\]/.test(l) && !/backtrace\.h.*(Backtrace|#\d)/.test(l));
  return (critical ?? output.slice(-1000)).replace(/^(\[[^\]]*\]\s*)+/, '').trim();
}

function normalize(problem: string): string {
  return problem
    .replace(/^\[[^\n]*?\]\[\d+\]\[\w+\]\[\w+\] \[[^\]]*\] /gm, '')
    .replace(/'\/tmp\/[^']*'/g, "'<bootstrap>'")
    .replace(/error initializing configuration '<bootstrap>': /g, '')
    .replace(/address 0x[0-9a-f]+/g, 'address 0x…')
    .replace(/cluster '[^']*'/g, "cluster '…'")
    .replace(/\[\d+\]/g, '[]')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 600);
}

/** Runs tasks with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function runCase(seed: number, counts: Counts, failures: Failure[]): Promise<void> {
  const gen = generateCase(seed);
  counts.cases++;
  counts.intendedInvalid += gen.intendedInvalid;
  const accepted: MeshObject[] = [];
  for (const raw of gen.objects) {
    counts.objects++;
    const r = parseMeshObject(raw);
    if (r.ok === 'ignored') failures.push({ seed, problem: `a generated object was ignored: ${r.reason}` });
    else if (r.ok) {
      counts.accepted++;
      accepted.push(r.value);
    } else {
      counts.rejected++;
      checkErrors(seed, r.errors, failures);
    }
  }
  let translated: { proxy: string; res: ResourcesByType }[];
  try {
    const store = new ConfigStore();
    store.replaceSource('property', accepted);
    const delta = buildSnapshot(store, 'cluster.local', undefined, parseMeshConfig(gen.meshConfig, `seed ${seed}`).config);
    const { snapshot } = delta;
    const leftOut = snapshot.findings.filter((f) => f.severity === 'Error');
    counts.rejectedInSnapshot += leftOut.length;
    for (const e of leftOut) if (!e.field || !e.message) failures.push({ seed, problem: `snapshot finding without a field or message: ${JSON.stringify(e)}` });
    // Through the generator meshd serves from: the path production takes.
    const generator = new ConfigGenerator();
    generator.update(delta);
    translated = PROXIES.map((p) => ({ proxy: p.name, res: generator.resourcesForProxy(proxyOf(p)) }));
  } catch (err) {
    failures.push({ seed, problem: `snapshot or translation threw: ${(err as Error).stack ?? String(err)}` });
    return;
  }
  await pool(translated, 3, async ({ proxy, res }) => {
    let bootstrap: Record<string, unknown>;
    try {
      bootstrap = staticBootstrap(res);
    } catch (err) {
      failures.push({ seed, proxy, problem: `inconsistent resources: ${(err as Error).message}` });
      return;
    }
    counts.envoyRuns++;
    for (const list of Object.values(res)) counts.resources += list.length;
    counts.routes += countRoutes(res);
    const result = await validateEnvoyConfig(bootstrap);
    if (!result.ok) {
      failures.push({ seed, proxy, problem: `envoy --mode validate rejected it: ${envoyReason(result.output)}` });
    }
  });
}

describe('property: generated Istio config is validated, translated and accepted by Envoy', () => {
  it('zero Envoy rejections', { timeout: 24 * 3600_000 }, async (t) => {
    const list = seeds();
    const counts: Counts = { cases: 0, objects: 0, accepted: 0, rejected: 0, rejectedInSnapshot: 0, intendedInvalid: 0, envoyRuns: 0, resources: 0, routes: 0 };
    const failures: Failure[] = [];
    const started = Date.now();
    const parallel = Math.max(2, Math.min(4, availableParallelism()));
    await pool(list, parallel, (seed) => runCase(seed, counts, failures));
    const elapsedMs = Date.now() - started;
    const failedSeeds = [...new Set(failures.map((f) => f.seed))].sort((a, b) => a - b);
    const summary = { ...counts, failedCases: failedSeeds.length, failedSeeds, elapsedMs };
    const summaryFile = process.env.MESHD_PROPERTY_SUMMARY;
    if (summaryFile) writeFileSync(summaryFile, JSON.stringify(summary, null, 2));
    t.diagnostic(
      `${counts.cases} cases in ${elapsedMs} ms: ${counts.objects} objects, ${counts.accepted} accepted, ${counts.rejected} rejected (+${counts.rejectedInSnapshot} in the snapshot); ${counts.envoyRuns} Envoy validations, ${counts.routes} routes`,
    );
    // Invalid objects must show up: a generator that only makes valid ones tests nothing.
    if (counts.cases >= 20) assert.ok(counts.rejected + counts.rejectedInSnapshot > 0, 'no generated object was rejected: the generator makes no invalid objects');
    // One line per kind of failure (timestamps, temp paths and list indices left out), with the seeds showing it.
    const kinds = new Map<string, Set<number>>();
    for (const f of failures) {
      const key = normalize(f.problem);
      let set = kinds.get(key);
      if (!set) kinds.set(key, (set = new Set()));
      set.add(f.seed);
    }
    const shown = [...kinds].map(([problem, s]) => `- seeds ${[...s].sort((a, b) => a - b).slice(0, 10).join(', ')}${s.size > 10 ? ` (+${s.size - 10})` : ''}: ${problem}`);
    assert.equal(
      failures.length,
      0,
      `${failedSeeds.length} of ${counts.cases} cases failed, ${kinds.size} kind(s) of failure (replay one with MESHD_PROPERTY_SEED=<seed>):\n${shown.join('\n')}`,
    );
  });

  it('generation is deterministic', () => {
    for (const seed of [1, 42, 4_000_000_000]) assert.deepEqual(generateCase(seed), generateCase(seed));
    assert.notDeepEqual(generateCase(1).objects, generateCase(2).objects);
  });
});
