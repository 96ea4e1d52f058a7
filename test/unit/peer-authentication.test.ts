// PeerAuthentication (security.istio.io): validation that names the object and the field,
// resolution per workload port as Istio composes mesh, namespace, workload and port levels,
// the proxy-class key, and the file source reading it from YAML.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { formatObjectError, parseMeshObject, type ObjectError, type PeerAuthenticationObject } from '../../src/model/objects.js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot, istioConfig, type IstioConfig } from '../../src/model/mesh.js';
import { FileSource, parseYamlText, type FileProblem } from '../../src/sources/file/file-source.js';
import { silentLogger } from '../../src/util/log.js';
import { findingLine, type Finding } from '../../src/model/finding.js';
import {
  effectivePeerAuthentication,
  inboundMtlsMode,
  peerAuthenticationKey,
  type MtlsMode,
} from '../../src/translate/peer-authentication.js';

type Raw = Record<string, unknown>;

function pa(namespace: string, name: string, spec: Raw, extra: { apiVersion?: string; created?: string | null } = {}): Raw {
  const metadata: Raw = { name, namespace };
  if (extra.created !== undefined) metadata.creationTimestamp = extra.created;
  return { apiVersion: extra.apiVersion ?? 'security.istio.io/v1', kind: 'PeerAuthentication', metadata, spec };
}

function errors(raw: Raw): ObjectError[] {
  const r = parseMeshObject(raw);
  assert.ok(r.ok !== 'ignored', 'the kind is known');
  assert.equal(r.ok, false, 'the object is refused');
  return r.ok ? [] : r.errors;
}

function parsed(raw: Raw): PeerAuthenticationObject {
  const r = parseMeshObject(raw);
  assert.ok(r.ok === true, `valid: ${r.ok === false ? r.errors.map(formatObjectError).join('; ') : String(r.ok)}`);
  assert.equal(r.value.kind, 'PeerAuthentication');
  return r.value as PeerAuthenticationObject;
}

/** The IstioConfig of a store holding `objects`, built as the push controller builds it. */
/** The validation stage's findings about PeerAuthentications that never apply. */
function ineffective(c: IstioConfig): Finding[] {
  return c.findings.filter((f) => f.code === 'IST0167');
}

function configOf(...objects: Raw[]): IstioConfig {
  const store = new ConfigStore();
  store.replaceSource('test', objects.map(parsed));
  return istioConfig(store, 'cluster.local');
}

