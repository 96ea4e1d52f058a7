// `meshd profile list|dump|diff`: the profiles and their settings, as `istioctl profile` shows them.
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { unifiedDiff } from '../install/line-diff.js';
import { atConfigPath, effectiveSettings, listProfiles, renderInstall } from '../install/profiles.js';
import { parseSetFlags, SETTING_KEYS } from '../install/settings.js';
import { manifestsDir } from '../install/package-files.js';
import { addManifestFlags, println, type ManifestFlags } from './install-common.js';

const dumpYaml = (manifests: string, flags: string[]): string => {
  const settings = parseSetFlags(flags);
  return stringify(effectiveSettings(renderInstall(manifests, settings), settings.profile), { lineWidth: 0 });
};

export function profileCommand(): Command {
  const profile = new Command('profile').description('List, dump and compare installation profiles');
  profile
    .command('list')
    .description('List the profiles')
    .addOption(new Option('-d, --manifests <dir>', 'the manifests/ directory (default: the one shipped with meshd)'))
    .action((flags: { manifests?: string }) => {
      println('meshd configuration profiles:');
      for (const p of listProfiles(manifestsDir(flags.manifests))) println(`    ${p}`);
    });
  const dump = profile
    .command('dump')
    .description("Print a profile's effective settings (IstioOperator YAML), with --set overrides applied")
    .argument('[profile]', 'the profile (default: default, or --set profile=...)')
    .addOption(new Option('-p, --config-path <path>', 'print only this part, e.g. components.pilot or meshConfig.accessLogFile'))
    .addOption(new Option('--keys', 'list the keys --set accepts'));
  addManifestFlags(dump, 'a setting to apply');
  dump.action((name: string | undefined, flags: ManifestFlags & { configPath?: string; keys?: boolean }) => {
    if (flags.keys) {
      for (const k of SETTING_KEYS) println(`${k.key.padEnd(48)} ${k.help}`);
      return;
    }
    const sets = name !== undefined ? [`profile=${name}`, ...flags.set.filter((s) => !s.startsWith('profile='))] : flags.set;
    const settings = parseSetFlags(sets);
    const manifests = manifestsDir(flags.manifests);
    const all = effectiveSettings(renderInstall(manifests, settings), settings.profile);
    if (flags.configPath === undefined) process.stdout.write(stringify(all, { lineWidth: 0 }));
    else {
      const v = atConfigPath(all, flags.configPath);
      process.stdout.write(typeof v === 'string' ? `${v}\n` : stringify(v, { lineWidth: 0 }));
    }
  });
  profile
    .command('diff')
    .description('Show the differences between two profiles’ settings')
    .argument('<profile-a>')
    .argument('<profile-b>')
    .addOption(new Option('-d, --manifests <dir>', 'the manifests/ directory (default: the one shipped with meshd)'))
    .action((a: string, b: string, flags: { manifests?: string }) => {
      const manifests = manifestsDir(flags.manifests);
      const diff = unifiedDiff(dumpYaml(manifests, [`profile=${a}`]), dumpYaml(manifests, [`profile=${b}`]), a, b);
      if (diff === '') println(`Profiles ${a} and ${b} are identical`);
      else {
        println(`The difference between profiles ${a} and ${b}:`);
        process.stdout.write(diff);
      }
    });
  return profile;
}
