// No Docker engine runs here, so the image cannot be built in tests. What can be held
// fixed is that the image builds with the same steps CI runs (scripts/setup.sh) and
// runs meshd the way the manifests expect: non-root, `meshd serve` as entrypoint, on a
// current LTS Node.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/meshd.js';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const setup = readFileSync(join(REPO_ROOT, 'scripts', 'setup.sh'), 'utf8');
const runSteps = dockerfile.split('\n').filter((l) => l.startsWith('RUN ')).map((l) => l.slice(4).trim());

describe('Dockerfile', () => {
  it('builds with the steps CI runs', () => {
    const npmCi = runSteps.find((s) => s.startsWith('npm ci') && !s.includes('--omit=dev'));
    assert.ok(npmCi && setup.includes(npmCi), `the build stage's "${npmCi}" must be what scripts/setup.sh runs`);
    const tsc = runSteps.find((s) => s.includes('tsc'));
    assert.ok(tsc && setup.includes(tsc), `the build stage's "${tsc}" must be what scripts/setup.sh runs`);
  });

  it('ships production dependencies and dist only, from a current LTS Node', () => {
    assert.ok(runSteps.some((s) => s.startsWith('npm ci') && s.includes('--omit=dev')));
    const bases = [...dockerfile.matchAll(/^FROM node:(\d+)/gm)].map((m) => Number(m[1]));
    assert.ok(bases.length >= 2 && bases.every((v) => v >= 22 && v % 2 === 0), `LTS base images, got ${bases.join(', ')}`);
    assert.match(dockerfile, /COPY --from=build \/src\/dist\/src \.\/dist\/src/);
  });

  it('ships the manifests beside dist/ (meshd install renders its profiles from them), as the npm package does', () => {
    assert.match(dockerfile, /^COPY manifests \.\/manifests$/m);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { files?: string[] };
    for (const f of ['dist/src', 'protos', 'manifests']) assert.ok(pkg.files?.includes(f), `package.json "files" holds ${f}`);
  });

  it('runs as a non-root user with `meshd serve` as entrypoint', () => {
    assert.match(dockerfile, /^USER 1337:1337$/m);
    assert.match(dockerfile, /^ENTRYPOINT \["node", "\/app\/dist\/src\/cli\/main\.js", "serve"\]$/m);
  });
});
