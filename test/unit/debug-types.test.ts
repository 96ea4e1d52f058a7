// istio.io/debug/syncz and istio.io/debug/config_dump answered in-process: who may ask, what
// they see (own namespace only, unless meshd's), what a hostile request gets, and that a
// config dump never carries a private key.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ConfigStore } from '../../src/model/store.js';
import { buildSnapshot } from '../../src/model/mesh.js';
import { parseProxy } from '../../src/model/proxy.js';
import { parseYamlText } from '../../src/sources/file/file-source.js';
import { ConfigGenerator } from '../../src/xds/generator.js';
import { Connection, type ConnectionHooks } from '../../src/xds/connection.js';
import { ResourceCache } from '../../src/xds/resource-cache.js';
import { answerDebugRequest, DebugType, type DebugAnswerContext } from '../../src/xds/debug-types.js';
import { TypeUrl } from '../../src/translate/types.js';
import { decodeSotwResponse, decodeDeltaResponse } from '../support/ads-client.js';
import { serviceYaml } from '../support/meshd.js';

const hooks: ConnectionHooks = { onSent: () => undefined, onAck: () => undefined, onNack: () => undefined, onStaleNonce: () => undefined, onSecretRefused: () => undefined };
const KEY = '-----BEGIN PRIVATE KEY-----\nTOP-SECRET-KEY-BYTES\n-----END PRIVATE KEY-----\n';

