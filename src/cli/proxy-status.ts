// `meshd proxy-status [pod[.ns]]`: istioctl's sync status table from every meshd replica; with
// a pod, what meshd sent it against what its Envoy holds.
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { statusTable, proxyName, type ReplicaSyncz, type SynczEntry } from '../inspect/status-table.js';
import { syncDiff, type MeshdDump } from '../inspect/sync-diff.js';
import { accessFrom, parseJson, withAccessOptions, type Access, type Replica } from './inspect-access.js';

/** /debug/syncz of every replica, in parallel; a replica that cannot be read fails the command, naming it. */
export async function gatherSyncz(replicas: Replica[]): Promise<ReplicaSyncz[]> {
  return Promise.all(
    replicas.map(async (r) => {
      const body = parseJson(await r.get('/debug/syncz'), `/debug/syncz of ${r.name}`);
      if (!Array.isArray(body)) throw new Error(`/debug/syncz of ${r.name}: expected a list of proxies`);
      return { replica: r.name, entries: body as SynczEntry[] };
    }),
  );
}

async function diffOne(access: Access, podArg: string, replicas: Replica[], all: ReplicaSyncz[]): Promise<string> {
  const pod = access.podRef(podArg);
  const want = `${pod.name}.${pod.namespace}`;
  let found: { replica: Replica; entry: SynczEntry } | undefined;
  all.forEach((s, i) => {
    const entry = s.entries.find((e) => proxyName(e.proxy) === want);
    if (entry && !found) found = { replica: replicas[i]!, entry };
  });
  if (!found) throw new Error(`proxy ${want} is not connected to meshd (checked ${replicas.length} replica${replicas.length === 1 ? '' : 's'}: ${replicas.map((r) => r.name).join(', ')})`);
  await access.checkPod(pod);
  const [sent, held] = await Promise.all([
    found.replica.get(`/debug/config_dump?proxyID=${encodeURIComponent(found.entry.proxy)}`),
    access.envoy(pod, 'config_dump'),
  ]);
  return syncDiff(parseJson(sent, `meshd's config dump of ${want}`) as MeshdDump, parseJson(held, `the config dump of ${want}'s Envoy`));
}

export function proxyStatusCommand(): Command {
  const cmd = new Command('proxy-status')
    .alias('ps')
    .description("Sync status of every proxy with meshd (istioctl's table), from every replica; with a pod, what meshd sent against what its Envoy holds")
    .argument('[pod]', '<pod>[.<namespace>]: compare what meshd sent this proxy with its Envoy\'s config dump')
    .addOption(new Option('-o, --output <format>', 'table, json or yaml').choices(['table', 'json', 'yaml']).default('table'));
  withAccessOptions(cmd, { admin: true });
  return cmd.action(async (podArg: string | undefined, opts: Record<string, unknown>) => {
    const access = accessFrom(opts);
    const replicas = await access.replicas();
    const all = await gatherSyncz(replicas);
    if (podArg) return void process.stdout.write(await diffOne(access, podArg, replicas, all));
    const ns = opts.namespace as string | undefined;
    if (opts.output === 'table') return void process.stdout.write(statusTable(all, ns));
    const entries = all.flatMap((s) => s.entries.map((e) => ({ ...e, istiod: e.istiod ?? s.replica }))).filter((e) => !ns || e.namespace === ns);
    process.stdout.write(opts.output === 'json' ? JSON.stringify(entries, null, 2) + '\n' : stringify(entries));
  });
}
