// What meshd sent one proxy, by type: the resources its stream holds as meshd sent them,
// for the debug config dumps (HTTP /debug/config_dump and istio.io/debug/config_dump).
// Private keys never leave meshd through a dump: they are replaced as Envoy's own
// config_dump replaces them.
import { PUSH_ORDER, TypeUrl } from '../translate/types.js';
import type { Connection, ProxyConfigSource } from './connection.js';
import type { CachedResource } from './resource-cache.js';
import { routeOfVirtualHost } from '../translate/virtual-hosts.js';

export const REDACTED = '[redacted]';

/** A Secret's Envoy JSON with its private key (if any) replaced by "[redacted]". */
export function redactKeys(body: Record<string, unknown>): Record<string, unknown> {
  const tls = body.tls_certificate as Record<string, unknown> | undefined;
  if (!tls?.private_key) return body;
  return { ...body, tls_certificate: { ...tls, private_key: { inline_string: REDACTED } } };
}

export interface DumpedResource {
  name: string;
  version: string;
  /** Envoy JSON, keys redacted. */
  body: Record<string, unknown>;
  /** The encoded Any meshd sent; undefined for a Secret holding a key, or a route configuration shown with its VHDS virtual hosts (re-encode `body`). */
  any: Buffer | undefined;
}

function dumped(type: TypeUrl, e: CachedResource): DumpedResource {
  if (type !== TypeUrl.Secret) return { name: e.name, version: e.version, body: e.body, any: e.any };
  const body = redactKeys(e.body);
  return { name: e.name, version: e.version, body, any: body === e.body ? e.any : undefined };
}

/**
 * Per type (in push order), the resources the proxy holds from meshd, sorted by name. A
 * resource the proxy said it already had (delta's initial versions) is shown as meshd has it
 * now. Types the proxy never asked for are absent.
 */
export function sentResources(conn: Connection, config: Pick<ProxyConfigSource, 'resourcesFor'>): Map<TypeUrl, DumpedResource[]> {
  const out = new Map<TypeUrl, DumpedResource[]>();
  let view: ReturnType<ProxyConfigSource['resourcesFor']> | undefined;
  for (const type of PUSH_ORDER) {
    const sub = conn.watches.get(type)?.subscription;
    if (!sub?.requested) continue;
    const list: DumpedResource[] = [];
    for (const [name, held] of sub.heldEntries()) {
      let entry: CachedResource | undefined = typeof held === 'string' ? undefined : held;
      if (!entry) {
        view ??= config.resourcesFor(conn.ctx);
        entry = view.byType[type].get(name) ?? conn.ownSecrets.find((s) => s.name === name);
      }
      if (entry) list.push(dumped(type, entry));
    }
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    out.set(type, list);
  }
  const vhosts = out.get(TypeUrl.VirtualHost);
  const routes = out.get(TypeUrl.RouteConfiguration);
  if (vhosts?.length && routes) out.set(TypeUrl.RouteConfiguration, withVirtualHosts(routes, vhosts));
  return out;
}

/**
 * Route configurations as Envoy holds them when their virtual hosts came over VHDS: the
 * inline ones, then those of VHDS (so a dump compares with Envoy's own). VHDS resources are
 * still listed on their own.
 */
function withVirtualHosts(routes: DumpedResource[], vhosts: DumpedResource[]): DumpedResource[] {
  const byRoute = new Map<string, Record<string, unknown>[]>();
  for (const v of vhosts) {
    const route = routeOfVirtualHost(v.name);
    if (!byRoute.has(route)) byRoute.set(route, []);
    byRoute.get(route)!.push(v.body);
  }
  return routes.map((r) => {
    const more = byRoute.get(r.name);
    if (!more || !r.body.vhds) return r;
    const inline = (r.body.virtual_hosts as Record<string, unknown>[] | undefined) ?? [];
    return { ...r, body: { ...r.body, virtual_hosts: [...inline, ...more] }, any: undefined };
  });
}
