import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { MESHD_CLI, REPO_ROOT } from '../support/meshd.js';
import { envoyBinaryPath, validateEnvoyConfig } from '../support/envoy.js';
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

describe('the demo ingress gateway presents its service account token', () => {
  const dir = join(REPO_ROOT, 'manifests', 'gateways', 'ingress');
  const deployment = parse(readFileSync(join(dir, 'deployment.yaml'), 'utf8')) as Doc;
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const template = (parse(readFileSync(join(dir, 'bootstrap.yaml'), 'utf8')) as Doc).data['envoy.yaml.tmpl'] as string;

  it('mounts a projected token for audience istio-ca, not the API token', () => {
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(pod.serviceAccountName, 'istio-ingressgateway');
    const volume = pod.volumes.find((v: Doc) => v.name === 'istio-token');
    assert.deepEqual(volume.projected.sources, [{ serviceAccountToken: { audience: 'istio-ca', expirationSeconds: 43200, path: 'istio-token' } }]);
    const mount = container.volumeMounts.find((m: Doc) => m.name === 'istio-token');
    assert.deepEqual(mount, { name: 'istio-token', mountPath: '/var/run/secrets/tokens', readOnly: true });
    assert.deepEqual(container.env.find((e: Doc) => e.name === 'ISTIO_TOKEN_FILE'), { name: 'ISTIO_TOKEN_FILE', value: '/var/run/secrets/tokens/istio-token' });
  });

  it("the bootstrap's xDS stream carries authorization: Bearer <token>, filled in at start; Envoy accepts it", async () => {
    const b = parse(template) as Doc;
    assert.deepEqual(b.dynamic_resources.ads_config.grpc_services[0].initial_metadata, [{ key: 'authorization', value: 'Bearer __ISTIO_TOKEN__' }]);
    const tmp = mkdtempSync(join(tmpdir(), 'meshd-gw-token-'));
    try {
      for (const d of ['bootstrap', 'proxy', 'bin', 'tokens']) mkdirSync(join(tmp, d));
      writeFileSync(join(tmp, 'bootstrap', 'envoy.yaml.tmpl'), template);
      const token = 'eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiaXN0aW8tY2EiXX0.c2lnbmF0dXJl';
      writeFileSync(join(tmp, 'tokens', 'istio-token'), token + '\n');
      // `envoy` on PATH validates instead of serving.
      writeFileSync(join(tmp, 'bin', 'envoy'), `#!/bin/sh\nexec '${envoyBinaryPath()}' --mode validate "$@"\n`);
      chmodSync(join(tmp, 'bin', 'envoy'), 0o755);
      const script = (container.args[0] as string).replaceAll('/etc/meshd/bootstrap/', `${tmp}/bootstrap/`).replaceAll('/etc/istio/proxy/', `${tmp}/proxy/`);
      const r = spawnSync('/bin/sh', ['-c', script], {
        encoding: 'utf8',
        env: { PATH: `${tmp}/bin:${process.env.PATH ?? ''}`, POD_IP: '10.244.1.7', POD_NAME: 'gw-1', ISTIO_TOKEN_FILE: join(tmp, 'tokens', 'istio-token') },
        timeout: 60_000,
      });
      assert.equal(r.status, 0, `the gateway command failed:\n${r.stdout}\n${r.stderr}`);
      const text = readFileSync(join(tmp, 'proxy', 'envoy.yaml'), 'utf8');
      assert.ok(!text.includes('__'), 'every placeholder is filled in');
      const filled = parse(text) as Doc;
      assert.deepEqual(filled.dynamic_resources.ads_config.grpc_services[0].initial_metadata, [{ key: 'authorization', value: `Bearer ${token}` }]);
      assert.equal(filled.node.id, 'router~10.244.1.7~gw-1.istio-system~istio-system.svc.cluster.local');

      // A missing token file stops the gateway rather than starting it without its identity.
      const missing = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', env: { PATH: `${tmp}/bin:${process.env.PATH ?? ''}`, POD_IP: '10.244.1.7', POD_NAME: 'gw-1', ISTIO_TOKEN_FILE: join(tmp, 'nope') }, timeout: 60_000 });
      assert.notEqual(missing.status, 0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
