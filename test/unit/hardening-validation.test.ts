// Validation that keeps Envoy from rejecting what meshd accepted: RE2 program sizes (and
// the limit the bootstraps set), mesh VirtualServices for host `*`, and subset load
// assignments that follow the DestinationRule lookup clusters use.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { MESHD_CLI } from '../support/meshd.js';
import { validateEnvoyConfig } from '../support/envoy.js';
import { RE2_MAX_PROGRAM_SIZE, re2Error, re2ProgramSize } from '../../src/model/re2.js';
import { formatObjectError, parseMeshObject, type ObjectError } from '../../src/model/objects.js';
import { envoyBootstrap } from '../../src/inject/bootstrap.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { loadAssignments, subsetServiceName } from '../../src/translate/endpoints.js';
import { outboundClusters } from '../../src/translate/clusters.js';

// Parsed Envoy config is walked freely in assertions.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>;

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** Two UUIDs in a path: over Envoy's default limit of 100. */
const TWO_UUIDS = `^/orders/${UUID}/items/${UUID}$`;
/** Over the limit meshd sets. */
const HUGE = '[0-9a-f]{1000}'.repeat(17);

/** Sizes Envoy 1.40 reports for these patterns (`RE2 program size of N`). */
const ENVOY_SIZES: [string, number][] = [
  ['a', 5],
  ['abc', 7],
  ['^a{97}$', 99],
  ['^a{99}$', 101],
  ['.{50}', 104],
  [`^${UUID}$`, 70],
  [`^/api/v[0-9]+/users/${UUID}/orders/[0-9]+$`, 91],
  [TWO_UUIDS, 147],
  ['é', 6],
  ['[^a]', 6],
  ['(?i)hello', 9],
  ['\\pL+', 12],
  ['[α-ω]{3}', 10],
  ['(a|b|c)*d', 8],
  ['foo|foobar|fob', 12],
  ['^/static/.*\\.(css|js|png)$', 17],
  ['(?i)中', 7],
  ['(?s)a.*', 7],
  ['(a*)+', 8],
  ['a*a*a', 6],
  ['(?i)\\p{Lu}', 7],
];

/** More patterns checked against a live Envoy: parsing, factoring, repetition, anchors, flags. */
const MORE = [
  '^/api/[^/]+/items$', '[a-z]+@[a-z]+\\.com', '(?i)[a-z]+', 'x{2,5}', 'x{0,3}y', '(ab){3,}', '\\d{3}-\\d{4}', '\\w+\\s*=\\s*\\w+',
  '\\bfoo\\b', '(?m)^foo$', '[[:alpha:]]+', 'ab|ac|ad', 'ab|a|a', '(?:a|)', '(?U)a+b', '(a+)(b+)', '(?P<name>x)y', '^abc', '(?i)^abc',
  '\\Aabc\\z', 'a$|b$', '^(?:GET|POST|PUT)$', '(?i)^/(?:v1|v2)/(users|groups)/[0-9]{1,6}(/.*)?$', '\\C*', '[\\D]', '(x|y){2,4}?z',
];

function envoyRouteBootstrap(regexes: string[], runtime: Record<string, unknown>): Doc {
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    layered_runtime: { layers: [{ name: 'static', static_layer: runtime }] },
    static_resources: { listeners: [routeListener(regexes)] },
  };
}

function routeListener(regexes: string[]): Doc {
  return {
    name: 'regex_routes',
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'regex',
              route_config: {
                name: 'regex',
                virtual_hosts: [{ name: 'all', domains: ['*'], routes: regexes.map((regex) => ({ match: { safe_regex: { regex } }, direct_response: { status: 200 } })) }],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  };
}

function errors(raw: Record<string, unknown>): ObjectError[] {
  const r = parseMeshObject(raw);
  assert.ok(r.ok !== 'ignored');
  return r.ok ? [] : r.errors;
}

const vs = (spec: Record<string, unknown>) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'orders', namespace: 'shop' }, spec });