describe('PeerAuthentication validation names the object, the field and what is valid', () => {
  it('is read at security.istio.io v1 and v1beta1, with every field kept', () => {
    const spec = { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' }, '9090': {} } };
    for (const v of ['v1', 'v1beta1']) {
      const o = parsed(pa('shop', 'reviews', spec, { apiVersion: `security.istio.io/${v}`, created: '2024-05-01T12:00:00Z' }));
      assert.deepEqual(o.spec, spec, v);
      assert.equal(o.metadata.creationTimestamp, '2024-05-01T12:00:00Z');
    }
    const alpha = parseMeshObject(pa('shop', 'reviews', spec, { apiVersion: 'security.istio.io/v1alpha1' }));
    assert.deepEqual(alpha, { ok: 'ignored', reason: 'unsupported kind security.istio.io/v1alpha1/PeerAuthentication' });
    // `kubectl create --dry-run -o yaml` writes creationTimestamp: null.
    assert.equal(parsed(pa('shop', 'x', {}, { created: null })).metadata.creationTimestamp, undefined);
  });

  it('an unknown mode, at the workload level and at a port', () => {
    const top = errors(pa('shop', 'bad-mode', { mtls: { mode: 'MUTUAL' } }));
    assert.equal(top.length, 1);
    assert.deepEqual({ ...top[0]!, message: '' }, { kind: 'PeerAuthentication', namespace: 'shop', name: 'bad-mode', field: 'spec.mtls.mode', message: '' });
    assert.match(top[0]!.message, /"MUTUAL" is not an mTLS mode; use one of UNSET, DISABLE, PERMISSIVE, STRICT/);
    assert.equal(formatObjectError(top[0]!).startsWith('PeerAuthentication shop/bad-mode: spec.mtls.mode: "MUTUAL"'), true);

    const port = errors(pa('shop', 'bad-port-mode', { selector: { matchLabels: { app: 'a' } }, portLevelMtls: { '8080': { mode: 'strict' } } }));
    assert.equal(port[0]!.field, 'spec.portLevelMtls.8080.mode');
    assert.match(port[0]!.message, /"strict" is not an mTLS mode/);
  });

  it('portLevelMtls without a selector (mesh- or namespace-wide) is refused, as Istio refuses it', () => {
    for (const [name, selector] of [['no-selector', undefined], ['empty-labels', { matchLabels: {} }]] as const) {
      const e = errors(pa('shop', name, { ...(selector ? { selector } : {}), mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' } } }));
      assert.equal(e.length, 1, name);
      assert.equal(e[0]!.field, 'spec.portLevelMtls');
      assert.equal(e[0]!.name, name);
      assert.match(e[0]!.message, /needs selector\.matchLabels: port-level mTLS is only allowed in a workload-specific policy/);
    }
    const mesh = errors(pa('istio-system', 'default', { portLevelMtls: { '8080': { mode: 'DISABLE' } } }));
    assert.equal(mesh[0]!.namespace, 'istio-system');
  });

  it('port keys must be port numbers 1-65535; an empty portLevelMtls is refused', () => {
    const selector = { matchLabels: { app: 'a' } };
    const e = errors(pa('shop', 'ports', { selector, portLevelMtls: { '0': { mode: 'STRICT' }, '65536': { mode: 'STRICT' }, http: { mode: 'STRICT' }, '-1': {}, '80.5': {}, '1': {}, '65535': {} } }));
    assert.deepEqual(e.map((x) => x.field).sort(), ['spec.portLevelMtls.-1', 'spec.portLevelMtls.0', 'spec.portLevelMtls.65536', 'spec.portLevelMtls.80.5', 'spec.portLevelMtls.http'].sort());
    const zero = e.find((x) => x.field === 'spec.portLevelMtls.0')!;
    assert.match(zero.message, /"0" is not a port: keys must be port numbers from 1 to 65535/);
    parsed(pa('shop', 'edges', { selector, portLevelMtls: { '1': { mode: 'STRICT' }, '65535': { mode: 'DISABLE' } } }));

    const empty = errors(pa('shop', 'empty', { selector, portLevelMtls: {} }));
    assert.equal(empty[0]!.field, 'spec.portLevelMtls');
    assert.match(empty[0]!.message, /is empty: list at least one port/);
  });

  it('selector labels: no wildcards, no empty keys, valid label syntax', () => {
    const e = errors(pa('shop', 'sel', { selector: { matchLabels: { 'app*': 'a', '': 'b', version: 'v*', 'bad key': 'c', 'app.kubernetes.io/name': 'ok' } } }));
    const byField = (f: string) => e.filter((x) => x.field === f).map((x) => x.message);
    assert.match(byField('spec.selector.matchLabels.app*')[0]!, /wildcards are not supported in a selector/);
    assert.match(byField('spec.selector.matchLabels.version')[0]!, /"v\*": wildcards are not supported/);
    assert.match(byField('spec.selector.matchLabels.bad key')[0]!, /is not a label key/);
    assert.equal(e.length, 4, e.map(formatObjectError).join('\n'));
  });

  it('wrong types and a bad creationTimestamp are named by field', () => {
    assert.equal(errors(pa('shop', 't', { mtls: 'STRICT' }))[0]!.field, 'spec.mtls');
    assert.equal(errors(pa('shop', 't', { portLevelMtls: ['8080'] , selector: { matchLabels: { a: 'b' } } }))[0]!.field, 'spec.portLevelMtls');
    assert.equal(errors(pa('shop', 't', { selector: { matchLabels: { app: 1 } } }))[0]!.field, 'spec.selector.matchLabels.app');
    const ts = errors(pa('shop', 't', {}, { created: 'yesterday' }));
    assert.equal(ts[0]!.field, 'metadata.creationTimestamp');
    assert.match(ts[0]!.message, /RFC 3339/);
  });

  it('the snapshot holds the valid ones, sorted by namespace/name', () => {
    const store = new ConfigStore();
    store.replaceSource('t', [pa('shop', 'b', {}), pa('istio-system', 'default', {}), pa('shop', 'a', {}), pa('bank', 'z', {})].map(parsed));
    const { snapshot } = buildSnapshot(store, 'cluster.local');
    assert.deepEqual(snapshot.config.peerAuthentications.map((p) => `${p.metadata.namespace}/${p.metadata.name}`), ['bank/z', 'istio-system/default', 'shop/a', 'shop/b']);
  });
});

describe('PeerAuthentication resolution per workload port', () => {
  const mesh = (mode: string | undefined, name = 'default', created?: string) => pa('istio-system', name, mode === undefined ? {} : { mtls: { mode } }, created ? { created } : {});
  const nsWide = (ns: string, mode: string | undefined, name = 'default', created?: string) => pa(ns, name, mode === undefined ? {} : { mtls: { mode } }, created ? { created } : {});
  const workload = (ns: string, name: string, labels: Record<string, string>, mode: string | undefined, ports?: Record<string, string | undefined>, created?: string) =>
    pa(
      ns,
      name,
      {
        selector: { matchLabels: labels },
        ...(mode === undefined ? {} : { mtls: { mode } }),
        ...(ports ? { portLevelMtls: Object.fromEntries(Object.entries(ports).map(([p, m]) => [p, m === undefined ? {} : { mode: m }])) } : {}),
      },
      created ? { created } : {},
    );
  const mode = (c: IstioConfig, ns: string, labels: Record<string, string>, port: number): MtlsMode => inboundMtlsMode(c, ns, labels, port);

  it('with no policy every port is PERMISSIVE', () => {
    const c = configOf();
    assert.equal(mode(c, 'shop', { app: 'a' }, 8080), 'PERMISSIVE');
    assert.equal(peerAuthenticationKey(c, 'shop', { app: 'a' }), 'PERMISSIVE');
  });

  it('precedence: mesh, then namespace, then workload, then port', () => {
    const c = configOf(
      mesh('STRICT'),
      nsWide('legacy', 'DISABLE'),
      nsWide('shop', 'PERMISSIVE'),
      workload('shop', 'reviews', { app: 'reviews' }, 'STRICT', { '9080': 'DISABLE', '9443': 'PERMISSIVE' }),
    );
    assert.equal(mode(c, 'bank', { app: 'x' }, 80), 'STRICT', 'mesh-wide applies where nothing else does');
    assert.equal(mode(c, 'legacy', { app: 'reviews' }, 80), 'DISABLE', 'the namespace overrides the mesh');
    assert.equal(mode(c, 'shop', { app: 'ratings' }, 9080), 'PERMISSIVE', 'the workload policy selects by label only');
    assert.equal(mode(c, 'shop', { app: 'reviews', version: 'v2' }, 8080), 'STRICT', 'the workload overrides the namespace');
    assert.equal(mode(c, 'shop', { app: 'reviews' }, 9080), 'DISABLE', 'a port overrides the workload');
    assert.equal(mode(c, 'shop', { app: 'reviews' }, 9443), 'PERMISSIVE');
    assert.equal(mode(c, 'bank', { app: 'reviews' }, 9080), 'STRICT', 'a workload policy applies in its own namespace only');
    assert.equal(mode(c, 'istio-system', { app: 'reviews' }, 9080), 'STRICT');
  });

  it('UNSET (or no mode) inherits from the level above, at every level', () => {
    // Namespace UNSET -> mesh; workload without mtls -> namespace; port UNSET -> the workload's resolved mode.
    const c = configOf(
      mesh('STRICT'),
      nsWide('shop', 'UNSET'),
      nsWide('bank', 'DISABLE'),
      workload('shop', 'w', { app: 'w' }, undefined, { '8080': 'UNSET', '8081': undefined, '8082': 'PERMISSIVE' }),
      workload('bank', 'w', { app: 'w' }, 'UNSET', { '8080': 'UNSET' }),
    );
    assert.equal(mode(c, 'shop', { app: 'x' }, 1), 'STRICT', 'namespace UNSET inherits the mesh mode');
    assert.equal(mode(c, 'shop', { app: 'w' }, 1), 'STRICT', 'workload without mtls inherits');
    assert.equal(mode(c, 'shop', { app: 'w' }, 8080), 'STRICT', 'port UNSET inherits');
    assert.equal(mode(c, 'shop', { app: 'w' }, 8081), 'STRICT', 'port without mode inherits');
    assert.equal(mode(c, 'shop', { app: 'w' }, 8082), 'PERMISSIVE');
    assert.equal(mode(c, 'bank', { app: 'w' }, 8080), 'DISABLE', 'UNSET workload and port inherit the namespace, not the mesh');
    const unsetMesh = configOf(mesh('UNSET'));
    assert.equal(mode(unsetMesh, 'shop', {}, 80), 'PERMISSIVE', 'an UNSET mesh policy leaves the default');
  });

  it('several mesh-wide or namespace-wide policies: the oldest applies, the others are reported and ignored', () => {
    const c = configOf(
      mesh('DISABLE', 'a-newer', '2024-06-01T00:00:00Z'),
      mesh('STRICT', 'z-older', '2024-01-01T00:00:00Z'),
      nsWide('shop', 'DISABLE', 'b', '2024-03-01T00:00:00Z'),
      nsWide('shop', 'PERMISSIVE', 'a', '2024-03-01T00:00:00Z'),
      nsWide('bank', 'STRICT', 'has-time', '2020-01-01T00:00:00Z'),
      nsWide('bank', 'DISABLE', 'no-time'),
    );
    assert.equal(mode(c, 'other', {}, 80), 'STRICT', 'the older mesh policy wins though its name sorts last');
    assert.equal(mode(c, 'shop', {}, 80), 'PERMISSIVE', 'same creation time: the first by name wins');
    assert.equal(mode(c, 'bank', {}, 80), 'DISABLE', 'no creationTimestamp (a YAML file) counts as oldest, as Go\'s zero time in Istio');
    const conflicts = ineffective(c);
    assert.deepEqual(
      conflicts.map((x) => [`${x.namespace}/${x.name}`, x.field, x.code, x.severity]),
      [
        ['bank/has-time', 'spec.selector', 'IST0167', 'Error'],
        ['istio-system/a-newer', 'spec.selector', 'IST0167', 'Error'],
        ['shop/b', 'spec.selector', 'IST0167', 'Error'],
      ],
    );
    assert.match(conflicts[0]!.message, /the older namespace-wide PeerAuthentication bank\/no-time applies instead/);
    const meshLoser = conflicts.find((x) => x.name === 'a-newer')!;
    assert.match(findingLine(meshLoser), /^Error \[IST0167\] \(PeerAuthentication istio-system\/a-newer\) The policy has no impact: spec\.selector is empty, so this policy is mesh-wide; the older mesh-wide PeerAuthentication istio-system\/z-older applies instead and this one is ignored/);
    assert.match(conflicts.find((x) => x.name === 'b')!.message, /namespace-wide PeerAuthentication shop\/a applies instead/);
  });

  it('several workload policies selecting one workload: the oldest applies, ports included', () => {
    const c = configOf(
      workload('shop', 'by-app', { app: 'reviews' }, 'DISABLE', { '9080': 'STRICT' }, '2024-02-01T00:00:00Z'),
      workload('shop', 'by-version', { version: 'v2' }, 'STRICT', undefined, '2024-01-01T00:00:00Z'),
      workload('shop', 'narrower', { app: 'reviews', version: 'v3' }, 'PERMISSIVE', undefined, '2024-03-01T00:00:00Z'),
    );
    assert.equal(mode(c, 'shop', { app: 'reviews', version: 'v2' }, 9080), 'STRICT', 'by-version is older: its mode, and by-app\'s port 9080 does not apply');
    assert.equal(mode(c, 'shop', { app: 'reviews', version: 'v2' }, 1), 'STRICT');
    assert.equal(mode(c, 'shop', { app: 'reviews', version: 'v1' }, 1), 'DISABLE', 'only by-app selects v1');
    assert.equal(mode(c, 'shop', { app: 'reviews', version: 'v1' }, 9080), 'STRICT');
    assert.equal(mode(c, 'shop', { app: 'reviews', version: 'v3' }, 1), 'DISABLE', 'narrower is newer than by-app, which also selects v3');
    // narrower selects nothing by-app does not: it can never apply, and is reported.
    assert.deepEqual(ineffective(c).map((x) => x.name), ['narrower']);
    assert.match(ineffective(c)[0]!.message, /matches no workload that the older PeerAuthentication shop\/by-app does not match too/);
  });

  it('a policy with a selector in the root namespace applies to no workload, and is reported', () => {
    const c = configOf(mesh('PERMISSIVE'), workload('istio-system', 'gw', { app: 'gw' }, 'STRICT', { '8443': 'DISABLE' }));
    assert.equal(mode(c, 'istio-system', { app: 'gw' }, 8443), 'PERMISSIVE');
    assert.equal(mode(c, 'shop', { app: 'gw' }, 8443), 'PERMISSIVE');
    const [x] = ineffective(c);
    assert.equal(`${x!.namespace}/${x!.name}`, 'istio-system/gw');
    assert.match(x!.message, /root namespace istio-system only a policy without a selector \(mesh-wide\) applies/);
  });

  it('an empty selector makes a namespace-wide policy', () => {
    const c = configOf(pa('shop', 'all', { selector: { matchLabels: {} }, mtls: { mode: 'STRICT' } }), pa('istio-system', 'mesh', { selector: {}, mtls: { mode: 'DISABLE' } }));
    assert.equal(mode(c, 'shop', { app: 'x' }, 1), 'STRICT');
    assert.equal(mode(c, 'bank', { app: 'x' }, 1), 'DISABLE');
  });

  it('the key is equal for two workloads exactly when every port resolves the same way', () => {
    const c = configOf(
      mesh('STRICT'),
      nsWide('shop', 'PERMISSIVE'),
      workload('shop', 'a', { app: 'a' }, 'STRICT'),
      workload('shop', 'b', { app: 'b' }, 'PERMISSIVE', { '8080': 'STRICT', '9090': 'PERMISSIVE' }),
      workload('shop', 'c', { app: 'c' }, undefined, { '8080': 'STRICT' }),
      workload('shop', 'd', { app: 'd' }, 'PERMISSIVE', { '9090': 'UNSET' }),
      workload('shop', 'e', { app: 'e' }, 'DISABLE', { '8080': 'STRICT', '7070': 'PERMISSIVE' }),
      workload('shop', 'f', { app: 'f' }, 'DISABLE', { '7070': 'PERMISSIVE', '8080': 'STRICT' }),
      workload('bank', 'g', { app: 'g' }, 'DISABLE'),
    );
    const workloads: [string, Record<string, string>][] = [
      ['shop', { app: 'a' }], // STRICT everywhere
      ['bank', { app: 'x' }], // STRICT from the mesh
      ['shop', { app: 'b' }], // PERMISSIVE, 8080 STRICT
      ['shop', { app: 'c' }], // the same, by inheritance
      ['shop', { app: 'd' }], // PERMISSIVE everywhere
      ['shop', { app: 'x' }], // PERMISSIVE from the namespace
      ['shop', { app: 'e' }], // DISABLE, 7070 PERMISSIVE, 8080 STRICT
      ['shop', { app: 'f' }], // the same, ports listed in another order
      ['bank', { app: 'g' }], // DISABLE everywhere
    ];
    // Ports no policy names resolve to the workload's mode; one of them stands for all.
    const ports = [7070, 8080, 9090, 12345];
    const modes = workloads.map(([ns, labels]) => ports.map((p) => mode(c, ns, labels, p)).join(','));
    const keys = workloads.map(([ns, labels]) => peerAuthenticationKey(c, ns, labels));
    for (let i = 0; i < workloads.length; i++) {
      for (let j = 0; j < workloads.length; j++) {
        assert.equal(keys[i] === keys[j], modes[i] === modes[j], `${JSON.stringify(workloads[i])} vs ${JSON.stringify(workloads[j])}: keys ${keys[i]} / ${keys[j]}, modes ${modes[i]} / ${modes[j]}`);
      }
    }
    assert.equal(new Set(keys).size, 5, 'five distinct resolutions');
    assert.equal(keys[0], 'STRICT');
    assert.equal(keys[2], 'PERMISSIVE;8080=STRICT');
    assert.equal(keys[6], 'DISABLE;7070=PERMISSIVE,8080=STRICT');
  });

  it('is computed once per IstioConfig: a new config is resolved afresh', () => {
    const store = new ConfigStore();
    store.replaceSource('t', [mesh('STRICT'), workload('shop', 'w', { app: 'w' }, 'DISABLE')].map(parsed));
    const c1 = istioConfig(store, 'cluster.local');
    const first = effectivePeerAuthentication(c1, 'shop', { app: 'w', pod: 'w-1' });
    assert.equal(effectivePeerAuthentication(c1, 'shop', { app: 'w', pod: 'w-2' }), first, 'workloads under the same policies share one resolution');
    assert.deepEqual([first.mode, [...first.ports]], ['DISABLE', []]);
    store.upsert('t', parsed(workload('shop', 'w', { app: 'w' }, 'PERMISSIVE')));
    const c2 = istioConfig(store, 'cluster.local');
    assert.equal(inboundMtlsMode(c2, 'shop', { app: 'w' }, 80), 'PERMISSIVE');
    assert.equal(inboundMtlsMode(c1, 'shop', { app: 'w' }, 80), 'DISABLE', 'the old config keeps its answer');
  });
});

describe('file source: PeerAuthentication from YAML', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const yaml = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: reviews
  namespace: shop
spec:
  selector:
    matchLabels:
      app: reviews
  mtls:
    mode: PERMISSIVE
  portLevelMtls:
    9080:
      mode: DISABLE
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: broken
  namespace: shop
spec:
  portLevelMtls:
    8080:
      mode: STRICT
`;

  it('parses both versions; numeric YAML keys become ports; an invalid one is reported with file, document and field', () => {
    const r = parseYamlText(yaml, 'pa.yaml');
    assert.deepEqual(r.objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`), ['PeerAuthentication/istio-system/default', 'PeerAuthentication/shop/reviews']);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]!.document, 2);
    assert.equal(r.problems[0]!.object?.field, 'spec.portLevelMtls');
    assert.deepEqual(r.invalidKeys, ['PeerAuthentication/shop/broken']);
  });

  it('a watched directory puts them in the store, and the snapshot resolves them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-pa-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'security.yaml'), yaml);
    const store = new ConfigStore();
    const problems: FileProblem[] = [];
    const source = new FileSource({ dir, store, log: silentLogger, onProblem: (p) => problems.push(p) });
    source.reload();
    assert.deepEqual(store.list('PeerAuthentication').map((o) => o.metadata.name).sort(), ['default', 'reviews']);
    assert.deepEqual(problems.map((p) => [p.file, p.document, p.object?.field]), [['security.yaml', 2, 'spec.portLevelMtls']]);
    const config = buildSnapshot(store, 'cluster.local').snapshot.config;
    assert.equal(inboundMtlsMode(config, 'shop', { app: 'reviews' }, 9080), 'DISABLE');
    assert.equal(inboundMtlsMode(config, 'shop', { app: 'reviews' }, 9081), 'PERMISSIVE');
    assert.equal(inboundMtlsMode(config, 'bank', { app: 'reviews' }, 9080), 'STRICT');

    // An edit is picked up on reload; deleting the file removes them.
    writeFileSync(join(dir, 'security.yaml'), yaml.replace('mode: STRICT\n---', 'mode: DISABLE\n---'));
    source.reload(new Set(['security.yaml']));
    assert.equal(inboundMtlsMode(istioConfig(store, 'cluster.local'), 'bank', {}, 80), 'DISABLE');
    rmSync(join(dir, 'security.yaml'));
    source.reload();
    assert.equal(store.list('PeerAuthentication').length, 0);
  });
});
