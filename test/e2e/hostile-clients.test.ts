/**
 * meshd against hostile and broken xDS clients, each case written to fail on the code
 * before it was fixed: a gateway's private key for a client that proved nothing, streams
 * that never read, oversized metadata, NACK floods, debug paths into Object.prototype.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { serviceYaml, startMeshd, type MeshdProcess } from '../support/meshd.js';
import { connectAds, encodeRequest, istioNode, TypeUrl, type DeltaStream } from '../support/ads-client.js';
import { selfSignedCertificate } from '../support/tls.js';
import { eventually, metricValue } from '../support/poll.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function gatewayFiles(): Record<string, string> {
  const cert = selfSignedCertificate('httpbin.example.com');
  return {
    'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.1.0.7' }] }),
    'secret.yaml': `apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {name: httpbin-credential, namespace: istio-system}
data:
  tls.crt: ${b64(cert.certPem)}
  tls.key: ${b64(cert.keyPem)}
`,
    'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: httpbin-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
`,
  };
}

async function metric(m: MeshdProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue((await m.monitoring('/metrics')).body, name, labels);
}

describe('gateway credentials need a verified identity', () => {
  let meshd: MeshdProcess;
  before(async () => {
    meshd = await startMeshd({ files: gatewayFiles() });
  });
  after(async () => {
    await meshd?.stop();
  });

  for (const protocol of ['delta', 'sotw'] as const) {
    it(`a ${protocol} client without a token that claims to be the gateway gets an empty secret, never the key`, async () => {
      const node = istioNode({ type: 'router', pod: `gw-${protocol}`, namespace: 'istio-system', ip: '10.9.0.1', labels: { istio: 'ingressgateway' } });
      const before = await metric(meshd, 'meshd_sds_refusals_total', { reason: 'no-verified-identity' });
      const names = ['kubernetes://httpbin-credential'];
      const s = protocol === 'delta' ? connectAds(meshd.xdsAddress, { delta: true }) : connectAds(meshd.xdsAddress);
      try {
        if (protocol === 'delta') (s as DeltaStream).send({ node, type_url: TypeUrl.Secret, resource_names_subscribe: names });
        else s.send({ node, type_url: TypeUrl.Secret, resource_names: names } as never);
        const r = await s.next(5000);
        assert.equal(r.type_url, TypeUrl.Secret);
        assert.deepEqual(r.resources.map((x) => x.name), names);
        const body = r.resources[0]!.body;
        assert.equal(body.tls_certificate, undefined, `no certificate or key: got ${JSON.stringify(body).slice(0, 200)}`);
        assert.doesNotMatch(JSON.stringify(r), /PRIVATE KEY/);
      } finally {
        await s.close();
      }
      await eventually('the refusal counted', async () => ((await metric(meshd, 'meshd_sds_refusals_total', { reason: 'no-verified-identity' })) > before ? true : undefined));
      assert.ok(meshd.records().some((r) => /gateway credential withheld/.test(String(r.msg)) && r.secret === 'kubernetes://httpbin-credential'));
    });
  }
});

/** An HTTP/2 client whose flow-control window is 0: it never takes a byte of data, but answers pings. */
function stallingStream(address: string, pod: string): { session: http2.ClientHttp2Session; closed: Promise<void> } {
  const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 0 } });
  session.on('error', () => undefined);
  const stream = session.request({
    ':method': 'POST',
    ':path': '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => undefined);
  const msg = encodeRequest('envoy.service.discovery.v3.DeltaDiscoveryRequest', { node: istioNode({ pod, ip: '10.8.0.1' }), type_url: TypeUrl.Cluster });
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  stream.write(frame);
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return { session, closed };
}

describe('streams that never read cannot starve the others', () => {
  let meshd: MeshdProcess;
  const stallers: ReturnType<typeof stallingStream>[] = [];
  before(async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`svc-${i}.yaml`] = serviceYaml({ name: `svc-${i}`, ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: `10.2.0.${i + 1}` }] });
    meshd = await startMeshd({
      files,
      extraArgs: ['--push-concurrency', '4', '--push-slot-timeout', '200ms', '--xds-send-timeout', '1s', '--xds-stall-grace', '2s'],
    });
  });
  after(async () => {
    for (const s of stallers) s.session.destroy();
    await meshd?.stop();
  });

  it('a new proxy gets its clusters while 12 streams with a closed window hold more than every push slot', async () => {
    for (let i = 0; i < 12; i++) stallers.push(stallingStream(meshd.xdsAddress, `staller-${i}`));
    await eventually('the stallers connected', async () => ((await metric(meshd, 'pilot_xds')) >= 12 ? true : undefined));
    const s = connectAds(meshd.xdsAddress, { delta: true });
    try {
      const start = Date.now();
      s.send({ node: istioNode({ pod: 'good-1', ip: '10.3.0.1' }), type_url: TypeUrl.Cluster });
      const r = await s.next(3000);
      assert.ok(r.resources.some((x) => x.name === 'outbound|80||svc-0.default.svc.cluster.local'));
      const first = Date.now() - start;
      s.send({ type_url: TypeUrl.Cluster, response_nonce: r.nonce });
      // A change made while the stallers are still attached reaches the connected proxy.
      meshd.writeConfig('late.yaml', serviceYaml({ name: 'late', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.2.1.1' }] }));
      const t0 = Date.now();
      const u = await s.next(3000);
      assert.ok(u.resources.some((x) => x.name === 'outbound|80||late.default.svc.cluster.local'));
      assert.ok(first < 3000 && Date.now() - t0 < 3000, `first response ${first} ms, update ${Date.now() - t0} ms`);
    } finally {
      await s.close();
    }
  });

  it('stalled streams are detached, counted, logged once each, and closed after the grace', async () => {
    await eventually('12 stalled streams counted', async () => ((await metric(meshd, 'meshd_xds_stalled_streams_total')) >= 12 ? true : undefined), 5000);
    await eventually('the stalled streams closed', async () => ((await metric(meshd, 'meshd_xds_stalled_streams_closed_total')) >= 12 ? true : undefined), 6000);
    await Promise.all(stallers.map((s) => s.closed));
    assert.equal(await metric(meshd, 'pilot_xds'), 0, 'no connection left');
    const stalledLogs = meshd.records().filter((r) => /xDS stream stalled/.test(String(r.msg)));
    assert.equal(stalledLogs.length, 12, 'one log line per stalled stream');
    const held = JSON.parse((await meshd.monitoring('/debug/cachez')).body) as { held: { contexts: number } };
    assert.equal(held.held.contexts, 0, 'nothing held for the departed proxies');
  });
});

describe('what a client sends is bounded', () => {
  let meshd: MeshdProcess;
  before(async () => {
    meshd = await startMeshd({ files: { 'httpbin.yaml': serviceYaml({ name: 'httpbin', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.1.0.7' }] }) } });
  });
  after(async () => {
    await meshd?.stop();
  });

  const refused = async (node: ReturnType<typeof istioNode>, pattern: RegExp): Promise<void> => {
    const s = connectAds(meshd.xdsAddress, { delta: true });
    s.send({ node, type_url: TypeUrl.Cluster });
    const st = await s.ended(5000);
    assert.equal(st.code, grpc.status.INVALID_ARGUMENT);
    assert.match(st.details, pattern);
    await s.close();
  };

  it('refuses 5 MB of node metadata, too many labels and a huge node id with INVALID_ARGUMENT', async () => {
    await refused(istioNode({ pod: 'big', metadata: { BLOB: 'x'.repeat(5 * 1024 * 1024) } }), /node metadata is \d+ bytes; meshd accepts at most 65536/);
    const labels: Record<string, string> = {};
    for (let i = 0; i < 300; i++) labels[`l${i}`] = 'v';
    await refused(istioNode({ pod: 'labels', labels }), /300 labels; meshd accepts at most 256/);
    await refused(istioNode({ pod: 'p'.repeat(5000) }), /node id is \d+ characters/);
    // What meshd logged of the refusals is bounded too.
    const longest = Math.max(...meshd.records().map((r) => JSON.stringify(r).length));
    assert.ok(longest < 4096, `longest log record ${longest} bytes`);
  });

  it('releases what proxies held when they leave', async () => {
    for (let round = 0; round < 3; round++) {
      const streams = [];
      for (let i = 0; i < 10; i++) {
        const s = connectAds(meshd.xdsAddress, { delta: true });
        s.send({ node: istioNode({ pod: `r${round}-${i}`, ip: `10.4.${round}.${i + 1}`, labels: { app: `a${i}`, blob: 'y'.repeat(30_000) } }), type_url: TypeUrl.Cluster });
        streams.push(s);
      }
      await Promise.all(streams.map((s) => s.next(5000)));
      const during = JSON.parse((await meshd.monitoring('/debug/cachez')).body) as { held: { contexts: number } };
      assert.equal(during.held.contexts, 10);
      await Promise.all(streams.map((s) => s.close()));
      await eventually('the proxies released', async () => {
        const h = JSON.parse((await meshd.monitoring('/debug/cachez')).body) as { held: { contexts: number; views: number } };
        return h.held.contexts === 0 && h.held.views === 0 ? true : undefined;
      });
    }
  });

  it('logs and counts a NACK of one response once, its message cut', async () => {
    const s = connectAds(meshd.xdsAddress, { delta: true });
    try {
      s.send({ node: istioNode({ pod: 'nacker', ip: '10.5.0.1' }), type_url: TypeUrl.Cluster });
      const r = await s.next(5000);
      const error = 'e'.repeat(100_000);
      for (let i = 0; i < 200; i++) s.send({ type_url: TypeUrl.Cluster, response_nonce: r.nonce, error_detail: { code: 13, message: error } });
      await eventually('the NACK counted', async () => ((await metric(meshd, 'pilot_total_xds_rejects')) >= 1 ? true : undefined));
      await new Promise((res) => setTimeout(res, 500));
      assert.equal(await metric(meshd, 'pilot_total_xds_rejects'), 1);
      const logged = meshd.records().filter((x) => /NACK/.test(String(x.msg)));
      assert.equal(logged.length, 1);
      assert.ok(String(logged[0]!.error).length < 1200, `logged error is ${String(logged[0]!.error).length} characters`);
      const syncz = (await meshd.monitoring('/debug/syncz')).body;
      assert.ok(syncz.length < 20_000, `/debug/syncz is ${syncz.length} bytes`);
    } finally {
      await s.close();
    }
  });

  it('answers a type it does not serve with no resources, once, and the stream goes on (Istio agent NDS)', async () => {
    const s = connectAds(meshd.xdsAddress, { delta: true });
    try {
      const NDS = 'type.googleapis.com/istio.networking.nds.v1.NameTable';
      s.send({ node: istioNode({ pod: 'agent-1', ip: '10.6.0.1' }), type_url: NDS });
      const r = await s.next(5000);
      assert.equal(r.type_url, NDS);
      assert.deepEqual(r.resources, []);
      s.send({ type_url: NDS, response_nonce: r.nonce });
      // Many distinct unknown types: a bounded number is remembered and answered.
      for (let i = 0; i < 40; i++) s.send({ type_url: `type.googleapis.com/made.up.Type${i}` });
      s.send({ type_url: TypeUrl.Cluster });
      const deadline = Date.now() + 5000;
      let clusters;
      while (!clusters && Date.now() < deadline) {
        const x = await s.next(5000);
        if (x.type_url === TypeUrl.Cluster) clusters = x;
      }
      assert.ok(clusters && clusters.resources.length > 0, 'the stream still serves clusters');
      assert.equal(s.received.filter((x) => x.type_url.includes('made.up')).length, 15, '16 unknown types answered in all (NDS and 15 more)');
      assert.equal(s.status, undefined, 'the stream is still open');
      assert.equal(meshd.records().filter((x) => /does not serve/.test(String(x.msg))).length, 16);
    } finally {
      await s.close();
    }
  });

  it('has no debug endpoints on Object.prototype', async () => {
    for (const p of ['/debug/constructor', '/debug/__proto__', '/debug/toString', '/debug/hasOwnProperty']) {
      assert.equal((await meshd.monitoring(p)).status, 404, p);
    }
  });
});
