// `meshd precheck`: checks the cluster before an install, as `istioctl x precheck` does.
import { Command } from 'commander';
import { formatFinding, precheck } from '../install/precheck.js';
import { renderInstall } from '../install/profiles.js';
import { addClusterFlags, addManifestFlags, connect, println, settingsAndManifests, type ClusterFlags, type ManifestFlags } from './install-common.js';

export function precheckCommand(): Command {
  const cmd = new Command('precheck').description(
    'Check that meshd can be installed: Kubernetes version, your permissions, no other Istio control plane, no conflicting CRDs; exits 1 on errors',
  );
  addManifestFlags(cmd, 'the profile and settings to check for (default profile: default)');
  addClusterFlags(cmd);
  return cmd.action(async (flags: ClusterFlags & ManifestFlags) => {
    const { settings, manifests } = settingsAndManifests(flags);
    const { cluster } = connect(flags);
    const findings = await precheck(cluster, renderInstall(manifests, settings));
    for (const f of findings) println(formatFinding(f));
    if (findings.some((f) => f.level === 'Error')) {
      println('Error: Issues found when checking the cluster. meshd may not be safe to install or upgrade.');
      process.exitCode = 1;
      return;
    }
    println('✔ No issues found when checking the cluster. Istio is safe to install or upgrade!');
    println('  To get started, run: meshd install --set profile=demo -y');
  });
}
