// npm run fuzz: the property test (test/unit/property.test.ts, compiled) with many cases.
// MESHD_FUZZ_CASES sets how many (default 1000); MESHD_PROPERTY_BASE_SEED where they start
// (default: a random base, printed, so a run can be repeated). Prints how many cases ran and
// how many generated objects validation accepted and rejected; exits non-zero on any failure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const testFile = join('dist', 'test', 'unit', 'property.test.js');
if (!existsSync(testFile)) {
  console.error(`fuzz: ${testFile} not found (run npx tsc -p tsconfig.json, or npm run fuzz, first)`);
  process.exit(1);
}
const cases = process.env.MESHD_FUZZ_CASES ?? '1000';
if (!/^\d+$/.test(cases)) {
  console.error(`fuzz: MESHD_FUZZ_CASES=${cases} must be a number`);
  process.exit(2);
}
const base = process.env.MESHD_PROPERTY_BASE_SEED || String(Math.floor(Math.random() * 2 ** 31));
const dir = mkdtempSync(join(tmpdir(), 'meshd-fuzz-'));
const summaryFile = join(dir, 'summary.json');
console.log(`fuzz: ${cases} cases from seed ${base} (repeat with MESHD_PROPERTY_BASE_SEED=${base})`);
const started = Date.now();
const env = { ...process.env, MESHD_PROPERTY_CASES: cases, MESHD_PROPERTY_BASE_SEED: base, MESHD_PROPERTY_SUMMARY: summaryFile };
delete env.MESHD_PROPERTY_SEED;
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', testFile], { stdio: 'inherit', env });
const seconds = ((Date.now() - started) / 1000).toFixed(1);
let summary;
try {
  summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
} catch {
  summary = undefined;
}
rmSync(dir, { recursive: true, force: true });
if (!summary) {
  console.error(`fuzz: the property test wrote no summary (exit ${r.status ?? r.signal}) after ${seconds}s`);
  process.exit(1);
}
console.log(
  `fuzz: ${summary.cases} cases in ${seconds}s: ${summary.objects} objects generated, ${summary.accepted} accepted, ${summary.rejected} rejected by validation` +
    ` (+${summary.rejectedInSnapshot} VirtualService errors found in the snapshot); ${summary.envoyRuns} configs checked by envoy --mode validate` +
    ` (${summary.resources} resources, ${summary.routes} routes); ${summary.failedCases} failing case(s)` +
    (summary.failedCases ? `: seeds ${summary.failedSeeds.join(', ')}` : ''),
);
process.exit(r.status === 0 && summary.failedCases === 0 ? 0 : 1);
