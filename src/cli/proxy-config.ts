// `meshd proxy-config cluster|listener|route|endpoint|secret|bootstrap|log|all <pod[.ns]>`:
// istioctl's tables, read from the Envoy's own admin API (never only from what meshd sent).
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { bootstrap, ConfigDumpError, redactCredentials } from '../inspect/config-dump.js';
import { clusterTable, selectClusters, type ClusterFilter } from '../inspect/cluster-table.js';
import { listenerTable, selectListeners, type ListenerFilter } from '../inspect/listener-table.js';
import { routeTable, selectRoutes, type RouteFilter } from '../inspect/route-table.js';
import { endpointClusters, endpointTable, type EndpointFilter } from '../inspect/endpoint-table.js';
import { secretRows, secretTable } from '../inspect/secret-table.js';
import { accessFrom, parseJson, withAccessOptions, type Access, type PodRef } from './inspect-access.js';

type Format = 'short' | 'json' | 'yaml';

function print(value: unknown, format: Format): void {
  process.stdout.write(format === 'yaml' ? stringify(value) : JSON.stringify(value, null, 4) + '\n');
}

function num(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${flag}: "${v}" is not a port`);
    return n;
  };
}

async function target(podArg: string, opts: Record<string, unknown>): Promise<{ access: Access; pod: PodRef }> {
  const access = accessFrom(opts);
  const pod = access.podRef(podArg);
  await access.checkPod(pod);
  return { access, pod };
}

async function configDump(access: Access, pod: PodRef, query = ''): Promise<unknown> {
  return parseJson(await access.envoy(pod, `config_dump${query}`), `the config dump of ${pod.name}.${pod.namespace}`);
}

async function clustersJson(access: Access, pod: PodRef): Promise<unknown> {
  return parseJson(await access.envoy(pod, 'clusters?format=json'), `/clusters of ${pod.name}.${pod.namespace}`);
}

/** A subcommand on one pod with -o and the reaching flags. */
function sub(name: string, alias: string, description: string): Command {
  const cmd = new Command(name)
    .description(description)
    .argument('<pod>', '<pod>[.<namespace>]')
    .addOption(new Option('-o, --output <format>', 'short (a table), json or yaml').choices(['short', 'json', 'yaml']).default(name === 'bootstrap' ? 'json' : 'short'));
  if (alias) cmd.alias(alias);
  withAccessOptions(cmd, { admin: true });
  return cmd;
}

/** Runs the subcommand on its pod; errors of the dump name the pod. */
function withAction(cmd: Command, run: (access: Access, pod: PodRef, opts: Record<string, unknown>, format: Format) => Promise<void>): Command {
  return cmd.action(async (podArg: string, opts: Record<string, unknown>) => {
    const { access, pod } = await target(podArg, opts);
    try {
      await run(access, pod, opts, opts.output as Format);
    } catch (err) {
      if (err instanceof ConfigDumpError) throw new Error(`${pod.name}.${pod.namespace}: ${err.message}`, { cause: err });
      throw err;
    }
  });
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'warn', 'error', 'critical', 'off'];

/** `--level debug` or `--level http:debug,router:warning`, checked before Envoy sees it. */
export function logQuery(level: string): string {
  const parts = level.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('--level: give a level (trace, debug, info, warning, error, critical, off) or <logger>:<level>,...');
  for (const p of parts) {
    const lvl = p.includes(':') ? p.slice(p.indexOf(':') + 1) : p;
    const logger = p.includes(':') ? p.slice(0, p.indexOf(':')) : undefined;
    if (!LOG_LEVELS.includes(lvl)) throw new Error(`--level: "${lvl}" is not a level; one of ${LOG_LEVELS.join(', ')}`);
    if (logger !== undefined && !/^[\w.-]{1,64}$/.test(logger)) throw new Error(`--level: "${logger}" is not a logger name`);
  }
  if (parts.length === 1 && !parts[0]!.includes(':')) return `?level=${encodeURIComponent(parts[0]!)}`;
  return `?paths=${encodeURIComponent(parts.map((p) => (p.includes(':') ? p : `*:${p}`)).join(','))}`;
}

export function proxyConfigCommand(): Command {
  const cmd = new Command('proxy-config').alias('pc').description("Envoy's config as istioctl shows it (clusters, listeners, routes, endpoints, secrets...), read from the pod's Envoy admin API");

  const cluster = sub('cluster', 'clusters', 'Clusters of the pod\'s Envoy')
    .addOption(new Option('--fqdn <fqdn>', 'only clusters whose name contains this'))
    .addOption(new Option('--port <port>', 'only clusters of this port').argParser(num('--port')))
    .addOption(new Option('--subset <subset>', 'only clusters of this subset'))
    .addOption(new Option('--direction <dir>', 'only inbound or outbound clusters').choices(['inbound', 'outbound']));
  withAction(cluster, async (access, pod, o, format) => {
    const dump = await configDump(access, pod);
    const f: ClusterFilter = { fqdn: o.fqdn as string, port: o.port as number, subset: o.subset as string, direction: o.direction as string };
    if (format === 'short') process.stdout.write(clusterTable(dump, f));
    else print(selectClusters(dump, f), format);
  });

  const listener = sub('listener', 'listeners', 'Listeners of the pod\'s Envoy, one row per filter chain')
    .addOption(new Option('--address <address>', 'only listeners on this address'))
    .addOption(new Option('--port <port>', 'only listeners on this port').argParser(num('--port')))
    .addOption(new Option('--type <type>', 'only HTTP, TCP or HTTP+TCP listeners'));
  withAction(listener, async (access, pod, o, format) => {
    const dump = await configDump(access, pod);
    const f: ListenerFilter = { address: o.address as string, port: o.port as number, type: o.type as string };
    if (format === 'short') process.stdout.write(listenerTable(dump, f));
    else print(selectListeners(dump, f), format);
  });

  const route = sub('route', 'routes', 'Route configurations of the pod\'s Envoy, one row per route').addOption(new Option('--name <name>', 'only the route configuration of this name'));
  withAction(route, async (access, pod, o, format) => {
    const dump = await configDump(access, pod);
    const f: RouteFilter = { name: o.name as string };
    if (format === 'short') process.stdout.write(routeTable(dump, f));
    else print(selectRoutes(dump, f), format);
  });

  const endpoint = sub('endpoint', 'endpoints', 'Endpoints of the pod\'s Envoy with their health (its /clusters)')
    .addOption(new Option('--address <address>', 'only this endpoint address'))
    .addOption(new Option('--port <port>', 'only this endpoint port').argParser(num('--port')))
    .addOption(new Option('--cluster <cluster>', 'only endpoints of this cluster'))
    .addOption(new Option('--status <status>', 'only endpoints with this health status (HEALTHY, UNHEALTHY...)'));
  withAction(endpoint, async (access, pod, o, format) => {
    const clusters = await clustersJson(access, pod);
    const f: EndpointFilter = { address: o.address as string, port: o.port as number, cluster: o.cluster as string, status: o.status as string };
    if (format === 'short') process.stdout.write(endpointTable(clusters, f));
    else print(endpointClusters(clusters, f), format);
  });

  const secret = sub('secret', 'secrets', 'Certificates the pod\'s Envoy holds (SDS), never their keys');
  withAction(secret, async (access, pod, _o, format) => {
    const dump = await configDump(access, pod);
    if (format === 'short') process.stdout.write(secretTable(dump, new Date()));
    else print({ dynamicActiveSecrets: secretRows(dump, new Date()) }, format);
  });

  const boot = sub('bootstrap', 'b', 'The bootstrap the pod\'s Envoy started with');
  withAction(boot, async (access, pod, _o, format) => {
    const b = bootstrap(await configDump(access, pod));
    if (!b) throw new ConfigDumpError('no bootstrap in the config dump');
    print({ bootstrap: redactCredentials(b) }, format === 'short' ? 'json' : format);
  });

  const log = sub('log', 'o', 'Show, or with --level set, the log levels of the pod\'s Envoy').addOption(
    new Option('--level <level>', 'a level for every logger (trace, debug, info, warning, error, critical, off), or <logger>:<level>,...'),
  );
  withAction(log, async (access, pod, o) => {
    const query = o.level ? logQuery(o.level as string) : '';
    process.stdout.write(await access.envoy(pod, `logging${query}`, 'POST'));
  });

  const all = sub('all', 'a', 'Clusters, listeners, routes, endpoints and secrets of the pod\'s Envoy');
  withAction(all, async (access, pod, _o, format) => {
    const dump = await configDump(access, pod);
    if (format !== 'short') return print(redactCredentials(dump), format);
    const clusters = await clustersJson(access, pod);
    process.stdout.write([clusterTable(dump), listenerTable(dump), routeTable(dump), endpointTable(clusters), secretTable(dump, new Date())].join('\n'));
  });

  for (const c of [cluster, listener, route, endpoint, secret, boot, log, all]) cmd.addCommand(c);
  return cmd;
}
