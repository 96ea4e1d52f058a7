#!/usr/bin/env node
// meshd's command line: `meshd serve` runs the control plane; the other commands help operate it.
import { Command } from 'commander';
import { serveCommand } from './serve.js';
import { bootstrapCommand } from './bootstrap.js';
import { validateCommand } from './validate.js';
import { kubeInjectCommand } from './kube-inject.js';

const program = new Command()
  .name('meshd')
  .description('A service-mesh control plane for Envoy, in the style of istiod')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(serveCommand());
program.addCommand(bootstrapCommand());
program.addCommand(validateCommand());
program.addCommand(kubeInjectCommand());
program.addCommand((await import('./analyze.js')).analyzeCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`meshd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
