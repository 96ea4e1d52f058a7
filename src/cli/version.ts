// `meshd version`: client, control plane (each replica) and data plane versions, as
// `istioctl version` prints them.
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { MESHD_VERSION } from '../util/version.js';
import { versionReport, versionText, type ReplicaVersion } from '../inspect/version-report.js';
import { accessFrom, parseJson, withAccessOptions } from './inspect-access.js';
import { gatherSyncz } from './proxy-status.js';

export function versionCommand(): Command {
  const cmd = new Command('version')
    .description('Client, control plane (each meshd replica) and data plane (connected proxies) versions')
    .addOption(new Option('-s, --short [bool]', 'short form; --short=false for every field').default(true).argParser((v) => v !== 'false'))
    .addOption(new Option('-o, --output <format>', 'json or yaml').choices(['json', 'yaml']))
    .addOption(new Option('--remote [bool]', 'ask the control plane; --remote=false for the client only').default(true).argParser((v) => v !== 'false'));
  withAccessOptions(cmd, { admin: false });
  return cmd.action(async (opts: Record<string, unknown>) => {
    let replicas: ReplicaVersion[] = [];
    let syncz: Awaited<ReturnType<typeof gatherSyncz>> = [];
    if (opts.remote !== false) {
      const reached = await accessFrom(opts).replicas();
      [replicas, syncz] = await Promise.all([
        Promise.all(
          reached.map(async (r) => {
            const v = parseJson(await r.get('/debug/versionz'), `/debug/versionz of ${r.name}`) as { id?: string; version?: string; revision?: string };
            return { id: v.id ?? r.name, version: v.version ?? 'unknown', revision: v.revision };
          }),
        ),
        gatherSyncz(reached),
      ]);
    }
    const report = versionReport(MESHD_VERSION, replicas, syncz);
    if (opts.remote === false) {
      report.meshVersion = [];
      report.dataPlaneVersion = [];
    }
    if (opts.output === 'json') process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else if (opts.output === 'yaml') process.stdout.write(stringify(report));
    else process.stdout.write(opts.remote === false ? `client version: ${MESHD_VERSION}\n` : versionText(report, opts.short !== false));
  });
}