describe('RE2 program size', () => {
  it('is what Envoy reports for each pattern', () => {
    for (const [pattern, size] of ENVOY_SIZES) assert.equal(re2ProgramSize(pattern), size, pattern);
  });

  it('matches a real Envoy on every pattern (Envoy logs each size over warn_level 0)', async () => {
    const patterns = [...ENVOY_SIZES.map(([p]) => p), ...MORE];
    const v = await validateEnvoyConfig(envoyRouteBootstrap(patterns, { 're2.max_program_size.error_level': 4294967295, 're2.max_program_size.warn_level': 0 }));
    assert.ok(v.ok, v.output);
    const reported = [...v.output.matchAll(/RE2 program size of (\d+) > max program size of 0 set for the warn/g)].map((m) => Number(m[1]));
    assert.deepEqual(
      patterns.map((p) => re2ProgramSize(p)),
      reported,
    );
  });

  it('rejects what only Envoy\'s Latin-1 RE2 rejects, and accepts what only it accepts', () => {
    assert.match(re2Error('\\x{100}') ?? '', /invalid escape sequence: \\x\{100/);
    assert.match(re2Error('\\777') ?? '', /invalid escape sequence/);
    // re2-wasm's RegExp front end turned \u0041 into \x{0041}; Envoy rejects \u.
    assert.match(re2Error('a\\u0041') ?? '', /invalid escape sequence: \\u/);
    assert.equal(re2Error('(?P<x>a)(?P<x>b)'), undefined);
    assert.equal(re2Error('(?<id>[0-9]+)'), undefined);
  });

  it('checks many patterns without exhausting the WebAssembly heap', () => {
    // re2-wasm's heap is fixed (16 MiB); RE2 objects never freed used it up after about 8000.
    for (let i = 0; i < 9_000; i++) assert.equal(re2Error(`^/items/${i}/[0-9a-f]{8}$`), undefined);
  });

  it('survives a pattern that exhausts the WebAssembly heap: judged by the model as Envoy judges it, and later checks still work', async () => {
    // 300 characters: in re2-wasm's UTF-8 mode each \pL is a large class, and its 16 MiB heap
    // runs out (which aborted the module: every later check threw). Envoy (Latin-1) accepts it.
    const heavy = '\\pL'.repeat(100);
    const v = await validateEnvoyConfig(envoyRouteBootstrap([heavy], { 're2.max_program_size.error_level': 4294967295, 're2.max_program_size.warn_level': 0 }));
    assert.ok(v.ok, v.output);
    const reported = Number(/RE2 program size of (\d+) > max program size of 0 set for the warn/.exec(v.output)?.[1]);
    for (let round = 0; round < 3; round++) {
      assert.equal(re2Error(heavy), undefined);
      assert.equal(re2ProgramSize(heavy), reported);
      assert.match(re2Error(`${heavy}(`) ?? '', /missing \)/);
      // RE2 itself is back for the next pattern (lookahead is refused by RE2 and the model alike).
      assert.match(re2Error('a(?=b)') ?? '', /invalid perl operator/);
      assert.equal(re2Error('^/items/[0-9]+$'), undefined);
    }
    // Nesting deeper than the model's recursion is refused, not thrown.
    assert.match(re2Error(`${'('.repeat(20_000)}a${')'.repeat(20_000)}`) ?? '', /nests too deeply/);
  });
});

describe('validation against the program size limit', () => {
  it('names the object, the field, the program size and the limit', () => {
    const e = errors(vs({ hosts: ['orders'], http: [{ match: [{ uri: { regex: HUGE } }], route: [{ destination: { host: 'orders' } }] }] }));
    assert.equal(e.length, 1);
    assert.equal(e[0]!.field, 'spec.http[0].match[0].uri.regex');
    assert.match(e[0]!.message, new RegExp(`program of size 34004, over the limit of ${RE2_MAX_PROGRAM_SIZE}`));
    assert.match(formatObjectError(e[0]!), /^VirtualService shop\/orders: spec\.http\[0\]\.match\[0\]\.uri\.regex: /);
  });

  it('accepts a route over Envoy\'s default of 100, which the bootstrap raises', () => {
    assert.deepEqual(errors(vs({ hosts: ['orders'], http: [{ match: [{ uri: { regex: TWO_UUIDS } }], route: [{ destination: { host: 'orders' } }] }] })), []);
  });

  it('checks uriRegexRewrite and header regexes too', () => {
    const e = errors(
      vs({
        hosts: ['orders'],
        http: [{ match: [{ headers: { 'x-id': { regex: HUGE } } }], rewrite: { uriRegexRewrite: { match: HUGE, rewrite: '/' } }, route: [{ destination: { host: 'orders' } }] }],
      }),
    );
    assert.deepEqual(e.map((x) => x.field).sort(), ['spec.http[0].match[0].headers.x-id.regex', 'spec.http[0].rewrite.uriRegexRewrite.match']);
  });
});

describe('the bootstraps meshd writes raise Envoy\'s RE2 limit to the one validation enforces', () => {
  it('sets re2.max_program_size.error_level', () => {
    const b = envoyBootstrap({ type: 'sidecar', ip: '10.0.0.1', podName: 'p', namespace: 'ns', domain: 'cluster.local', serviceAccount: 'default', labels: {}, xdsAddress: '127.0.0.1:15010', delta: false, adminPort: 15000, readinessPort: 15021, interceptionMode: 'REDIRECT' }) as Doc;
    assert.equal(b.layered_runtime.layers[0].static_layer['re2.max_program_size.error_level'], RE2_MAX_PROGRAM_SIZE);
    assert.equal(RE2_MAX_PROGRAM_SIZE, 32768);
  });

  it('a real Envoy on `meshd bootstrap` output accepts a route over 100 and refuses one over the limit', async () => {
    const out = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--type', 'router', '--ip', '10.0.0.9', '--pod', 'gw-1', '--namespace', 'istio-system', '--format', 'json', '--readiness-port', '0'], { encoding: 'utf8' });
    const b = JSON.parse(out) as Doc;
    b.admin.address.socket_address.port_value = 0;
    b.static_resources.listeners = [routeListener([TWO_UUIDS])];
    const accepted = await validateEnvoyConfig(b);
    assert.ok(accepted.ok, accepted.output);

    // Without meshd's runtime key, Envoy's default of 100 refuses the same route: the size it names is ours.
    const stock = structuredClone(b);
    delete stock.layered_runtime.layers[0].static_layer['re2.max_program_size.error_level'];
    const refused = await validateEnvoyConfig(stock);
    assert.equal(refused.ok, false);
    assert.match(refused.output, new RegExp(`RE2 program size of ${re2ProgramSize(TWO_UUIDS)} > max program size of 100`));

    // Over meshd's limit, Envoy refuses at exactly the size validation computes.
    b.static_resources.listeners = [routeListener([HUGE])];
    const huge = await validateEnvoyConfig(b);
    assert.equal(huge.ok, false);
    assert.match(huge.output, new RegExp(`RE2 program size of 34004 > max program size of ${RE2_MAX_PROGRAM_SIZE}`));
  });
});

