// The pieces of proxy-status / proxy-config / version that are not tables over a real dump
// (those are golden tests): the unified diff, the table layout, log levels, pod names, versions.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unifiedDiff } from '../../src/inspect/unified-diff.js';
import { formatTable } from '../../src/inspect/table.js';
import { logQuery } from '../../src/cli/proxy-config.js';
import { Access } from '../../src/cli/inspect-access.js';
import { versionReport, versionText } from '../../src/inspect/version-report.js';
import { statusTable } from '../../src/inspect/status-table.js';
import { describeRouteDomains } from '../../src/inspect/route-match.js';
import { MESHD_VERSION } from '../../src/util/version.js';
import { REPO_ROOT } from '../support/meshd.js';

/** Applies a unified diff to `a`: the result must be `b`. */
function patch(a: string, diff: string): string {
  const src = a.split('\n');
  const out: string[] = [];
  let at = 0;
  const lines = diff.split('\n');
  for (let i = 2; i < lines.length; i++) {
    const h = /^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@$/.exec(lines[i]!);
    if (h) {
      const start = Number(h[2] === '0' ? Number(h[1]) : Number(h[1]) - 1);
      while (at < start) out.push(src[at++]!);
      continue;
    }
    const l = lines[i]!;
    if (l.startsWith(' ')) {
      assert.equal(src[at], l.slice(1), 'context line matches');
      out.push(src[at++]!);
    } else if (l.startsWith('-')) {
      assert.equal(src[at], l.slice(1), 'removed line matches');
      at++;
    } else if (l.startsWith('+')) out.push(l.slice(1));
  }
  while (at < src.length) out.push(src[at++]!);
  return out.join('\n');
}

describe('unified diff', () => {
  it('is empty for equal texts and has difflib headers otherwise', () => {
    assert.equal(unifiedDiff('a\nb\n', 'a\nb\n', 'x', 'y'), '');
    const d = unifiedDiff('a\nb\nc\n', 'a\nB\nc\n', 'meshd Clusters', 'Envoy Clusters');
    assert.equal(d, '--- meshd Clusters\n+++ Envoy Clusters\n@@ -1,4 +1,4 @@\n a\n-b\n+B\n c\n \n');
  });
  it('turns the first text into the second, for random edits (property)', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 200; round++) {
      const a = Array.from({ length: rnd(40) }, () => `line ${rnd(8)}`);
      const b = [...a];
      for (let e = rnd(6); e > 0; e--) {
        const op = rnd(3);
        const at = rnd(b.length + 1);
        if (op === 0) b.splice(at, 0, `new ${rnd(8)}`);
        else if (op === 1 && b.length) b.splice(Math.min(at, b.length - 1), 1);
        else if (b.length) b[Math.min(at, b.length - 1)] = `changed ${rnd(8)}`;
      }
      const at = a.join('\n');
      const bt = b.join('\n');
      const d = unifiedDiff(at, bt, 'a', 'b', 2);
      assert.equal(d === '', at === bt);
      if (d) assert.equal(patch(at, d), bt, `round ${round}`);
    }
  });
});

