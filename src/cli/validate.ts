// `meshd validate`: checks a directory or file of YAML the way `meshd serve` reads it, and
// prints the validation stage's findings (model/validation/) as `meshd analyze` prints
// them: `Error [IST0106] (VirtualService default/x input.yaml:3) Schema validation error: ...`.
import { Command } from 'commander';
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { buildSnapshot } from '../model/mesh.js';
import { ConfigStore } from '../model/store.js';
import { findingLine, type Finding, type FindingOrigin } from '../model/finding.js';
import { keyOf, objectKey } from '../model/objects.js';
import { loadFiles, mergeFiles, parseYamlText, refusalsOf, type FileLoad } from '../sources/file/file-source.js';
import { parseMeshConfig, type MeshConfig } from '../model/mesh-config.js';

export interface ValidateResult {
  findings: Finding[];
  /** Files or documents that could not be read as objects at all (YAML errors, unreadable files...). */
  problems: string[];
  skipped: string[];
  objects: number;
}

/**
 * Validates `path` (a file or a directory) as `meshd serve --config-dir` would read it, with
 * `meshConfig` (as `--mesh-config` gives it: extension providers, root namespace...).
 */
export function validatePath(path: string, meshConfig?: MeshConfig): ValidateResult {
  const files = new Map<string, FileLoad>();
  let dir: string;
  if (statSync(path).isDirectory()) {
    dir = path;
    for (const [name, load] of loadFiles(path)) files.set(name, load);
  } else {
    dir = dirname(path);
    files.set(basename(path), parseYamlText(readFileSync(path, 'utf8'), basename(path)));
  }
  const merged = mergeFiles(dir, files);
  const store = new ConfigStore();
  store.replaceSource('validate', merged.objects, refusalsOf(merged.problems));
  // Findings about served objects say where the object is defined, as refusals do.
  const origins = new Map<string, FindingOrigin>();
  for (const p of merged.placed) origins.set(objectKey(p.object), { file: p.file, line: files.get(p.file)?.documentLines[p.document] ?? 1 });
  const findings = buildSnapshot(store, 'cluster.local', undefined, meshConfig).snapshot.findings.map((f) => {
    const origin = f.origin ?? origins.get(keyOf(f.kind, f.namespace, f.name));
    return origin ? { ...f, origin } : f;
  });
  return {
    findings,
    problems: merged.problems.filter((p) => !p.object).map((p) => `${p.file} (document ${p.document}): ${p.message}`),
    skipped: merged.ignored.map((p) => `${p.file} (document ${p.document}): ${p.message}`),
    objects: merged.objects.length,
  };
}

export function validateCommand(): Command {
  return new Command('validate')
    .description('Validate Kubernetes/Istio YAML as meshd would read it, printing what meshd would refuse, leave out or ignore; exits 1 on any error')
    .argument('<path>', 'a YAML file or a directory of them')
    .option('--mesh-config <file>', "Istio's mesh config (MeshConfig YAML) the objects are checked against, as `meshd serve --mesh-config` reads it (extensionProviders for AuthorizationPolicy CUSTOM, rootNamespace...)")
    .action((path: string, o: { meshConfig?: string }) => {
      let mesh: MeshConfig | undefined;
      if (o.meshConfig !== undefined) {
        try {
          mesh = parseMeshConfig(readFileSync(o.meshConfig, 'utf8'), `file ${o.meshConfig}`).config;
        } catch (err) {
          process.stderr.write(`error: ${(err as Error).message}\n`);
          process.exitCode = 1;
          return;
        }
      }
      const r = validatePath(path, mesh);
      for (const f of r.findings) process.stdout.write(`${findingLine(f)}\n`);
      for (const p of r.problems) process.stderr.write(`error: ${p}\n`);
      for (const p of r.skipped) process.stderr.write(`skipped: ${p}\n`);
      const errors = r.findings.filter((f) => f.severity === 'Error').length + r.problems.length;
      const warnings = r.findings.filter((f) => f.severity === 'Warning').length;
      process.stdout.write(`${r.objects} objects read, ${errors} errors, ${warnings} warnings, ${r.skipped.length} skipped\n`);
      if (errors > 0) process.exitCode = 1;
    });
}
