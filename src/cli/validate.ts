// `meshd validate`: checks a directory or file of YAML the way `meshd serve` reads it.
import { Command } from 'commander';
import { statSync, readFileSync } from 'node:fs';
import { loadDirectory, parseYamlText } from '../sources/file/file-source.js';

export function validateCommand(): Command {
  return new Command('validate')
    .description('Validate Kubernetes/Istio YAML as meshd would read it; exits 1 on any error')
    .argument('<path>', 'a YAML file or a directory of them')
    .action((path: string) => {
      const r = statSync(path).isDirectory() ? loadDirectory(path) : parseYamlText(readFileSync(path, 'utf8'), path);
      for (const p of r.problems) process.stderr.write(`error: ${p.file} (document ${p.document}): ${p.message}\n`);
      for (const p of r.ignored) process.stderr.write(`skipped: ${p.file} (document ${p.document}): ${p.message}\n`);
      process.stdout.write(`${r.objects.length} objects valid, ${r.problems.length} errors, ${r.ignored.length} skipped\n`);
      if (r.problems.length > 0) process.exitCode = 1;
    });
}
