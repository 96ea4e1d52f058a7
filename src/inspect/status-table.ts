// `proxy-status`: istioctl's NAME, CLUSTER, CDS, LDS, EDS, RDS, ECDS, ISTIOD, VERSION table,
// from every meshd replica's /debug/syncz. A type the proxy never subscribed to is IGNORED.
import { formatTable } from './table.js';

/** One entry of meshd's /debug/syncz (the fields read here). */
export interface SynczEntry {
  proxy: string;
  cluster_id?: string;
  namespace?: string;
  istio_version?: string;
  istiod?: string;
  types?: Record<string, { status?: string } | undefined>;
}

export interface ReplicaSyncz {
  /** The replica's name (its pod), as meshd reports it or as it was reached. */
  replica: string;
  entries: SynczEntry[];
}

/** `<pod>.<namespace>` of an Istio node id (`sidecar~ip~pod.ns~ns.svc.cluster.local`), as istioctl names proxies. */
export function proxyName(nodeId: string): string {
  const parts = nodeId.split('~');
  return parts.length === 4 ? parts[2]! : nodeId;
}

const COLUMNS: [string, string][] = [
  ['CDS', 'cds'],
  ['LDS', 'lds'],
  ['EDS', 'eds'],
  ['RDS', 'rds'],
  ['ECDS', 'ecds'],
];

/**
 * A column's status. RDS covers VHDS too: a proxy taking its virtual hosts over VHDS is
 * STALE on RDS while either has a response it has not acknowledged.
 */
function columnStatus(types: SynczEntry['types'], key: string): string {
  const own = types?.[key]?.status;
  if (key !== 'rds' || own === undefined) return own ?? 'IGNORED';
  return types?.vhds?.status === 'STALE' ? 'STALE' : own;
}

export const STATUS_HEADER = ['NAME', 'CLUSTER', ...COLUMNS.map(([h]) => h), 'ISTIOD', 'VERSION'];

export interface StatusRow {
  name: string;
  nodeId: string;
  cluster: string;
  namespace: string;
  statuses: string[];
  istiod: string;
  version: string;
}

export function statusRows(replicas: readonly ReplicaSyncz[], namespace?: string): StatusRow[] {
  const rows: StatusRow[] = [];
  for (const r of replicas) {
    for (const e of r.entries) {
      const name = proxyName(e.proxy);
      const ns = e.namespace ?? name.slice(name.lastIndexOf('.') + 1);
      if (namespace && ns !== namespace) continue;
      rows.push({
        name,
        nodeId: e.proxy,
        cluster: e.cluster_id ?? '',
        namespace: ns,
        statuses: COLUMNS.map(([, key]) => columnStatus(e.types, key)),
        istiod: e.istiod ?? r.replica,
        version: e.istio_version ?? '',
      });
    }
  }
  return rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.istiod < b.istiod ? -1 : 1));
}

export function statusTable(replicas: readonly ReplicaSyncz[], namespace?: string): string {
  return formatTable(STATUS_HEADER, statusRows(replicas, namespace).map((r) => [r.name, r.cluster, ...r.statuses, r.istiod, r.version]));
}
