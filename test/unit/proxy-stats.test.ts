// The stats tags meshd's bootstraps give Envoy, applied here as Envoy applies them: every
// extractor runs on the full stat name, removes its first group and takes its second as value.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statsTags } from '../../src/inject/proxy-stats.js';

function extract(name: string, domain = 'cluster.local'): { name: string; tags: Record<string, string> } {
  const removed: [number, number][] = [];
  const tags: Record<string, string> = {};
  for (const t of statsTags(domain) as { tag_name: string; regex?: string }[]) {
    if (!t.regex || t.tag_name in tags) continue;
    const m = new RegExp(t.regex, 'd').exec(name);
    if (!m?.indices?.[1]) continue;
    tags[t.tag_name] = m[2] ?? m[1]!;
    removed.push(m.indices[1]);
  }
  const kept = [...name].filter((_, i) => !removed.some(([a, b]) => i >= a && i < b)).join('');
  return { name: kept, tags };
}

describe('stats tags from Istio cluster names', () => {
  it('splits an outbound subset cluster into its parts and leaves the statistic', () => {
    assert.deepEqual(extract('cluster.outbound|9080|v2|reviews.bookinfo.svc.cluster.local.upstream_rq_total'), {
      name: 'cluster.upstream_rq_total',
      tags: { cluster_name: 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local', direction: 'outbound', service_port: '9080', subset: 'v2', service: 'reviews.bookinfo.svc.cluster.local' },
    });
  });

  it('labels an inbound cluster (no host) by direction and port', () => {
    const r = extract('cluster.inbound|8080||.upstream_cx_total');
    assert.equal(r.name, 'cluster.upstream_cx_total');
    assert.deepEqual(r.tags, { cluster_name: 'inbound|8080||', direction: 'inbound', service_port: '8080', subset: '' });
  });

  it('keeps dotted statistics after the host intact, in another cluster domain too', () => {
    const r = extract('cluster.outbound|80||web.shop.svc.corp.example.circuit_breakers.default.cx_open', 'corp.example');
    assert.equal(r.name, 'cluster.circuit_breakers.default.cx_open');
    assert.equal(r.tags.service, 'web.shop.svc.corp.example');
  });

  it('names plain clusters by their name, and leaves hosts outside the domain unsplit', () => {
    assert.deepEqual(extract('cluster.xds-grpc.upstream_cx_total'), { name: 'cluster.upstream_cx_total', tags: { cluster_name: 'xds-grpc' } });
    const external = extract('cluster.outbound|443||api.example.com.upstream_rq_total');
    assert.equal(external.tags.service, undefined);
    assert.equal(external.name, 'cluster.outbound|443||api.example.com.upstream_rq_total');
  });
});