describe('tables', () => {
  it('pads every column but the last to its widest cell plus 5, as Go\'s tabwriter', () => {
    assert.equal(formatTable(['NAME', 'X'], [['a', '1'], ['longer', '']]), 'NAME       X\na          1\nlonger     \n');
  });
  it('proxy-status marks types a proxy never subscribed to as IGNORED and sorts by name', () => {
    const t = statusTable([
      { replica: 'istiod-b', entries: [{ proxy: 'sidecar~1~z.ns~ns.svc.cluster.local', cluster_id: 'Kubernetes', istio_version: '1.2', types: { cds: { status: 'SYNCED' }, lds: { status: 'STALE' } } }] },
      { replica: 'istiod-a', entries: [{ proxy: 'router~1~a.gw~gw.svc.cluster.local', istiod: 'istiod-a', types: {} }] },
    ]);
    assert.deepEqual(
      t.split('\n').map((l) => l.split(/\s{2,}/).map((c) => c.trim())),
      [
        ['NAME', 'CLUSTER', 'CDS', 'LDS', 'EDS', 'RDS', 'ECDS', 'ISTIOD', 'VERSION'],
        ['a.gw', 'IGNORED', 'IGNORED', 'IGNORED', 'IGNORED', 'IGNORED', 'istiod-a', ''],
        ['z.ns', 'Kubernetes', 'SYNCED', 'STALE', 'IGNORED', 'IGNORED', 'IGNORED', 'istiod-b', '1.2'],
        [''],
      ],
    );
  });
  it('proxy-status: RDS of a proxy on VHDS is STALE while its virtual hosts are', () => {
    const row = (rds: string, vhds: string | undefined): string => {
      const types: Record<string, { status: string }> = { rds: { status: rds } };
      if (vhds) types.vhds = { status: vhds };
      const t = statusTable([{ replica: 'r', entries: [{ proxy: 'sidecar~1~p.ns~ns.svc.cluster.local', cluster_id: 'K', types }] }]);
      return t.split('\n')[1]!.split(/\s{2,}/)[5]!;
    };
    assert.equal(row('SYNCED', 'STALE'), 'STALE');
    assert.equal(row('SYNCED', 'SYNCED'), 'SYNCED');
    assert.equal(row('SYNCED', undefined), 'SYNCED');
    assert.equal(row('STALE', 'SYNCED'), 'STALE');
  });
  it('shows the shortest domains of a virtual host, as istioctl', () => {
    assert.equal(describeRouteDomains(['a.ns.svc.cluster.local', 'a.ns.svc.cluster.local:80', 'a', 'a:80', 'a.ns.svc', 'a.ns', '10.0.0.1', '10.0.0.1:80']), 'a, a.ns + 1 more...');
    assert.equal(describeRouteDomains(['*']), '*');
  });
});

describe('proxy-config log levels', () => {
  it('sets one level for all loggers, or levels per logger', () => {
    assert.equal(logQuery('debug'), '?level=debug');
    assert.equal(logQuery('http:debug,router:warning'), `?paths=${encodeURIComponent('http:debug,router:warning')}`);
  });
  it('refuses what is not a level or a logger, naming it', () => {
    assert.throws(() => logQuery('loud'), /"loud" is not a level/);
    assert.throws(() => logQuery('a&b=c:debug'), /"a&b=c" is not a logger name/);
    assert.throws(() => logQuery(''), /give a level/);
  });
});

describe('pod names', () => {
  const access = new Access({ istioNamespace: 'istio-system', namespace: 'apps', adminAddress: '127.0.0.1:1' });
  it('reads <pod>[.<namespace>] and pod/<pod> as istioctl', () => {
    assert.deepEqual(access.podRef('httpbin-1'), { name: 'httpbin-1', namespace: 'apps' });
    assert.deepEqual(access.podRef('httpbin-1.other'), { name: 'httpbin-1', namespace: 'other' });
    assert.deepEqual(access.podRef('pod/httpbin-1.other'), { name: 'httpbin-1', namespace: 'other' });
    assert.throws(() => access.podRef('deployment/httpbin'), /"deployment\/httpbin" is not a pod/);
  });
});

describe('version', () => {
  it('is package.json\'s version', () => {
    assert.equal(MESHD_VERSION, (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });
  it('folds identical replica versions and counts proxies per version, as istioctl', () => {
    const syncz = [
      { replica: 'a', entries: [{ proxy: 'sidecar~1~p.ns~ns.svc.cluster.local', istio_version: '1.2' }, { proxy: 'sidecar~1~q.ns~ns.svc.cluster.local', istio_version: '1.2' }] },
      { replica: 'b', entries: [{ proxy: 'sidecar~1~r.ns~ns.svc.cluster.local', istio_version: '1.1' }] },
    ];
    const same = versionReport('0.1.0', [{ id: 'a', version: '0.1.0' }, { id: 'b', version: '0.1.0' }], syncz);
    assert.equal(versionText(same), 'client version: 0.1.0\ncontrol plane version: 0.1.0\ndata plane version: 1.1 (1 proxies), 1.2 (2 proxies)\n');
    const mixed = versionReport('0.1.0', [{ id: 'a', version: '0.1.0' }, { id: 'b', version: '0.2.0' }], []);
    assert.equal(versionText(mixed), 'client version: 0.1.0\nistiod version: 0.1.0\nistiod version: 0.2.0\ndata plane version: none\n');
  });
});