describe('a mesh VirtualService for host *', () => {
  it('is rejected, naming spec.hosts[i], as Istio rejects it', () => {
    for (const gateways of [undefined, ['mesh'], ['mesh', 'shop/public']]) {
      const e = errors(vs({ hosts: ['orders', '*'], ...(gateways ? { gateways } : {}), http: [{ route: [{ destination: { host: 'orders' } }] }] }));
      assert.equal(e.length, 1, JSON.stringify(gateways));
      assert.equal(e[0]!.field, 'spec.hosts[1]');
      assert.match(e[0]!.message, /wildcard host \* is not allowed for a VirtualService bound to the mesh gateway/);
    }
  });

  it('is accepted when bound to Gateways only, and *.example.com is accepted for the mesh', () => {
    assert.deepEqual(errors(vs({ hosts: ['*'], gateways: ['public'], http: [{ route: [{ destination: { host: 'orders' } }] }] })), []);
    assert.deepEqual(errors(vs({ hosts: ['*.example.com'], http: [{ route: [{ destination: { host: 'orders' } }] }] })), []);
  });
});

describe('subset load assignments follow the DestinationRule lookup clusters use', () => {
  // Two namespaces define subset v1 of reviews differently: the service's own rule (version v1)
  // and a client-side rule in namespace `aaa` (version v2), which sorts first by namespace.
  const yaml = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-a, namespace: bookinfo, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints:
- addresses: ["10.0.2.1"]
  targetRef: {kind: Pod, name: reviews-v1, namespace: bookinfo}
- addresses: ["10.0.2.2"]
  targetRef: {kind: Pod, name: reviews-v2, namespace: bookinfo}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews, version: v1}}
status: {podIP: 10.0.2.1, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: bookinfo, labels: {app: reviews, version: v2}}
status: {podIP: 10.0.2.2, phase: Running}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-canary, namespace: aaa}
spec:
  host: reviews.bookinfo.svc.cluster.local
  exportTo: ["."]
  subsets: [{name: v1, labels: {version: v2}}, {name: canary, labels: {version: v2}}]
`;
  const store = new ConfigStore();
  store.replaceSource('t', parseYamlText(yaml, 't.yaml').objects);
  const { snapshot } = buildSnapshot(store, 'cluster.local');
  const svc = snapshot.serviceByHost.get('reviews.bookinfo.svc.cluster.local')!;
  const byName = new Map(loadAssignments(snapshot).map((r) => [r.name, r.body as Doc]));
  const addresses = (name: string): string[] => (byName.get(name)?.endpoints ?? []).flatMap((l: Doc) => l.lb_endpoints.map((e: Doc) => e.endpoint.address.socket_address.address));
  const V1 = 'outbound|9080|v1|reviews.bookinfo.svc.cluster.local';

  it("Istio's name belongs to the rule of clients without rules of their own", () => {
    assert.deepEqual(addresses(V1), ['10.0.2.1']);
    assert.equal(subsetServiceName(snapshot, svc, 9080, 'v1', 'default'), V1);
    assert.equal(subsetServiceName(snapshot, svc, 9080, 'v1', 'bookinfo'), V1);
  });

  it("the client-side rule's v1 has a load assignment of its own; a subset only it defines keeps Istio's name", () => {
    const own = subsetServiceName(snapshot, svc, 9080, 'v1', 'aaa');
    assert.equal(own, `${V1}|aaa/reviews-canary`);
    assert.deepEqual(addresses(own), ['10.0.2.2']);
    assert.equal(subsetServiceName(snapshot, svc, 9080, 'canary', 'aaa'), 'outbound|9080|canary|reviews.bookinfo.svc.cluster.local');
    assert.deepEqual(addresses('outbound|9080|canary|reviews.bookinfo.svc.cluster.local'), ['10.0.2.2']);
  });

  it('every subset cluster reads endpoints its own rule selects', () => {
    for (const ns of ['default', 'bookinfo', 'aaa']) {
      const cluster = outboundClusters(snapshot, ns).find((c) => c.name === V1)!.body as Doc;
      const want = ns === 'aaa' ? ['10.0.2.2'] : ['10.0.2.1'];
      assert.deepEqual(addresses(cluster.eds_cluster_config.service_name), want, ns);
    }
  });
});
