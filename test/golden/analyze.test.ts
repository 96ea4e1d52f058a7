// Golden files for `meshd analyze`: each case under test/golden/analyze/ is analyzed by the
// real CLI (a child process, from the case's directory, files only), and what it prints
// (stdout, stderr) and its exit status are compared with expected.txt. The arguments are
// `--use-kube=false input.yaml`, or the lines of the case's `args` file. Regenerate with
// MESHD_GOLDEN_UPDATE=1.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MESHD_CLI, REPO_ROOT } from '../support/meshd.js';

const DATA = join(REPO_ROOT, 'test', 'golden', 'analyze');
const UPDATE = process.env.MESHD_GOLDEN_UPDATE === '1';

function argsOf(dir: string): string[] {
  const file = join(dir, 'args');
  if (!existsSync(file)) return ['--use-kube=false', 'input.yaml'];
  return readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
}

/** What the CLI printed and its exit status, as expected.txt holds it. */
function runCase(dir: string): string {
  const r = spawnSync(process.execPath, [MESHD_CLI, 'analyze', ...argsOf(dir)], { cwd: dir, encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/nonexistent', TERM: 'dumb' } });
  return `${r.stdout}--- stderr\n${r.stderr}--- exit status ${r.status}\n`;
}

const cases = readdirSync(DATA).filter((d) => existsSync(join(DATA, d, 'input.yaml'))).sort();

describe('meshd analyze golden files', () => {
  it('has cases', () => assert.ok(cases.length > 0, `no cases under ${DATA}`));
  for (const name of cases) {
    it(`${name}: prints the expected messages and exit status`, () => {
      const dir = join(DATA, name);
      const actual = runCase(dir);
      const path = join(dir, 'expected.txt');
      if (UPDATE) writeFileSync(path, actual);
      assert.ok(existsSync(path), `${path} is missing: run with MESHD_GOLDEN_UPDATE=1 to create it`);
      assert.equal(actual, readFileSync(path, 'utf8'), `${name}/expected.txt differs (MESHD_GOLDEN_UPDATE=1 regenerates)`);
    });
  }
});
