// `meshd install`: installs a profile into the cluster, as `istioctl install` does.
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { componentsOf, listInWords } from '../install/components.js';
import { runInstall } from '../install/install.js';
import { meshdVersion } from '../install/package-files.js';
import { everyInstallableObject, renderInstall } from '../install/profiles.js';
import { overridesAsFlags } from '../install/settings.js';
import type { KubeObject } from '../install/objects.js';
import { addClusterFlags, addManifestFlags, confirm, connect, describeCluster, parseTimeout, println, settingsAndManifests, type ClusterFlags, type ManifestFlags } from './install-common.js';

interface InstallFlags extends ClusterFlags, ManifestFlags {
  skipConfirmation?: boolean;
  dryRun?: boolean;
  readinessTimeout: number;
}

/** Objects as multi-document YAML, as `kubectl kustomize` prints them. */
export const objectsYaml = (objects: readonly KubeObject[]): string => objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');

export function installCommand(): Command {
  const cmd = new Command('install')
    .description('Install (or upgrade to) a meshd profile in the cluster: server-side apply of its objects, then wait until its Deployments are available')
    .addOption(new Option('-y, --skip-confirmation', 'do not ask for confirmation'))
    .addOption(new Option('--dry-run', 'print the objects as YAML; change nothing'))
    .addOption(new Option('--readiness-timeout <duration>', 'how long to wait for CRDs and Deployments to become ready').argParser(parseTimeout('--readiness-timeout')).default(300_000, '300s'));
  addManifestFlags(cmd, 'a setting, e.g. profile=demo or meshConfig.accessLogFile=/dev/stdout');
  addClusterFlags(cmd);
  return cmd.action(async (flags: InstallFlags) => {
    const { settings, manifests } = settingsAndManifests(flags);
    const objects = renderInstall(manifests, settings);
    if (flags.dryRun) {
      process.stdout.write(objectsYaml(objects));
      return;
    }
    const { cluster, conn } = connect(flags);
    const version = meshdVersion();
    if (!flags.skipConfirmation) {
      const q = `This will install the meshd ${version} "${settings.profile}" profile (with components: ${listInWords(componentsOf(objects))}) into the cluster ${describeCluster(conn)}. Proceed?`;
      if (!(await confirm(q))) {
        println('Cancelled.');
        return;
      }
    }
    const ok = await runInstall({
      cluster,
      objects,
      record: { profile: settings.profile, flags: overridesAsFlags(settings), version },
      installable: everyInstallableObject(manifests),
      readinessTimeoutMs: flags.readinessTimeout,
      out: println,
    });
    if (ok) println('  Next: meshd verify-install, then kubectl label namespace <ns> istio-injection=enabled to inject sidecars there.');
    else process.exitCode = 1;
  });
}
