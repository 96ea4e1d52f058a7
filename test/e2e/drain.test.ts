/**
 * SIGTERM, as Kubernetes stops a replica: meshd reports not ready, refuses new streams and
 * closes the open ones spread over --drain-duration (UNAVAILABLE, which proxies answer by
 * reconnecting to another replica), then exits 0.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { httpText, serviceYaml, startMeshd } from '../support/meshd.js';
import { connectAds, istioNode, TypeUrl } from '../support/ads-client.js';

describe('SIGTERM drains xDS streams gradually', () => {
  it('closes 6 streams over the drain period with UNAVAILABLE, refuses new ones, is not ready meanwhile, exits 0', async () => {
    const meshd = await startMeshd({
      files: { 'a.yaml': serviceYaml({ name: 'a', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.1.0.1' }] }) },
      extraArgs: ['--drain-duration', '3s'],
    });
    const streams = [];
    for (let i = 0; i < 6; i++) {
      const s = connectAds(meshd.xdsAddress, { delta: true });
      s.send({ node: istioNode({ pod: `p-${i}`, ip: `10.2.0.${i + 1}` }), type_url: TypeUrl.Cluster });
      await s.next(5000);
      streams.push(s);
    }
    const endedAt: number[] = [];
    const ends = streams.map((s) =>
      s.ended(15_000).then((st) => {
        endedAt.push(Date.now());
        return st;
      }),
    );
    const start = Date.now();
    const exit = meshd.stop('SIGTERM');
    // Not ready while draining, so the Service sends no new connections here.
    let sawNotReady = false;
    for (let i = 0; i < 20 && !sawNotReady; i++) {
      const r = await httpText(meshd.monitoringPort, '/ready').catch(() => undefined);
      if (r?.status === 503) sawNotReady = true;
      else await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(sawNotReady, '/ready answers 503 during the drain');
    const late = connectAds(meshd.xdsAddress, { delta: true });
    late.send({ node: istioNode({ pod: 'late', ip: '10.3.0.1' }), type_url: TypeUrl.Cluster });
    const lateStatus = await late.ended(5000).catch(() => undefined);
    if (lateStatus) assert.equal(lateStatus.code, grpc.status.UNAVAILABLE, 'a stream opened during the drain is refused');
    await late.close();
    const statuses = await Promise.all(ends);
    for (const st of statuses) assert.equal(st.code, grpc.status.UNAVAILABLE, `${st.code}: ${st.details}`);
    assert.match(statuses[0]!.details, /shutting down/);
    const spreadMs = Math.max(...endedAt) - Math.min(...endedAt);
    console.log(`# 6 streams closed over ${spreadMs} ms (drain 3 s), first after ${Math.min(...endedAt) - start} ms`);
    assert.ok(spreadMs >= 1500, `streams closed over ${spreadMs} ms, not all at once`);
    assert.equal(await exit, 0);
    for (const s of streams) await s.close();
  });
});

describe('connections have a maximum age', () => {
  it('closes a stream after --max-connection-age (plus its grace), and the proxy can reconnect', async () => {
    const meshd = await startMeshd({
      files: { 'a.yaml': serviceYaml({ name: 'a', ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.1.0.1' }] }) },
      extraArgs: ['--max-connection-age', '1s'],
    });
    try {
      const s = connectAds(meshd.xdsAddress, { delta: true });
      const start = Date.now();
      s.send({ node: istioNode({ pod: 'aged', ip: '10.2.0.1' }), type_url: TypeUrl.Cluster });
      await s.next(5000);
      const st = await s.ended(10_000);
      const age = Date.now() - start;
      console.log(`# stream ended after ${age} ms: ${grpc.status[st.code]} ${st.details}`);
      assert.ok(age >= 900 && age < 6000, `ended after ${age} ms`);
      await s.close();
      const again = connectAds(meshd.xdsAddress, { delta: true });
      again.send({ node: istioNode({ pod: 'aged', ip: '10.2.0.1' }), type_url: TypeUrl.Cluster });
      assert.ok((await again.next(5000)).resources.length > 0, 'a new stream is served');
      await again.close();
    } finally {
      await meshd.stop();
    }
  });
});
