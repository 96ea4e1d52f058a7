// Distribution tracking, for status: which connected proxies an Istio object affects, and
// how many of them have acknowledged config built from a snapshot that holds the object's
// current generation (or rejected it). Built once per status pass from the connections,
// grouped by what the rule below looks at (role, namespace, labels), so a pass costs
// objects x groups, not objects x proxies.
//
// Which proxies an object affects (a simple rule, close to what translation does):
// - Gateway: gateway proxies (router) whose labels its selector matches.
// - VirtualService: bound to `mesh` (or to no gateway), sidecars of the namespaces it is
//   exported to; bound to a Gateway, the gateway proxies that Gateway selects.
// - DestinationRule: sidecars and gateway proxies of the namespaces it is exported to (with
//   a workloadSelector: only its namespace's proxies that it selects).
// - PeerAuthentication: sidecars of its namespace (those it selects, with a selector); in
//   the root namespace, every sidecar.
// - AuthorizationPolicy, RequestAuthentication: the proxies it applies to by its scope
//   (model/authorization-scope.ts).
// - Sidecar: the sidecars it is resolved for (model/sidecar.ts: selector, namespace, root default).
// - ServiceEntry: the proxies of the namespaces it is exported to (its hosts are services there).
// - WorkloadEntry: the proxies that see a ServiceEntry of its namespace selecting it.
// - Telemetry: the proxies it is one of the levels of (model/telemetry.ts: root, namespace, workload).
// A proxy counts once it has acknowledged a response (until then it is still connecting),
// or as soon as it rejects one.
import type { IstioConfig } from '../model/mesh.js';
import type { IstioObject } from '../model/objects.js';
import { labelsKey, selectorMatches, type Labels } from '../model/labels.js';
import type { ProxyType } from '../model/proxy.js';
import { MESH_GATEWAY, resolveGateway, rootNamespaceOf, visibleTo } from '../translate/istio-config.js';
import { policyApplies } from '../model/authorization-scope.js';
import { sidecarFor } from '../model/sidecar.js';
import { telemetriesFor } from '../model/telemetry.js';
import type { Connection } from './connection.js';

export interface ProxyCounts {
  /** Connected proxies the object affects. */
  affected: number;
  /** Of those, proxies that acknowledged a snapshot holding the object's generation. */
  upToDate: number;
  /** Of the others, proxies whose last response of some type stands rejected (NACK). */
  rejected: number;
  /** One rejection's text (`TYPE: message`), when there is one. */
  rejection?: string;
}

/** The proxies of one role, namespace and label set. */
interface ProxyGroup {
  type: ProxyType;
  namespace: string;
  labels: Labels;
  /** Their synced snapshot versions, sorted. */
  synced: number[];
  /** The synced versions of those with a standing rejection, sorted. */
  rejectedSynced: number[];
  rejection?: string;
}

