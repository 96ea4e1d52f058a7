// What the install commands share: the cluster flags (--kubeconfig, --context), the manifests
// flag, --set, the confirmation prompt, and printing lines.
import { Option, type Command } from 'commander';
import { createInterface } from 'node:readline';
import { resolveKubeConnection, type ResolvedConnection } from '../kube/kubeconfig.js';
import { InstallCluster } from '../install/cluster.js';
import { manifestsDir } from '../install/package-files.js';
import { parseSetFlags, type InstallSettings } from '../install/settings.js';
import { parseDurationMs } from '../util/duration.js';

export interface ClusterFlags {
  kubeconfig?: string;
  context?: string;
}

export interface ManifestFlags {
  manifests?: string;
  set: string[];
}

const collect = (v: string, acc: string[]): string[] => [...acc, v];

export function addClusterFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('-c, --kubeconfig <file>', 'the kubeconfig to use (default: $KUBECONFIG, else ~/.kube/config)'))
    .addOption(new Option('--context <name>', 'the kubeconfig context to use (default: its current-context)'));
}

export function addManifestFlags(cmd: Command, setHelp: string): Command {
  return cmd
    .addOption(new Option('-s, --set <key=value>', `${setHelp}; repeat for several (meshd profile dump lists the keys' effect)`).argParser(collect).default([]))
    .addOption(new Option('-d, --manifests <dir>', "the manifests/ directory to render profiles from (default: the one shipped with meshd, or $MESHD_MANIFESTS)"));
}

export function connect(flags: ClusterFlags): { cluster: InstallCluster; conn: ResolvedConnection } {
  const conn = resolveKubeConnection({ kubeconfig: flags.kubeconfig, context: flags.context });
  return { cluster: new InstallCluster(conn), conn };
}

/** "https://127.0.0.1:6443 (context kind-kind, from /root/.kube/config)". */
export const describeCluster = (conn: ResolvedConnection): string => `${conn.server} (context ${conn.context || '(none)'}, from ${conn.source})`;

export function settingsAndManifests(flags: ManifestFlags): { settings: InstallSettings; manifests: string } {
  return { settings: parseSetFlags(flags.set), manifests: manifestsDir(flags.manifests) };
}

export const println = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** Asks a yes/no question on the terminal; anything but y/yes (including end of input) is no. */
export async function confirm(question: string): Promise<boolean> {
  process.stdout.write(`${question} (y/N) `);
  const rl = createInterface({ input: process.stdin, terminal: false });
  const answer = await new Promise<string>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  return /^\s*y(es)?\s*$/i.test(answer);
}

export function parseTimeout(flag: string) {
  return (text: string): number => {
    const ms = parseDurationMs(/^\d+$/.test(text) ? `${text}s` : text);
    if (ms === undefined || ms <= 0) throw new Error(`${flag}: "${text}" is not a duration such as 300s or 5m`);
    return ms;
  };
}
