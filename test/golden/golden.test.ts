// Golden files for the translator: each case's input YAML is translated for a set of
// proxies, through the same generator meshd serves from, and compared with the expected
// xDS (clusters, endpoints, listeners, routes, secrets), as YAML. Every expected output is also
// loaded by the real Envoy (`envoy --mode validate`). Regenerate with MESHD_GOLDEN_UPDATE=1.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseMeshConfig } from '../../src/model/mesh-config.js';
import { parseProxy } from '../../src/model/proxy.js';
import { TypeUrl, type ResourcesByType } from '../../src/translate/index.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { encodeEnvoyJson } from '../../src/xds/envoy-json.js';
import { REPO_ROOT } from '../support/meshd.js';
import { staticBootstrap } from '../support/static-bootstrap.js';
import { validateEnvoyConfig } from '../support/envoy.js';

const DATA = join(REPO_ROOT, 'test', 'golden', 'testdata');
const UPDATE = process.env.MESHD_GOLDEN_UPDATE === '1';

interface ProxySpec {
  name: string;
  id: string;
  metadata?: Record<string, unknown>;
  /** The identity the proxy's stream proved (service account token): it gets mTLS. */
  identity?: { namespace: string; serviceAccount: string };
  /** Its stream is delta ADS with meshd's --vhds on: a sidecar's virtual hosts go over VHDS. */
  vhds?: boolean;
}

function proxyOf(p: ProxySpec): ReturnType<typeof parseProxy> {
  const proxy = parseProxy(p.id, p.metadata ?? {});
  if (p.identity) {
    proxy.workloadIdentity = { ...p.identity, trustDomain: 'cluster.local' };
    proxy.certificates = { source: 'meshd', trustDomain: 'cluster.local' };
  }
  // Istio's agent beside Envoy (PROXY_CONFIG in its metadata) serves the certificate itself.
  if (proxy.agent) proxy.certificates = { source: 'agent', trustDomain: 'cluster.local' };
  if (p.vhds) proxy.vhds = true;
  return proxy;
}

const DEFAULT_PROXIES: ProxySpec[] = [
  { name: 'sidecar-sleep', id: 'sidecar~10.0.0.5~sleep-1.default~default.svc.cluster.local', metadata: { LABELS: { app: 'sleep' }, INSTANCE_IPS: '10.0.0.5' } },
  { name: 'sidecar-httpbin', id: 'sidecar~10.0.1.1~httpbin-1.default~default.svc.cluster.local', metadata: { LABELS: { app: 'httpbin', version: 'v1' }, INSTANCE_IPS: '10.0.1.1' } },
  { name: 'sidecar-no-capture', id: 'sidecar~10.0.0.6~client-1.other~other.svc.cluster.local', metadata: { LABELS: { app: 'client' }, INTERCEPTION_MODE: 'NONE' } },
  { name: 'router', id: 'router~10.0.9.1~ingress-1.istio-system~istio-system.svc.cluster.local', metadata: { LABELS: { istio: 'ingressgateway' } } },
  { name: 'grpc', id: 'sidecar~10.0.0.7~grpc-client-1.default~default.svc.cluster.local', metadata: { GENERATOR: 'grpc' } },
];

const FILES: Record<string, TypeUrl> = {
  clusters: TypeUrl.Cluster,
  endpoints: TypeUrl.ClusterLoadAssignment,
  listeners: TypeUrl.Listener,
  routes: TypeUrl.RouteConfiguration,
  secrets: TypeUrl.Secret,
};

/** Files written only when the proxy has such resources (VHDS: delta sidecars only). */
const OPTIONAL_FILES: Record<string, TypeUrl> = {
  'virtual-hosts': TypeUrl.VirtualHost,
};

function translateCase(dir: string): Map<string, ResourcesByType> {
  const input = parseYamlText(readFileSync(join(dir, 'input.yaml'), 'utf8'), 'input.yaml');
  assert.deepEqual(input.problems, [], 'golden inputs must be valid');
  const store = new ConfigStore();
  store.replaceSource('golden', input.objects);
  const generator = new ConfigGenerator();
  // A case's mesh.yaml is its mesh config (as ConfigMap istio, key mesh, holds it); else Istio's defaults.
  const meshFile = join(dir, 'mesh.yaml');
  const mesh = existsSync(meshFile) ? parseMeshConfig(readFileSync(meshFile, 'utf8'), meshFile).config : undefined;
  generator.update(buildSnapshot(store, 'cluster.local', undefined, mesh));
  const proxiesFile = join(dir, 'proxies.yaml');
  const proxies = existsSync(proxiesFile) ? (parse(readFileSync(proxiesFile, 'utf8')) as ProxySpec[]) : DEFAULT_PROXIES;
  return new Map(proxies.map((p) => [p.name, generator.resourcesForProxy(proxyOf(p))]));
}

