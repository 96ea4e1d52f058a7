// Runs the compiled node:test files under dist/test/<suite>/ for each suite named on the command line.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const suites = process.argv.slice(2);
if (suites.length === 0) {
  console.error('usage: run-tests.mjs <suite> [suite...]  (suites: unit golden e2e)');
  process.exit(2);
}
function collect(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const files = suites.flatMap((s) => collect(join('dist', 'test', s)));
if (files.length === 0) {
  console.error(`no test files found for suites: ${suites.join(', ')} (did the build run?)`);
  process.exit(1);
}
const concurrency = process.env.MESHD_TEST_CONCURRENCY ?? (suites.includes('e2e') ? '1' : '2');
// Shared translation output is frozen under test (src/util/freeze.ts): changing it after the fact throws.
const env = { ...process.env, MESHD_FREEZE_TRANSLATIONS: process.env.MESHD_FREEZE_TRANSLATIONS ?? '1' };
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
