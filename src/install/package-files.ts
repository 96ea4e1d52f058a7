// Files meshd ships beside its code: the manifests/ directory (the profiles' one source) and
// package.json (the version). Found from this module's own location, so they work from the
// repository (dist/src/install/), an npm install and the container image (/app) alike.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The nearest directory at or above this module holding `manifests/profiles`, or undefined. */
function packageRoot(): string | undefined {
  let dir = HERE;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'manifests', 'profiles')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

/** The manifests directory: `override` (a flag or $MESHD_MANIFESTS) when given, else the one shipped with meshd. */
export function manifestsDir(override?: string): string {
  const chosen = override !== undefined && override !== '' ? override : process.env.MESHD_MANIFESTS;
  if (chosen !== undefined && chosen !== '') {
    const dir = resolve(chosen);
    if (!existsSync(join(dir, 'profiles'))) throw new Error(`${dir} is not a meshd manifests directory (it has no profiles/ directory)`);
    return dir;
  }
  const root = packageRoot();
  if (root === undefined) throw new Error(`meshd's manifests/ directory was not found at or above ${HERE}; pass --manifests <dir> (the manifests/ directory of meshd's source)`);
  return join(root, 'manifests');
}

/** meshd's version, from its package.json ("unknown" when that is missing). */
export function meshdVersion(): string {
  const root = packageRoot();
  try {
    const pkg = JSON.parse(readFileSync(join(root ?? join(HERE, '..', '..', '..'), 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
