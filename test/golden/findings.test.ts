// Golden files for the validation stage (model/validation/): each case under
// test/golden/findings/ is read as `meshd validate` and `meshd serve --config-dir` read it
// (the file source, refusals, the snapshot), and the snapshot's findings are compared with
// expected.yaml. Every rule has a case. A case's mesh.yaml is its mesh config (as
// `meshd validate --mesh-config` reads it). Regenerate with MESHD_GOLDEN_UPDATE=1.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../support/meshd.js';
import { validatePath } from '../../src/cli/validate.js';
import { parseMeshConfig } from '../../src/model/mesh-config.js';

const DATA = join(REPO_ROOT, 'test', 'golden', 'findings');
const UPDATE = process.env.MESHD_GOLDEN_UPDATE === '1';

const cases = readdirSync(DATA).filter((d) => existsSync(join(DATA, d, 'input.yaml'))).sort();

describe('validation stage golden findings', () => {
  it('has cases', () => assert.ok(cases.length > 0, `no cases under ${DATA}`));
  for (const name of cases) {
    it(`${name}: the snapshot's findings are the expected ones`, () => {
      const meshFile = join(DATA, name, 'mesh.yaml');
      const mesh = existsSync(meshFile) ? parseMeshConfig(readFileSync(meshFile, 'utf8'), meshFile).config : undefined;
      const r = validatePath(join(DATA, name, 'input.yaml'), mesh);
      const actual = stringify({ findings: r.findings, problems: r.problems }, { lineWidth: 0, aliasDuplicateObjects: false });
      const path = join(DATA, name, 'expected.yaml');
      if (UPDATE) writeFileSync(path, actual);
      assert.ok(existsSync(path), `${path} is missing: run with MESHD_GOLDEN_UPDATE=1 to create it`);
      assert.equal(actual, readFileSync(path, 'utf8'), `${name}/expected.yaml differs (MESHD_GOLDEN_UPDATE=1 regenerates)`);
    });
  }
});
