// `proxy-status <pod>`: what meshd sent a proxy (its /debug/config_dump) against what that
// Envoy holds (its admin /config_dump), section by section as istioctl prints it:
// "Clusters Match", "Listeners Don't Match" with a unified diff, "Routes Match (RDS last
// loaded at ...)". Both sides are put in one canonical JSON form first, so only real
// differences show.
import { canonicalEnvoyJson } from '../xds/canonical-json.js';
import { lastRouteUpdate, obj, section, str, type Json } from './config-dump.js';
import { unifiedDiff } from './unified-diff.js';

/** meshd's /debug/config_dump answer (the fields read here). */
export interface MeshdDump {
  proxy?: string;
  configs?: Record<string, { name: string; resource: Json }[] | undefined>;
}

const TYPES = {
  cds: 'envoy.config.cluster.v3.Cluster',
  lds: 'envoy.config.listener.v3.Listener',
  rds: 'envoy.config.route.v3.RouteConfiguration',
} as const;

function byName(a: Json, b: Json): number {
  const x = str(a.name);
  const y = str(b.name);
  return x < y ? -1 : x > y ? 1 : 0;
}

function canonicalRoute(r: Json): unknown {
  const c = obj(canonicalEnvoyJson(TYPES.rds, r));
  if (Array.isArray(c.virtual_hosts)) c.virtual_hosts = [...(c.virtual_hosts as Json[])].sort(byName);
  return c;
}

function render(list: unknown[]): string {
  return JSON.stringify(list, null, 4) + '\n';
}

/** Envoy's dynamic (xDS-delivered) listeners, active ones only. */
function envoyDynamicListeners(dump: unknown): Json[] {
  const s = section(dump, 'ListenersConfigDump');
  const dyn = Array.isArray(s?.dynamic_listeners) ? (s!.dynamic_listeners as unknown[]) : [];
  return dyn.map((l) => obj(obj(obj(l).active_state).listener)).filter((l) => Object.keys(l).length > 0);
}

function envoyDynamic(dump: unknown, kind: 'ClustersConfigDump' | 'RoutesConfigDump'): Json[] {
  const s = section(dump, kind);
  const key = kind === 'ClustersConfigDump' ? 'dynamic_active_clusters' : 'dynamic_route_configs';
  const inner = kind === 'ClustersConfigDump' ? 'cluster' : 'route_config';
  return (Array.isArray(s?.[key]) ? (s![key] as unknown[]) : []).map((x) => obj(obj(x)[inner])).filter((x) => Object.keys(x).length > 0);
}

function meshdSide(dump: MeshdDump, short: 'cds' | 'lds' | 'rds'): Json[] {
  return (dump.configs?.[short] ?? []).map((e) => obj(e.resource));
}

function compare(title: string, meshd: unknown[], envoy: unknown[], suffix = ''): string {
  const diff = unifiedDiff(render(meshd), render(envoy), `meshd ${title}`, `Envoy ${title}`);
  return diff ? `${title} Don't Match${suffix}\n${diff}\n` : `${title} Match${suffix}\n`;
}

/** Go's time.RFC1123 in UTC: `Mon, 02 Jan 2006 15:04:05 UTC`. */
function rfc1123(d: Date): string {
  return d.toUTCString().replace(/GMT$/, 'UTC');
}

export function syncDiff(meshd: MeshdDump, envoyDump: unknown): string {
  // Envoy's side: only what came over xDS (its static bootstrap resources are not meshd's).
  const cds = (list: Json[]): unknown[] => [...list].sort(byName).map((c) => canonicalEnvoyJson(TYPES.cds, c));
  const lds = (list: Json[]): unknown[] => [...list].sort(byName).map((l) => canonicalEnvoyJson(TYPES.lds, l));
  const rds = (list: Json[]): unknown[] => [...list].sort(byName).map(canonicalRoute);
  const loaded = lastRouteUpdate(envoyDump);
  return (
    compare('Clusters', cds(meshdSide(meshd, 'cds')), cds(envoyDynamic(envoyDump, 'ClustersConfigDump'))) +
    compare('Listeners', lds(meshdSide(meshd, 'lds')), lds(envoyDynamicListeners(envoyDump))) +
    compare('Routes', rds(meshdSide(meshd, 'rds')), rds(envoyDynamic(envoyDump, 'RoutesConfigDump')), loaded ? ` (RDS last loaded at ${rfc1123(loaded)})` : '')
  );
}
