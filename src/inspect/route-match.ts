// How istioctl describes a route's match and a virtual host's domains in one cell.
import { obj, str, type Json } from './config-dump.js';

/** `/api*` for a prefix, the path for an exact path, `regex <re>`, `PathPrefix:<p>`; headers are left out. */
export function describeMatch(match: unknown): string {
  const m = obj(match);
  const conds: string[] = [];
  if (str(m.prefix)) conds.push(`${str(m.prefix)}*`);
  if (str(m.path_separated_prefix)) conds.push(`PathPrefix:${str(m.path_separated_prefix)}`);
  if (str(m.path)) conds.push(str(m.path));
  if (m.safe_regex !== undefined) conds.push(`regex ${str(obj(m.safe_regex).regex)}`);
  return conds.join(' ');
}

/** Drops `x.svc.cluster.local` and `x.svc` when `x` is there too, keeping the order. */
function unexpandDomains(domains: string[]): string[] {
  const unique = new Set(domains);
  const drop = new Set<string>();
  for (const h of domains) {
    for (const suffix of ['.svc.cluster.local', '.svc']) {
      const stripped = h.endsWith(suffix) ? h.slice(0, -suffix.length) : h;
      if (stripped !== h && unique.has(stripped)) drop.add(h);
    }
  }
  return domains.filter((h) => !drop.has(h));
}

/** The shortest names of a virtual host: without ports, unexpanded, at most two and a count. */
export function describeRouteDomains(domains: readonly string[]): string {
  if (domains.length === 0) return '';
  if (domains.length === 1) return domains[0]!;
  const withoutPort = domains.filter((d) => !d.includes(':') || ((d.match(/:/g)?.length ?? 0) > 2 && d.endsWith(']')));
  const short = unexpandDomains(withoutPort);
  const max = 2;
  if (short.length > max) return `${short.slice(0, max).join(', ')} + ${short.length - max} more...`;
  return short.join(', ');
}

/** A route whose action is the PassthroughCluster (istioctl leaves those out). */
export function isPassthrough(route: Json): boolean {
  return str(obj(route.route).cluster) === 'PassthroughCluster';
}