function toYaml(resources: { name: string; body: Record<string, unknown> }[]): string {
  return stringify(resources.map((r) => r.body), { lineWidth: 0, aliasDuplicateObjects: false });
}

const cases = readdirSync(DATA).filter((d) => existsSync(join(DATA, d, 'input.yaml'))).sort();

describe('translator golden files', () => {
  assert.ok(cases.length > 0, `no golden cases under ${DATA}`);
  for (const name of cases) {
    describe(name, () => {
      const dir = join(DATA, name);
      const translated = translateCase(dir);
      for (const [proxy, res] of translated) {
        it(`${proxy}: matches the golden output`, () => {
          const outDir = join(dir, proxy);
          if (UPDATE) mkdirSync(outDir, { recursive: true });
          for (const [file, type] of Object.entries(FILES)) {
            const path = join(outDir, `${file}.yaml`);
            const actual = toYaml(res[type]);
            if (UPDATE) writeFileSync(path, actual);
            assert.ok(existsSync(path), `${path} is missing: run with MESHD_GOLDEN_UPDATE=1 to create it`);
            assert.equal(actual, readFileSync(path, 'utf8'), `${name}/${proxy}/${file}.yaml differs (MESHD_GOLDEN_UPDATE=1 regenerates)`);
          }
          for (const [file, type] of Object.entries(OPTIONAL_FILES)) {
            const path = join(outDir, `${file}.yaml`);
            if (res[type].length === 0) {
              if (UPDATE) rmSync(path, { force: true });
              assert.ok(!existsSync(path), `${name}/${proxy}/${file}.yaml exists but the proxy gets none (MESHD_GOLDEN_UPDATE=1 regenerates)`);
              continue;
            }
            const actual = toYaml(res[type]);
            if (UPDATE) writeFileSync(path, actual);
            assert.ok(existsSync(path), `${path} is missing: run with MESHD_GOLDEN_UPDATE=1 to create it`);
            assert.equal(actual, readFileSync(path, 'utf8'), `${name}/${proxy}/${file}.yaml differs (MESHD_GOLDEN_UPDATE=1 regenerates)`);
          }
        });

        it(`${proxy}: is deterministic and sorted`, () => {
          const again = translateCase(dir).get(proxy)!;
          const types = [...Object.values(FILES), ...Object.values(OPTIONAL_FILES)];
          for (const type of types) assert.deepEqual(again[type].map((r) => [r.name, r.body]), res[type].map((r) => [r.name, r.body]));
          for (const type of types) {
            const names = res[type].map((r) => r.name);
            assert.deepEqual(names, [...names].sort(), `${type} not sorted`);
            assert.equal(new Set(names).size, names.length, `${type} has duplicate names`);
          }
        });

        it(`${proxy}: every resource encodes to protobuf`, () => {
          for (const [type, list] of Object.entries(res)) {
            for (const r of list) assert.ok(encodeEnvoyJson(type.slice(type.indexOf('/') + 1), r.body).length > 0);
          }
        });

        it(`${proxy}: the golden output is accepted by the real Envoy`, async () => {
          const golden = {} as ResourcesByType;
          for (const [file, type] of Object.entries(FILES)) {
            const docs = (parse(readFileSync(join(dir, proxy, `${file}.yaml`), 'utf8')) as Record<string, unknown>[] | null) ?? [];
            golden[type] = docs.map((body) => ({ name: String(body.name ?? body.cluster_name), body }));
          }
          for (const [file, type] of Object.entries(OPTIONAL_FILES)) {
            const path = join(dir, proxy, `${file}.yaml`);
            const docs = existsSync(path) ? ((parse(readFileSync(path, 'utf8')) as Record<string, unknown>[] | null) ?? []) : [];
            golden[type] = docs.map((body) => ({ name: String(body.name), body }));
          }
          const result = await validateEnvoyConfig(staticBootstrap(golden));
          assert.ok(result.ok, `envoy --mode validate rejected ${name}/${proxy}:\n${result.output}`);
        });
      }
    });
  }
});
