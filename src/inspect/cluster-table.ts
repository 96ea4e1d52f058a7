// `proxy-config cluster`: istioctl's SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE,
// DESTINATION RULE table, from the clusters in Envoy's config dump.
import { clusters, ConfigDumpError, str, type Json } from './config-dump.js';
import { compareSubsetKeys, describeManagement, parseSubsetKey, sortKey } from './istio-names.js';
import { formatTable } from './table.js';

export interface ClusterFilter {
  fqdn?: string;
  port?: number;
  subset?: string;
  direction?: string;
}

/** istioctl's matching: substrings of the cluster name (the port as `|<port>|`). */
export function clusterMatches(f: ClusterFilter, name: string): boolean {
  if (f.fqdn && !name.includes(f.fqdn)) return false;
  if (f.direction && !name.includes(f.direction)) return false;
  if (f.subset && !name.includes(f.subset)) return false;
  if (f.port && !name.includes(`|${f.port}|`)) return false;
  return true;
}

/** The clusters, sorted as istioctl sorts them (FQDN, subset, port, direction), filtered. */
export function selectClusters(dump: unknown, f: ClusterFilter = {}): Json[] {
  const all = clusters(dump);
  if (all.length === 0) throw new ConfigDumpError('no clusters found');
  return all
    .map((c) => ({ c, key: sortKey(str(c.name)) }))
    .sort((a, b) => compareSubsetKeys(a.key, b.key))
    .map((x) => x.c)
    .filter((c) => clusterMatches(f, str(c.name)));
}

/** A cluster's discovery type as Envoy's enum names it (STATIC when unset, as istioctl shows it). */
function clusterType(c: Json): string {
  return str(c.type) || 'STATIC';
}

export function clusterRows(dump: unknown, f: ClusterFilter = {}): string[][] {
  return selectClusters(dump, f).map((c) => {
    const name = str(c.name);
    const key = name.split('|').length > 3 ? parseSubsetKey(name) : undefined;
    const management = describeManagement(c.metadata);
    if (!key) return [name, '-', '-', '-', clusterType(c), management];
    return [key.fqdn, String(key.port), key.subset || '-', key.direction, clusterType(c), management];
  });
}

export const CLUSTER_HEADER = ['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'DESTINATION RULE'];

export function clusterTable(dump: unknown, f: ClusterFilter = {}): string {
  return formatTable(CLUSTER_HEADER, clusterRows(dump, f));
}
