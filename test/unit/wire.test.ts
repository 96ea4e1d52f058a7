import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeDeltaDiscoveryResponse, encodeDiscoveryResponse, decodeMessage } from '../../src/xds/wire.js';
import { ResourceCache } from '../../src/xds/resource-cache.js';
import { encodeEnvoyJson, EnvoyJsonError } from '../../src/xds/envoy-json.js';
import { TypeUrl } from '../../src/translate/types.js';

interface AnyMsg {
  type_url: string;
  value: Uint8Array;
}

describe('hand-framed xDS responses decode as the real messages', () => {
  const cache = new ResourceCache();
  const a = cache.intern(TypeUrl.Cluster, { name: 'a', body: { name: 'a', type: 'STATIC', connect_timeout: '1.5s' } });
  const b = cache.intern(TypeUrl.Cluster, { name: 'b', body: { name: 'b', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } } });

  it('DiscoveryResponse', () => {
    const bytes = encodeDiscoveryResponse({ versionInfo: 'v1', typeUrl: TypeUrl.Cluster, nonce: 'n1', framedResources: [a.sotwFramed(), b.sotwFramed()], controlPlane: 'meshd' });
    const r = decodeMessage<{ version_info: string; type_url: string; nonce: string; resources: AnyMsg[]; control_plane: { identifier: string } }>('envoy.service.discovery.v3.DiscoveryResponse', bytes);
    assert.equal(r.version_info, 'v1');
    assert.equal(r.nonce, 'n1');
    assert.equal(r.type_url, TypeUrl.Cluster);
    assert.equal(r.control_plane.identifier, 'meshd');
    assert.equal(r.resources.length, 2);
    const c = decodeMessage<{ name: string; connect_timeout: { seconds: number; nanos: number } }>('envoy.config.cluster.v3.Cluster', r.resources[0]!.value);
    assert.equal(c.name, 'a');
    assert.deepEqual(c.connect_timeout, { seconds: 1, nanos: 500_000_000 });
  });

  it('DeltaDiscoveryResponse', () => {
    const bytes = encodeDeltaDiscoveryResponse({ systemVersionInfo: 's', typeUrl: TypeUrl.Cluster, nonce: 'n2', framedResources: [a.deltaFramed()], removed: ['gone'] });
    const r = decodeMessage<{ resources: { name: string; version: string; resource: AnyMsg }[]; removed_resources: string[]; nonce: string }>('envoy.service.discovery.v3.DeltaDiscoveryResponse', bytes);
    assert.equal(r.nonce, 'n2');
    assert.deepEqual(r.removed_resources, ['gone']);
    assert.equal(r.resources[0]!.name, 'a');
    assert.equal(r.resources[0]!.version, a.version);
    assert.equal(r.resources[0]!.resource.type_url, TypeUrl.Cluster);
  });

  it('encodes equal content once and gives it one version', () => {
    const again = cache.intern(TypeUrl.Cluster, { name: 'a', body: { name: 'a', type: 'STATIC', connect_timeout: '1.5s' } });
    assert.equal(again, a);
    const changed = cache.intern(TypeUrl.Cluster, { name: 'a', body: { name: 'a', type: 'STATIC', connect_timeout: '2s' } });
    assert.notEqual(changed.version, a.version);
  });
});

describe('Envoy JSON encoding', () => {
  it('rejects unknown fields with their path', () => {
    assert.throws(
      () => encodeEnvoyJson('envoy.config.cluster.v3.Cluster', { name: 'x', load_assignment: { cluster_name: 'x', endpointz: [] } }),
      (e: unknown) => e instanceof EnvoyJsonError && e.path.endsWith('.load_assignment.endpointz'),
    );
  });
  it('rejects malformed durations and unknown enum values', () => {
    assert.throws(() => encodeEnvoyJson('envoy.config.cluster.v3.Cluster', { name: 'x', connect_timeout: '10' }), /duration/);
    assert.throws(() => encodeEnvoyJson('envoy.config.cluster.v3.Cluster', { name: 'x', type: 'NOPE' }), /unknown enum value NOPE/);
  });
  it('encodes Any, wrappers and Struct', () => {
    const bytes = encodeEnvoyJson('envoy.config.cluster.v3.Cluster', {
      name: 'x',
      per_connection_buffer_limit_bytes: 1024,
      metadata: { filter_metadata: { istio: { a: [1, 'b', { c: true }] } } },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', explicit_http_config: { http2_protocol_options: {} } },
      },
    });
    const c = decodeMessage<{ per_connection_buffer_limit_bytes: { value: number }; metadata: { filter_metadata: { istio: { fields: Record<string, unknown> } } } }>('envoy.config.cluster.v3.Cluster', bytes);
    assert.equal(c.per_connection_buffer_limit_bytes.value, 1024);
    assert.ok(c.metadata.filter_metadata.istio.fields.a);
  });
});
