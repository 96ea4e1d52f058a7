// Envoy's admin /config_dump (JSON) read as sections: the resources Envoy holds, static
// and dynamic, in the shape Envoy prints them. No I/O: input is the parsed JSON.

export type Json = Record<string, unknown>;

export class ConfigDumpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigDumpError';
  }
}

const SECTION_PREFIX = 'type.googleapis.com/envoy.admin.v3.';

/** The config dump section of this kind (e.g. `ClustersConfigDump`), or undefined. */
export function section(dump: unknown, kind: string): Json | undefined {
  const configs = (dump as { configs?: unknown } | null)?.configs;
  if (!Array.isArray(configs)) throw new ConfigDumpError('not an Envoy config dump: no "configs" list (expected the JSON of Envoy\'s admin /config_dump)');
  return configs.find((c): c is Json => !!c && typeof c === 'object' && (c as Json)['@type'] === SECTION_PREFIX + kind);
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.filter((x): x is Json => !!x && typeof x === 'object') : [];
}

export function obj(v: unknown): Json {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
}

export function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

/** Dynamic active clusters, then static ones (as istioctl collects them). */
export function clusters(dump: unknown): Json[] {
  const s = section(dump, 'ClustersConfigDump');
  return [...list(s?.dynamic_active_clusters), ...list(s?.static_clusters)].map((c) => obj(c.cluster)).filter((c) => Object.keys(c).length > 0);
}

/** Active dynamic listeners, then static ones. */
export function listeners(dump: unknown): Json[] {
  const s = section(dump, 'ListenersConfigDump');
  return [...list(s?.dynamic_listeners).map((l) => obj(obj(l.active_state).listener)), ...list(s?.static_listeners).map((l) => obj(l.listener))].filter((l) => Object.keys(l).length > 0);
}

/** Dynamic route configurations, then static ones. */
export function routeConfigs(dump: unknown): Json[] {
  const s = section(dump, 'RoutesConfigDump');
  return [...list(s?.dynamic_route_configs), ...list(s?.static_route_configs)].map((r) => obj(r.route_config)).filter((r) => Object.keys(r).length > 0);
}

export interface DumpedSecret {
  name: string;
  state: 'ACTIVE' | 'WARMING' | 'UNINITIALIZED';
  secret: Json;
}

/** Warming, then active secrets (an active one whose version is "uninitialized" is UNINITIALIZED). */
export function secrets(dump: unknown): DumpedSecret[] {
  const s = section(dump, 'SecretsConfigDump');
  return [
    ...list(s?.dynamic_warming_secrets).map((x) => ({ name: str(x.name), state: 'WARMING' as const, secret: obj(x.secret) })),
    ...list(s?.dynamic_active_secrets).map((x) => ({ name: str(x.name), state: x.version_info === 'uninitialized' ? ('UNINITIALIZED' as const) : ('ACTIVE' as const), secret: obj(x.secret) })),
  ];
}

export function bootstrap(dump: unknown): Json | undefined {
  const b = section(dump, 'BootstrapConfigDump');
  return b ? obj(b.bootstrap) : undefined;
}

/** The newest `last_updated` of the dynamic route configurations (istioctl's "RDS last loaded at"). */
export function lastRouteUpdate(dump: unknown): Date | undefined {
  const s = section(dump, 'RoutesConfigDump');
  let newest: number | undefined;
  for (const r of list(s?.dynamic_route_configs)) {
    const t = Date.parse(str(r.last_updated));
    if (!Number.isNaN(t) && (newest === undefined || t > newest)) newest = t;
  }
  return newest === undefined ? undefined : new Date(newest);
}

/**
 * `value` with every `authorization` header value (a bearer token in a bootstrap's gRPC
 * initial_metadata) replaced by "[redacted]": proxy-config never prints credentials.
 */
export function redactCredentials<T>(value: T): T {
  if (Array.isArray(value)) return value.map(redactCredentials) as T;
  if (!value || typeof value !== 'object') return value;
  const o = value as Json;
  const out: Json = {};
  for (const [k, v] of Object.entries(o)) out[k] = redactCredentials(v);
  if (typeof o.key === 'string' && o.key.toLowerCase() === 'authorization' && 'value' in o) out.value = '[redacted]';
  return out as T;
}
