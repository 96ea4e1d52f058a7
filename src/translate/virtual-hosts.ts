// VHDS: a sidecar on delta ADS gets its route configurations without their service virtual
// hosts, which come one by one as VirtualHost resources, so an edit sends only the virtual
// hosts it changed. Envoy's rules (source/common/router/vhds.cc and the VHDS docs):
// - a RouteConfiguration with `vhds` (config source ADS, delta only) makes Envoy watch the
//   VirtualHost resources named `<route configuration>/...`; over ADS that watch is one
//   wildcard subscription shared by every route configuration;
// - Envoy keys what it holds by the virtual host's `name` and removes by resource name, so
//   both are the same: `<route configuration>/<virtual host>`;
// - inline `virtual_hosts` stay beside the VHDS ones. The catch-all (`allow_any` or
//   `block_all`, domain `*`) stays inline: it is not a service and changes with the policy.
import type { EnvoyResource, Json } from './types.js';

/** How a route configuration that takes its virtual hosts over VHDS says so. */
export const VHDS_OVER_ADS: Json = { config_source: { ads: {}, resource_api_version: 'V3' } };

/** The VHDS resource name of virtual host `vhost` of route configuration `routeName`. */
export function virtualHostResourceName(routeName: string, vhost: string): string {
  return `${routeName}/${vhost}`;
}

/** The route configuration a VHDS resource name belongs to (the part before its last `/`). */
export function routeOfVirtualHost(resourceName: string): string {
  const slash = resourceName.lastIndexOf('/');
  return slash < 0 ? '' : resourceName.slice(0, slash);
}

function isCatchAll(vhost: Json): boolean {
  return Array.isArray(vhost.domains) && vhost.domains.includes('*');
}

/** Each virtual host under its VHDS name, made once per virtual host object (unchanged ones are reused: translate/memo.ts). */
const renamedHosts = new WeakMap<Json, Json>();

function renamed(vh: Json, name: string): Json {
  const known = renamedHosts.get(vh);
  if (known && known.name === name) return known;
  const out = { ...vh, name };
  renamedHosts.set(vh, out);
  return out;
}

/**
 * Moves the virtual hosts of `routes` (whole route configurations) out into VirtualHost
 * resources; the route configurations keep only their catch-all and name VHDS instead.
 * Both lists are sorted by name as the inputs are.
 */
export function splitVirtualHosts(routes: readonly EnvoyResource[]): { routes: EnvoyResource[]; virtualHosts: EnvoyResource[] } {
  const outRoutes: EnvoyResource[] = [];
  const virtualHosts: EnvoyResource[] = [];
  for (const rc of routes) {
    const inline: Json[] = [];
    for (const vh of (rc.body.virtual_hosts as Json[] | undefined) ?? []) {
      if (isCatchAll(vh)) {
        inline.push(vh);
        continue;
      }
      const name = virtualHostResourceName(rc.name, String(vh.name));
      virtualHosts.push({ name, body: renamed(vh, name) });
    }
    outRoutes.push({ name: rc.name, body: { ...rc.body, virtual_hosts: inline, vhds: VHDS_OVER_ADS } });
  }
  virtualHosts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { routes: outRoutes, virtualHosts };
}
