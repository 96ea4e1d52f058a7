// `proxy-config route`: istioctl's NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE table.
import { ConfigDumpError, obj, routeConfigs, str, type Json } from './config-dump.js';
import { describeManagement } from './istio-names.js';
import { describeMatch, describeRouteDomains, isPassthrough } from './route-match.js';
import { formatTable } from './table.js';

export interface RouteFilter {
  name?: string;
}

function numeric(name: string): number | undefined {
  return /^\d+$/.test(name) ? Number(name) : undefined;
}

/** Route configurations, numeric names (outbound ports) in numeric order, filtered by name. */
export function selectRoutes(dump: unknown, f: RouteFilter = {}): Json[] {
  const all = routeConfigs(dump);
  if (all.length === 0) throw new ConfigDumpError('no routes found');
  return all
    .sort((a, b) => {
      const x = numeric(str(a.name));
      const y = numeric(str(b.name));
      return x === undefined || y === undefined ? 0 : x - y;
    })
    .filter((r) => !f.name || str(r.name) === f.name);
}

export function routeRows(dump: unknown, f: RouteFilter = {}): string[][] {
  const rows: string[][] = [];
  for (const rc of selectRoutes(dump, f)) {
    const name = str(rc.name);
    for (const vhRaw of Array.isArray(rc.virtual_hosts) ? rc.virtual_hosts : []) {
      const vh = obj(vhRaw);
      const domains = (Array.isArray(vh.domains) ? vh.domains : []).map(str);
      const routes = (Array.isArray(vh.routes) ? vh.routes : []).map(obj);
      for (const r of routes) {
        if (!isPassthrough(r)) rows.push([name, str(vh.name), describeRouteDomains(domains), describeMatch(r.match), describeManagement(r.metadata)]);
      }
      if (routes.length === 0) rows.push([name, str(vh.name), describeRouteDomains(domains), '/*', '404']);
    }
  }
  return rows;
}

export const ROUTE_HEADER = ['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE'];

export function routeTable(dump: unknown, f: RouteFilter = {}): string {
  return formatTable(ROUTE_HEADER, routeRows(dump, f));
}