async function setup(): Promise<{ conns: Connection[]; generator: ConfigGenerator }> {
  const store = new ConfigStore();
  store.replaceSource('t', parseYamlText(serviceYaml({ name: 'a', namespace: 'apps', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.0.0.1' }] }), 't.yaml').objects);
  const generator = new ConfigGenerator();
  generator.update(buildSnapshot(store, 'cluster.local'));
  const conns: Connection[] = [];
  for (const [pod, ns] of [['app-1', 'apps'], ['gw-1', 'gateways']] as const) {
    const proxy = parseProxy(`sidecar~10.0.0.9~${pod}.${ns}~${ns}.svc.cluster.local`, { INTERCEPTION_MODE: 'NONE', ISTIO_VERSION: '1.31.0', CLUSTER_ID: 'east' });
    const conn = new Connection(proxy, 'delta', generator, { write: async () => undefined }, hooks, 'meshd');
    conn.onDeltaRequest(TypeUrl.Cluster, [], [], {}, '', undefined);
    conn.onDeltaRequest(TypeUrl.Listener, [], [], {}, '', undefined);
    await conn.flush();
    conns.push(conn);
  }
  // The first proxy holds its own certificate and key (SDS `default`).
  const secret = new ResourceCache().intern(TypeUrl.Secret, { name: 'default', body: { name: 'default', tls_certificate: { certificate_chain: { inline_string: 'CERT' }, private_key: { inline_string: KEY } } } });
  conns[0]!.ownSecrets = [secret];
  conns[0]!.onDeltaRequest(TypeUrl.Secret, ['default'], [], {}, '', undefined);
  await conns[0]!.flush();
  // It ACKs its clusters and NACKs its listeners.
  const w = conns[0]!.watches;
  conns[0]!.onDeltaRequest(TypeUrl.Cluster, [], [], {}, w.get(TypeUrl.Cluster)!.lastNonce, undefined);
  conns[0]!.onDeltaRequest(TypeUrl.Listener, [], [], {}, w.get(TypeUrl.Listener)!.lastNonce, { code: 13, message: 'bad listener' });
  return { conns, generator };
}

function ctx(conns: Connection[], generator: ConfigGenerator, caller: DebugAnswerContext['caller']): DebugAnswerContext {
  return { caller, systemNamespace: 'istio-system', connections: conns, config: generator, controlPlane: JSON.stringify({ Component: 'istiod', ID: 'istiod-1', Info: { version: '0.1.0' } }) };
}

const SYSTEM = { namespace: 'istio-system', serviceAccount: 'default', trustDomain: 'cluster.local' };
const APPS = { namespace: 'apps', serviceAccount: 'app', trustDomain: 'cluster.local' };

describe('istio.io/debug/syncz', () => {
  it('refuses a caller without a verified identity', async () => {
    const { conns, generator } = await setup();
    const out = answerDebugRequest(DebugType.Syncz, [], 'sotw', ctx(conns, generator, undefined));
    assert.equal(out.kind, 'refuse');
    assert.equal(out.kind === 'refuse' && out.code, grpc.status.UNAUTHENTICATED);
  });

  it('gives meshd\'s namespace every proxy as istiod\'s ClientConfig, with statuses and the control plane id', async () => {
    const { conns, generator } = await setup();
    const out = answerDebugRequest(DebugType.Syncz, [], 'sotw', ctx(conns, generator, SYSTEM));
    assert.equal(out.kind, 'answer');
    const r = decodeSotwResponse(out.kind === 'answer' ? out.bytes : Buffer.alloc(0));
    assert.equal(r.type_url, DebugType.Syncz);
    assert.equal(JSON.parse(r.control_plane!).ID, 'istiod-1');
    const cc = r.resources.map((x) => x.body as { node: { id: string; metadata: { fields: Record<string, { stringValue: string }> } }; generic_xds_configs: { type_url: string; config_status: string; error_state?: { details: string } }[] });
    assert.deepEqual(cc.map((c) => c.node.id).sort(), ['app-1.apps', 'gw-1.gateways'], "istiod's proxy ids: <pod>.<namespace>");
    const app = cc.find((c) => c.node.id.includes('app-1'))!;
    assert.equal(app.node.metadata.fields.CLUSTER_ID!.stringValue, 'east');
    assert.equal(app.node.metadata.fields.ISTIO_VERSION!.stringValue, '1.31.0');
    const status = Object.fromEntries(app.generic_xds_configs.map((g) => [g.type_url, g.config_status]));
    assert.equal(status[TypeUrl.Cluster], 'SYNCED');
    assert.equal(status[TypeUrl.Listener], 'ERROR', 'a NACKed type is in ERROR, as istiod says');
    assert.equal(status[TypeUrl.Secret], 'STALE', 'sent, not yet acknowledged');
    assert.equal(app.generic_xds_configs.find((g) => g.type_url === TypeUrl.Listener)!.error_state!.details, 'bad listener');
  });

  it('gives a caller of another namespace only the proxies of its own', async () => {
    const { conns, generator } = await setup();
    const out = answerDebugRequest(DebugType.Syncz, [], 'delta', ctx(conns, generator, APPS));
    const r = decodeDeltaResponse(out.kind === 'answer' ? out.bytes : Buffer.alloc(0));
    assert.deepEqual(
      r.resources.map((x) => (x.body as { node: { id: string } }).node.id),
      ['app-1.apps'],
    );
  });

  it('refuses too many or too long resource names, naming the limit', async () => {
    const { conns, generator } = await setup();
    const many = answerDebugRequest(DebugType.Syncz, Array.from({ length: 17 }, (_, i) => `n${i}`), 'sotw', ctx(conns, generator, SYSTEM));
    assert.equal(many.kind === 'refuse' && many.code, grpc.status.INVALID_ARGUMENT);
    assert.match(many.kind === 'refuse' ? many.details : '', /at most 16/);
    const long = answerDebugRequest(DebugType.ConfigDump, ['x'.repeat(5000)], 'sotw', ctx(conns, generator, SYSTEM));
    assert.match(long.kind === 'refuse' ? long.details : '', /5000 characters; meshd accepts at most 1024/);
  });
});

describe('istio.io/debug/config_dump', () => {
  it('dumps what meshd sent the proxy named <pod>.<namespace>, with its private key redacted', async () => {
    const { conns, generator } = await setup();
    const out = answerDebugRequest(DebugType.ConfigDump, ['app-1.apps'], 'sotw', ctx(conns, generator, SYSTEM));
    const bytes = out.kind === 'answer' ? out.bytes : Buffer.alloc(0);
    assert.ok(!bytes.includes('TOP-SECRET-KEY-BYTES'), 'no key bytes in the answer');
    const r = decodeSotwResponse(bytes);
    assert.deepEqual(
      r.resources.map((x) => x.type_url),
      ['ClustersConfigDump', 'ListenersConfigDump', 'RoutesConfigDump', 'SecretsConfigDump'].map((t) => `type.googleapis.com/envoy.admin.v3.${t}`),
    );
    const clusters = r.resources[0]!.body as { dynamic_active_clusters: { cluster: { type_url: string } }[] };
    assert.ok(clusters.dynamic_active_clusters.length > 0);
    assert.equal(clusters.dynamic_active_clusters[0]!.cluster.type_url, TypeUrl.Cluster);
    const secrets = r.resources[3]!.body as { dynamic_active_secrets: { name: string }[] };
    assert.deepEqual(secrets.dynamic_active_secrets.map((s) => s.name), ['default']);
  });

  it('answers empty for a proxy that is not here, is another namespace\'s, or for garbage', async () => {
    const { conns, generator } = await setup();
    for (const [names, caller] of [[['nobody.apps'], SYSTEM], [['gw-1.gateways'], APPS], [[], SYSTEM], [['a', 'b'], SYSTEM], [['\u0000\uffff'], SYSTEM]] as const) {
      const out = answerDebugRequest(DebugType.ConfigDump, [...names], 'sotw', ctx(conns, generator, caller));
      assert.equal(out.kind, 'answer');
      assert.equal(decodeSotwResponse(out.kind === 'answer' ? out.bytes : Buffer.alloc(0)).resources.length, 0, JSON.stringify(names));
    }
  });
});
