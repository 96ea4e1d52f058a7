// `proxy-config endpoint`: istioctl's ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER table, from
// Envoy's admin /clusters?format=json (each host's EDS health and outlier state).
import { ConfigDumpError, obj, str, type Json } from './config-dump.js';
import { formatTable } from './table.js';

export interface EndpointFilter {
  address?: string;
  port?: number;
  cluster?: string;
  status?: string;
}

interface EndpointRow {
  address: string;
  port: number;
  cluster: string;
  status: string;
  outlierFailed: boolean;
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.map(obj) : [];
}

function hostAddress(host: Json): { address: string; port: number } {
  const a = obj(host.address);
  if (a.socket_address !== undefined) {
    const s = obj(a.socket_address);
    return { address: str(s.address), port: Number(s.port_value ?? 0) };
  }
  if (a.pipe !== undefined) return { address: `unix://${str(obj(a.pipe).path)}`, port: 0 };
  const internal = obj(a.envoy_internal_address);
  if (internal.server_listener_name !== undefined) return { address: `envoy://${str(internal.server_listener_name)}/${str(internal.endpoint_id)}`, port: 0 };
  return { address: 'unknown', port: 0 };
}

/** Every host of every cluster, filtered and sorted by address, port and cluster. */
export function selectEndpoints(clustersJson: unknown, f: EndpointFilter = {}): EndpointRow[] {
  const statuses = (clustersJson as { cluster_statuses?: unknown } | null)?.cluster_statuses;
  if (!Array.isArray(statuses)) throw new ConfigDumpError('not Envoy\'s /clusters?format=json: no "cluster_statuses" list');
  const rows: EndpointRow[] = [];
  for (const c of list(statuses)) {
    const cluster = str(c.name);
    for (const h of list(c.host_statuses)) {
      const { address, port } = hostAddress(h);
      const health = obj(h.health_status);
      const status = str(health.eds_health_status) || 'UNKNOWN';
      if (f.address && address.toLowerCase() !== f.address.toLowerCase()) continue;
      if (f.port && port !== f.port) continue;
      if (f.cluster && cluster.toLowerCase() !== f.cluster.toLowerCase()) continue;
      if (f.status && status.toLowerCase() !== f.status.toLowerCase()) continue;
      rows.push({ address, port, cluster, status, outlierFailed: health.failed_outlier_check === true });
    }
  }
  return rows.sort((a, b) => (a.address !== b.address ? (a.address < b.address ? -1 : 1) : a.port !== b.port ? a.port - b.port : a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
}

export function endpointRows(clustersJson: unknown, f: EndpointFilter = {}): string[][] {
  return selectEndpoints(clustersJson, f).map((e) => [e.port ? `${e.address}:${e.port}` : e.address, e.status, e.outlierFailed ? 'FAILED' : 'OK', e.cluster]);
}

export const ENDPOINT_HEADER = ['ENDPOINT', 'STATUS', 'OUTLIER CHECK', 'CLUSTER'];

export function endpointTable(clustersJson: unknown, f: EndpointFilter = {}): string {
  return formatTable(ENDPOINT_HEADER, endpointRows(clustersJson, f));
}

/** The cluster statuses that have a host passing the filter (for -o json|yaml). */
export function endpointClusters(clustersJson: unknown, f: EndpointFilter = {}): Json[] {
  const keep = new Set(selectEndpoints(clustersJson, f).map((e) => e.cluster));
  return list((clustersJson as { cluster_statuses?: unknown }).cluster_statuses).filter((c) => keep.has(str(c.name)));
}
