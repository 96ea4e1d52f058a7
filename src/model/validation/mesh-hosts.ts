// VirtualServices bound to the mesh (sidecars) that claim one host: for the sidecars of a
// namespace, the first by namespace/name of those visible there governs the host, and the
// others are ignored for it (Istio's IST0109 ConflictingMeshGatewayVirtualServiceHosts).
import type { VirtualServiceObject } from '../objects.js';
import { resolveHost } from '../istio.js';
import { boundGatewaysOf, MESH_GATEWAY } from '../istio-scope.js';
import { finding, type Finding } from '../finding.js';

/** For one client namespace: the VirtualService governing each host, from those visible there (sorted by namespace/name). */
export function meshHostOwners(visible: readonly VirtualServiceObject[], domain: string): Map<string, VirtualServiceObject> {
  const out = new Map<string, VirtualServiceObject>();
  for (const vs of visible) {
    for (const h of vs.spec.hosts ?? []) {
      const host = resolveHost(h, vs.metadata.namespace, domain);
      if (!out.has(host)) out.set(host, vs);
    }
  }
  return out;
}

/** The namespaces a VirtualService is visible in; undefined: all. */
function scope(vs: VirtualServiceObject): Set<string> | undefined {
  const exportTo = vs.spec.exportTo ?? [];
  if (exportTo.length === 0 || exportTo.includes('*')) return undefined;
  return new Set(exportTo.map((e) => (e === '.' ? vs.metadata.namespace : e)));
}

/** Where both are visible: undefined for everywhere, else the namespaces (possibly none). */
function overlap(a: Set<string> | undefined, b: Set<string> | undefined): Set<string> | undefined {
  if (!a) return b;
  if (!b) return a;
  return new Set([...a].filter((n) => b.has(n)));
}

const ref = (vs: VirtualServiceObject): string => `${vs.metadata.namespace}/${vs.metadata.name}`;

/**
 * IST0109 on each VirtualService (bound to the mesh) that loses a host to an earlier one
 * where both are visible: an Error, naming the one sidecars use. `virtualServices` are the
 * accepted ones, sorted by namespace/name.
 */
export function meshHostConflictFindings(virtualServices: readonly VirtualServiceObject[], domain: string): Finding[] {
  const claims = new Map<string, { vs: VirtualServiceObject; scope: Set<string> | undefined }[]>();
  const out: Finding[] = [];
  for (const vs of virtualServices) {
    if (!boundGatewaysOf(vs).includes(MESH_GATEWAY)) continue;
    const mine = scope(vs);
    const seen = new Set<string>();
    (vs.spec.hosts ?? []).forEach((h, i) => {
      const host = resolveHost(h, vs.metadata.namespace, domain);
      if (seen.has(host)) return;
      seen.add(host);
      const earlier = claims.get(host) ?? [];
      for (const c of earlier) {
        const where = overlap(c.scope, mine);
        if (where && where.size === 0) continue;
        const place = where ? ` in namespace${where.size > 1 ? 's' : ''} ${[...where].sort().join(', ')}` : '';
        out.push(
          finding(
            'ConflictingMeshGatewayVirtualServiceHosts',
            vs,
            `spec.hosts[${i}]`,
            `The VirtualServices ${ref(c.vs)},${ref(vs)} bound to the mesh gateway both define host ${host}: sidecars${place} use only ${ref(c.vs)} (the first by namespace/name) for it and ignore this one. Merge them into one VirtualService.`,
          ),
        );
        break;
      }
      earlier.push({ vs, scope: mine });
      claims.set(host, earlier);
    });
  }
  return out;
}