/** How many of `sorted` are below `v`. */
function countBelow(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether an object affects the proxies of `g`; built once per object. */
type Affects = (g: ProxyGroup) => boolean;

function affectsOf(obj: IstioObject, config: IstioConfig): Affects {
  const ns = obj.metadata.namespace;
  switch (obj.kind) {
    case 'Gateway':
      return (g) => g.type === 'router' && selectorMatches(obj.spec.selector, g.labels);
    case 'VirtualService': {
      const refs = obj.spec.gateways?.length ? obj.spec.gateways.map((r) => resolveGateway(r, ns)) : [MESH_GATEWAY];
      const mesh = refs.includes(MESH_GATEWAY);
      const selectors = config.gateways.filter((gw) => refs.includes(`${gw.metadata.namespace}/${gw.metadata.name}`)).map((gw) => gw.spec.selector);
      return (g) => (g.type === 'sidecar' ? mesh && visibleTo(obj.spec.exportTo, ns, g.namespace) : selectors.some((s) => selectorMatches(s, g.labels)));
    }
    case 'DestinationRule': {
      const ws = obj.spec.workloadSelector?.matchLabels;
      if (ws) return (g) => g.namespace === ns && selectorMatches(ws, g.labels);
      return (g) => visibleTo(obj.spec.exportTo, ns, g.namespace);
    }
    case 'PeerAuthentication': {
      if (ns === rootNamespaceOf(config)) return (g) => g.type === 'sidecar';
      const sel = obj.spec.selector?.matchLabels ?? undefined;
      const selects = sel !== undefined && Object.keys(sel).length > 0;
      return (g) => g.type === 'sidecar' && g.namespace === ns && (!selects || selectorMatches(sel, g.labels));
    }
    case 'AuthorizationPolicy':
    case 'RequestAuthentication': {
      const root = rootNamespaceOf(config);
      return (g) => policyApplies(obj, root, g);
    }
    case 'Sidecar': {
      const root = rootNamespaceOf(config);
      const all = config.sidecars ?? [];
      return (g) => {
        if (g.type !== 'sidecar') return false;
        const s = sidecarFor(all, g.namespace, g.labels, root);
        return s !== undefined && s.metadata.namespace === ns && s.metadata.name === obj.metadata.name;
      };
    }
    case 'ServiceEntry':
      return (g) => visibleTo(obj.spec.exportTo ?? undefined, ns, g.namespace);
    case 'WorkloadEntry': {
      const labels = obj.spec.labels ?? {};
      const selecting = (config.serviceEntries ?? []).filter((se) => se.metadata.namespace === ns && Object.keys(se.spec.workloadSelector?.labels ?? {}).length > 0 && selectorMatches(se.spec.workloadSelector?.labels ?? undefined, labels));
      return (g) => selecting.some((se) => visibleTo(se.spec.exportTo ?? undefined, ns, g.namespace));
    }
    case 'Telemetry': {
      const root = rootNamespaceOf(config);
      const all = config.telemetries ?? [];
      return (g) => telemetriesFor(all, { namespace: g.namespace, labels: g.labels, type: g.type === 'router' ? 'router' : 'sidecar' }, root).some((t) => t.metadata.namespace === ns && t.metadata.name === obj.metadata.name);
    }
  }
}

export class DistributionIndex {
  private readonly groups: ProxyGroup[];

  private constructor(groups: ProxyGroup[]) {
    this.groups = groups;
  }

  /** The connected proxies' states, `current` being the newest snapshot version. */
  static of(connections: Iterable<Connection>, current: number): DistributionIndex {
    const byKey = new Map<string, ProxyGroup>();
    for (const c of connections) {
      if (c.closed) continue;
      const rejection = c.rejection();
      if (!rejection && !c.acknowledgedAny) continue; // still connecting
      const p = c.ctx.proxy;
      const key = `${p.type}|${p.namespace}|${labelsKey(p.labels)}`;
      let g = byKey.get(key);
      if (!g) byKey.set(key, (g = { type: p.type, namespace: p.namespace, labels: p.labels, synced: [], rejectedSynced: [] }));
      const v = c.syncedVersion(current);
      g.synced.push(v);
      if (rejection) {
        g.rejectedSynced.push(v);
        g.rejection ??= rejection;
      }
    }
    for (const g of byKey.values()) {
      g.synced.sort((a, b) => a - b);
      g.rejectedSynced.sort((a, b) => a - b);
    }
    return new DistributionIndex([...byKey.values()]);
  }

  /** How many proxies `obj` affects, and how many have acknowledged snapshot `since` or a later one. */
  counts(obj: IstioObject, since: number, config: IstioConfig): ProxyCounts {
    const affects = affectsOf(obj, config);
    const out: ProxyCounts = { affected: 0, upToDate: 0, rejected: 0 };
    for (const g of this.groups) {
      if (!affects(g)) continue;
      out.affected += g.synced.length;
      out.upToDate += g.synced.length - countBelow(g.synced, since);
      const rejected = countBelow(g.rejectedSynced, since);
      out.rejected += rejected;
      if (rejected > 0) out.rejection ??= g.rejection;
    }
    return out;
  }

  /** Proxies counted (connected and past their first response). */
  get proxies(): number {
    return this.groups.reduce((n, g) => n + g.synced.length, 0);
  }
}
