// Golden tests of every table meshd's proxy-status / proxy-config / version print, from real
// dumps captured from Envoy and meshd by test/e2e/inspect.test.ts (MESHD_INSPECT_CAPTURE=1):
// test/golden/inspect/<case>/{config_dump,clusters,meshd_dump,syncz}.json → expected/*.txt.
// Regenerate the expected text with MESHD_GOLDEN_UPDATE=1 and review the diff.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterTable } from '../../src/inspect/cluster-table.js';
import { listenerTable } from '../../src/inspect/listener-table.js';
import { routeTable } from '../../src/inspect/route-table.js';
import { endpointTable } from '../../src/inspect/endpoint-table.js';
import { secretTable } from '../../src/inspect/secret-table.js';
import { statusTable, type SynczEntry } from '../../src/inspect/status-table.js';
import { syncDiff, type MeshdDump } from '../../src/inspect/sync-diff.js';
import { versionReport, versionText } from '../../src/inspect/version-report.js';
import { section } from '../../src/inspect/config-dump.js';
import { REPO_ROOT } from '../support/meshd.js';

const DATA = join(REPO_ROOT, 'test', 'golden', 'inspect');
const UPDATE = process.env.MESHD_GOLDEN_UPDATE === '1';

function json(dir: string, file: string): unknown {
  return JSON.parse(readFileSync(join(dir, file), 'utf8'));
}

/** "Now" for VALID CERT: when the Envoy got its first secret (the capture's time), so the output does not age. */
function captureTime(dump: unknown): Date {
  const s = section(dump, 'SecretsConfigDump') as { dynamic_active_secrets?: { last_updated?: string }[] } | undefined;
  const t = s?.dynamic_active_secrets?.map((x) => x.last_updated).find(Boolean);
  return t ? new Date(t) : new Date('2026-01-01T00:00:00Z');
}

/** The meshd dump with its first listener's port changed: a drift the diff must show. */
function drifted(dump: MeshdDump): MeshdDump {
  const copy = JSON.parse(JSON.stringify(dump)) as MeshdDump;
  const l = copy.configs?.lds?.find((x) => (x.resource as { address?: { socket_address?: unknown } }).address?.socket_address);
  const sock = (l!.resource as { address: { socket_address: { port_value: number } } }).address.socket_address;
  sock.port_value += 1;
  return copy;
}

function check(dir: string, file: string, actual: string): void {
  const path = join(dir, 'expected', file);
  if (UPDATE) {
    mkdirSync(join(dir, 'expected'), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `${path} is missing: run with MESHD_GOLDEN_UPDATE=1 to create it`);
  assert.equal(actual, readFileSync(path, 'utf8'), `${file} differs (MESHD_GOLDEN_UPDATE=1 regenerates)`);
}

describe('inspect tables (golden)', () => {
  for (const name of readdirSync(DATA).sort()) {
    const dir = join(DATA, name);
    it(name, () => {
      const dump = json(dir, 'config_dump.json');
      const meshd = json(dir, 'meshd_dump.json') as MeshdDump;
      const syncz = json(dir, 'syncz.json') as SynczEntry[];
      check(dir, 'cluster.txt', clusterTable(dump));
      check(dir, 'cluster-outbound-subset.txt', clusterTable(dump, { direction: 'outbound', subset: 'v1' }));
      check(dir, 'listener.txt', listenerTable(dump));
      check(dir, 'route.txt', routeTable(dump));
      check(dir, 'endpoint.txt', endpointTable(json(dir, 'clusters.json')));
      check(dir, 'secret.txt', secretTable(dump, captureTime(dump)));
      check(dir, 'status.txt', statusTable([{ replica: 'istiod-1', entries: syncz }]));
      check(dir, 'version.txt', versionText(versionReport('0.1.0', [{ id: 'istiod-1', version: '0.1.0' }], [{ replica: 'istiod-1', entries: syncz }])));
      const diff = syncDiff(meshd, dump);
      assert.match(diff, /^Clusters Match\nListeners Match\nRoutes Match/, 'the captured dumps agree');
      check(dir, 'diff.txt', diff);
      check(dir, 'diff-drifted.txt', syncDiff(drifted(meshd), dump));
    });
  }
});
