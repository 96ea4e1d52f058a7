// `proxy-config listener`: istioctl's ADDRESSES, PORT, MATCH, DESTINATION table, one row per
// filter chain, from the listeners in Envoy's config dump.
import { ConfigDumpError, listeners, obj, str, type Json } from './config-dump.js';
import { describeMatch } from './route-match.js';
import { formatTable } from './table.js';

const HCM = 'envoy.filters.network.http_connection_manager';
const TCP_PROXY = 'envoy.filters.network.tcp_proxy';

export interface ListenerFilter {
  address?: string;
  port?: number;
  type?: string;
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.map(obj) : [];
}

function address(l: Json): string {
  const a = obj(l.address);
  const sock = obj(a.socket_address);
  if (a.socket_address !== undefined) return str(sock.address);
  if (a.pipe !== undefined) return str(obj(a.pipe).path);
  return '';
}

function additionalAddresses(l: Json): string[] {
  return list(l.additional_addresses).map((x) => str(obj(obj(obj(x).address).socket_address).address));
}

function port(l: Json): number {
  return Number(obj(obj(l.address).socket_address).port_value ?? 0);
}

function filterChains(l: Json): Json[] {
  return [...list(l.filter_chains), ...(l.default_filter_chain ? [obj(l.default_filter_chain)] : [])];
}

function toBlackHole(filter: Json): boolean {
  return JSON.stringify(filter.typed_config ?? {}).includes('BlackHoleCluster');
}

/** HTTP, TCP, HTTP+TCP or UNKNOWN, by the filters of its chains (TCP to the black hole does not count). */
export function listenerType(l: Json): string {
  let http = 0;
  let tcp = 0;
  for (const fc of filterChains(l)) {
    for (const f of list(fc.filters)) {
      if (f.name === HCM) http++;
      else if (f.name === TCP_PROXY && !toBlackHole(f)) tcp++;
    }
  }
  if (http > 0) return tcp === 0 ? 'HTTP' : 'HTTP+TCP';
  return tcp > 0 ? 'TCP' : 'UNKNOWN';
}

export function listenerMatches(f: ListenerFilter, l: Json): boolean {
  if (f.address) {
    const all = [address(l), ...additionalAddresses(l)];
    if (!all.some((a) => a.toLowerCase() === f.address!.toLowerCase())) return false;
  }
  if (f.port && port(l) !== f.port) return false;
  if (f.type && listenerType(l).toLowerCase() !== f.type.toLowerCase()) return false;
  return true;
}

const APP_PROTOCOLS: [string, string[]][] = [
  ['App: HTTP TLS', ['http/1.0', 'http/1.1', 'h2c', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2']],
  ['App: Istio HTTP Plain', ['istio', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2']],
  ['App: TCP TLS', ['istio-peer-exchange', 'istio']],
  ['App: HTTP', ['http/1.0', 'http/1.1', 'h2c']],
];

/** A filter chain match as istioctl describes it: `SNI: ...; Trans: tls; App: ...; Addr: ...`, or ALL. */
export function describeChainMatch(match: unknown): string {
  const m = obj(match);
  const out: string[] = [];
  const sni = Array.isArray(m.server_names) ? m.server_names.map(str) : [];
  if (sni.length) out.push(`SNI: ${sni.join(',')}`);
  if (str(m.transport_protocol)) out.push(`Trans: ${str(m.transport_protocol)}`);
  const alpn = Array.isArray(m.application_protocols) ? m.application_protocols.map(str) : [];
  if (alpn.length) {
    const known = APP_PROTOCOLS.find(([, p]) => p.length === alpn.length && p.every((x, i) => x === alpn[i]));
    out.push(known ? known[0] : `App: ${alpn.join(',')}`);
  }
  const dport = m.destination_port !== undefined ? `:${str(m.destination_port)}` : '';
  const ranges = list(m.prefix_ranges);
  if (ranges.length) out.push(`Addr: ${ranges.map((r) => `${str(r.address_prefix)}/${str(r.prefix_len ?? 0)}`).join(',')}${dport}`);
  else if (dport) out.push(`Addr: *${dport}`);
  return out.length ? out.join('; ') : 'ALL';
}

function matchAllCluster(rc: Json): string {
  const vhs = list(rc.virtual_hosts);
  if (vhs.length !== 1) return '';
  const vh = vhs[0]!;
  const domains = Array.isArray(vh.domains) ? vh.domains : [];
  if (domains.length !== 1 || domains[0] !== '*') return '';
  const routes = list(vh.routes);
  if (routes.length !== 1 || str(obj(routes[0]!.match).prefix) !== '/') return '';
  const cluster = str(obj(routes[0]!.route).cluster);
  if (!cluster) return '';
  return cluster.includes('Cluster') ? cluster : `Cluster: ${cluster}`;
}

function describeRouteConfig(rc: Json): string {
  const all = matchAllCluster(rc);
  if (all) return all;
  const vhosts = list(rc.virtual_hosts).map((vh) => {
    const domains = Array.isArray(vh.domains) ? vh.domains.map(str) : [];
    const d = domains.length === 1 && domains[0] === '*' ? '' : domains.join('/');
    const routes = list(vh.routes).map((r) => describeMatch(r.match)).join(', ');
    return d ? `${d} ${routes}` : routes;
  });
  return `Inline Route: ${vhosts.join('; ')}`;
}

/** Where a filter chain sends traffic: `Route: <rds name>`, a cluster, an inline route. */
export function describeDestination(filters: Json[]): string {
  for (const f of filters) {
    const tc = obj(f.typed_config);
    if (f.name === HCM) {
      if (tc.route_config !== undefined) return describeRouteConfig(obj(tc.route_config));
      const rds = str(obj(tc.rds).route_config_name);
      return rds ? `Route: ${rds}` : 'HTTP';
    }
    if (f.name === TCP_PROXY && !toBlackHole(f)) {
      const cluster = str(tc.cluster);
      return cluster.includes('Cluster') ? cluster : `Cluster: ${cluster}`;
    }
  }
  return 'Non-HTTP/Non-TCP';
}

/** Listeners sorted by port, address and type, filtered. */
export function selectListeners(dump: unknown, f: ListenerFilter = {}): Json[] {
  const all = listeners(dump);
  if (all.length === 0) throw new ConfigDumpError('no listeners found');
  return all
    .filter((l) => listenerMatches(f, l))
    .map((l) => ({ l, port: port(l), addr: address(l), type: listenerType(l) }))
    .sort((a, b) => a.port - b.port || (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0) || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0))
    .map((x) => x.l);
}

export function listenerRows(dump: unknown, f: ListenerFilter = {}): string[][] {
  const rows: string[][] = [];
  for (const l of selectListeners(dump, f)) {
    const addresses = [address(l), ...additionalAddresses(l)].join(',');
    const chains = filterChains(l)
      .map((fc) => ({ match: describeChainMatch(fc.filter_chain_match), destination: describeDestination(list(fc.filters)) }))
      .sort((a, b) => (a.destination > b.destination ? -1 : a.destination < b.destination ? 1 : 0));
    for (const c of chains) rows.push([addresses, String(port(l)), c.match, c.destination]);
  }
  return rows;
}

export const LISTENER_HEADER = ['ADDRESSES', 'PORT', 'MATCH', 'DESTINATION'];

export function listenerTable(dump: unknown, f: ListenerFilter = {}): string {
  return formatTable(LISTENER_HEADER, listenerRows(dump, f));
}
