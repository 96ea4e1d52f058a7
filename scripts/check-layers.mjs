// Fails when an import in src/ points up the pipeline. Each folder may import itself and
// the folders listed for it (which sit below it); the files at the top of src/ (the
// composition root) may import anything. Static, `import type` and dynamic imports count.
//
//   node scripts/check-layers.mjs
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Folder -> folders it may import besides itself. Below everything: util. */
const ALLOWED = {
  util: [],
  model: ['util'],
  kube: ['util'],
  translate: ['util', 'model'],
  ca: ['util', 'model', 'kube'],
  sources: ['util', 'model', 'kube'],
  xds: ['util', 'model', 'translate', 'ca'],
  controllers: ['util', 'model', 'kube', 'ca'],
  inject: ['util', 'model', 'translate'],
  analysis: ['util', 'model', 'translate'],
  monitoring: ['util', 'model', 'translate', 'xds'],
  inspect: ['util', 'model', 'translate', 'xds'],
  webhooks: ['util', 'model', 'translate', 'ca', 'inject'],
  install: ['util', 'kube'],
  'control-plane': ['util', 'model', 'kube', 'translate', 'ca', 'sources', 'xds', 'controllers', 'inject', 'monitoring', 'webhooks'],
  cli: ['util', 'model', 'kube', 'translate', 'ca', 'sources', 'xds', 'controllers', 'inject', 'monitoring', 'inspect', 'analysis', 'control-plane', 'install'],
};

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The top folder of a path under src/ ('.' for files at the top). */
function layerOf(path) {
  const rel = relative(ROOT, path);
  return rel.includes('/') ? rel.split('/')[0] : '.';
}

const IMPORT = /(?:^|[^\w.])(?:import|export)\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

const problems = [];
for (const file of files(ROOT)) {
  const from = layerOf(file);
  if (from === '.') continue;
  const allowed = ALLOWED[from];
  if (!allowed) {
    problems.push(`${relative(ROOT, file)}: folder "${from}" has no place in the layering; add it to scripts/check-layers.mjs`);
    continue;
  }
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    const to = layerOf(resolve(dirname(file), spec));
    if (to === from || allowed.includes(to)) continue;
    const line = text.slice(0, m.index).split('\n').length;
    problems.push(`src/${relative(ROOT, file)}:${line}: ${from}/ imports ${to === '.' ? 'the composition root' : `${to}/`} (${spec}); ${from}/ may import ${allowed.length ? allowed.map((a) => `${a}/`).join(', ') : 'nothing else'}`);
  }
}
if (problems.length) {
  console.error(`layers: ${problems.length} import(s) point up the pipeline:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('layers: every import points down the pipeline');
