// `meshd verify-install`: checks the installation, as `istioctl verify-install` does.
import { Command } from 'commander';
import { readRecord, INSTALL_NAMESPACE, RECORD_NAME } from '../install/record.js';
import { renderInstall } from '../install/profiles.js';
import { verifyInstall } from '../install/verify.js';
import type { ObjectRef } from '../install/cluster.js';
import { addClusterFlags, addManifestFlags, connect, describeCluster, println, settingsAndManifests, type ClusterFlags, type ManifestFlags } from './install-common.js';

export function verifyInstallCommand(): Command {
  const cmd = new Command('verify-install').description(
    'Check that every object of the installation is present, every CRD established and every Deployment available; exits 1 otherwise',
  );
  addManifestFlags(cmd, 'check against this profile and settings instead of what meshd install recorded');
  addClusterFlags(cmd);
  return cmd.action(async (flags: ClusterFlags & ManifestFlags) => {
    const { cluster, conn } = connect(flags);
    let objects: ObjectRef[];
    let profile: string;
    if (flags.set.length > 0) {
      const { settings, manifests } = settingsAndManifests(flags);
      objects = renderInstall(manifests, settings);
      profile = settings.profile;
    } else {
      const record = await readRecord(cluster);
      if (record === undefined) {
        throw new Error(
          `no meshd installation recorded in ${describeCluster(conn)}: ConfigMap ${INSTALL_NAMESPACE}/${RECORD_NAME} (written by meshd install) is missing. Install with meshd install, or check a profile applied otherwise with --set profile=<name>`,
        );
      }
      objects = record.objects;
      profile = record.profile;
    }
    println(`Checking the meshd "${profile}" profile (${objects.length} objects) in ${describeCluster(conn)}`);
    const r = await verifyInstall(cluster, objects, println);
    if (r.failures.length === 0) {
      println(`✔ meshd is installed and verified successfully (profile ${profile})`);
      return;
    }
    println(`✘ ${r.failures.length} of ${r.checked} objects failed verification:`);
    for (const f of r.failures) println(`  ${f}`);
    process.exitCode = 1;
  });
}
