#!/usr/bin/env node
// meshd's command line: `meshd serve` runs the control plane; the other commands help operate it.
import { Command } from 'commander';
import { serveCommand } from './serve.js';
import { bootstrapCommand } from './bootstrap.js';
import { validateCommand } from './validate.js';
import { kubeInjectCommand } from './kube-inject.js';
import { installCommand } from './install.js';
import { uninstallCommand } from './uninstall.js';
import { verifyInstallCommand } from './verify-install.js';
import { precheckCommand } from './precheck.js';
import { profileCommand } from './profile.js';
import { proxyStatusCommand } from './proxy-status.js';
import { proxyConfigCommand } from './proxy-config.js';
import { versionCommand } from './version.js';
import { analyzeCommand } from './analyze.js';
import { MESHD_VERSION } from '../util/version.js';

// A reader that stops early (`meshd profile dump | head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command()
  .name('meshd')
  .description('A service-mesh control plane for Envoy, in the style of istiod')
  .version(MESHD_VERSION)
  .showHelpAfterError();

program.addCommand(serveCommand());
program.addCommand(bootstrapCommand());
program.addCommand(validateCommand());
program.addCommand(kubeInjectCommand());
program.addCommand(installCommand());
program.addCommand(uninstallCommand());
program.addCommand(verifyInstallCommand());
program.addCommand(precheckCommand());
program.addCommand(profileCommand());
program.addCommand(proxyStatusCommand());
program.addCommand(proxyConfigCommand());
program.addCommand(versionCommand());
program.addCommand(analyzeCommand());
// istioctl's experimental commands the tutorials use, under the same name: `meshd x precheck`.
program.addCommand(new Command('x').alias('experimental').description('commands istioctl keeps under "x" (experimental)').addCommand(precheckCommand()));

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`meshd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
