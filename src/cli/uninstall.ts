// `meshd uninstall`: removes what meshd install added, as `istioctl uninstall` does.
import { Command, Option } from 'commander';
import { manifestsDir } from '../install/package-files.js';
import { everyInstallableObject } from '../install/profiles.js';
import { planUninstall, runUninstall } from '../install/uninstall.js';
import { addClusterFlags, confirm, connect, describeCluster, println, type ClusterFlags } from './install-common.js';

interface UninstallFlags extends ClusterFlags {
  purge?: boolean;
  skipConfirmation?: boolean;
  manifests?: string;
}

export function uninstallCommand(): Command {
  const cmd = new Command('uninstall')
    .description('Remove the objects meshd install added (labelled app.kubernetes.io/name=meshd); CRDs only with --purge; the istio-system namespace is kept')
    .addOption(new Option('--purge', 'also remove the CRDs, and with them every Gateway, VirtualService, DestinationRule, Sidecar, ServiceEntry, WorkloadEntry, PeerAuthentication, AuthorizationPolicy, RequestAuthentication and Telemetry'))
    .addOption(new Option('-y, --skip-confirmation', 'do not ask for confirmation'))
    .addOption(new Option('-d, --manifests <dir>', 'the manifests/ directory (default: the one shipped with meshd)'));
  addClusterFlags(cmd);
  return cmd.action(async (flags: UninstallFlags) => {
    const { cluster, conn } = connect(flags);
    const plan = await planUninstall(cluster, everyInstallableObject(manifestsDir(flags.manifests)), flags.purge === true);
    if (plan.remove.length === 0) {
      println(`Nothing to remove: no meshd objects${flags.purge ? '' : ' (besides CRDs and the namespace)'} in ${describeCluster(conn)}.`);
      return;
    }
    if (!flags.skipConfirmation) {
      const what = flags.purge ? 'including its CRDs and every Istio config object' : 'keeping its CRDs';
      if (!(await confirm(`This will remove ${plan.remove.length} meshd objects (${what}) from the cluster ${describeCluster(conn)}. Proceed?`))) {
        println('Cancelled.');
        return;
      }
    }
    await runUninstall(cluster, plan, println);
  });
}
