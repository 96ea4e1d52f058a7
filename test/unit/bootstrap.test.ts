import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { MESHD_CLI } from '../support/meshd.js';
import { validateEnvoyConfig } from '../support/envoy.js';
import { parseProxy } from '../../src/model/proxy.js';

// The parsed bootstrap is walked freely in assertions.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>;

function bootstrap(args: string[]): Doc {
  return parse(execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', ...args], { encoding: 'utf8' })) as Doc;
}

describe('meshd bootstrap', () => {
  it('prints a sidecar bootstrap with an Istio node id and metadata', async () => {
    const b = bootstrap(['--ip', '10.1.0.5', '--pod', 'httpbin-1', '--namespace', 'shop', '--service-account', 'httpbin', '--labels', 'app=httpbin,version=v1', '--xds-address', '10.0.0.1:15010']);
    assert.equal(b.node.id, 'sidecar~10.1.0.5~httpbin-1.shop~shop.svc.cluster.local');
    assert.deepEqual(b.node.metadata.LABELS, { app: 'httpbin', version: 'v1' });
    assert.equal(b.node.metadata.NAMESPACE, 'shop');
    assert.equal(b.node.metadata.SERVICE_ACCOUNT, 'httpbin');
    assert.equal(b.node.metadata.INSTANCE_IPS, '10.1.0.5');
    assert.equal(b.dynamic_resources.ads_config.api_type, 'GRPC');
    assert.equal(b.admin.address.socket_address.port_value, 15000);
    assert.equal(b.static_resources.listeners[0].address.socket_address.port_value, 15021);
    // meshd itself parses what the bootstrap says.
    const p = parseProxy(b.node.id, b.node.metadata);
    assert.equal(p.namespace, 'shop');
    assert.equal(p.serviceAccount, 'httpbin');
    const v = await validateEnvoyConfig(b);
    assert.ok(v.ok, v.output);
  });

  it('prints a delta gateway bootstrap', async () => {
    const b = bootstrap(['--type', 'router', '--pod', 'istio-ingressgateway-1', '--namespace', 'istio-system', '--labels', 'istio=ingressgateway', '--delta', '--format', 'json', '--xds-address', 'istiod.istio-system.svc:15010']);
    assert.match(b.node.id, /^router~/);
    assert.equal(b.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
    assert.equal(b.static_resources.clusters[0].type, 'STRICT_DNS');
    const v = await validateEnvoyConfig(b);
    assert.ok(v.ok, v.output);
  });

  it('prints a proxyless gRPC bootstrap', () => {
    const b = bootstrap(['--proxyless', '--xds-address', '127.0.0.1:15010']);
    assert.equal(b.xds_servers[0].server_uri, '127.0.0.1:15010');
    assert.equal(b.node.metadata.GENERATOR, 'grpc');
  });

  it('rejects a bad address', () => {
    assert.throws(() => bootstrap(['--xds-address', 'nope']), /xds-address/);
  });
});
