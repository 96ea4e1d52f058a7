// ServiceEntries in the service registry: each host of a ServiceEntry becomes a service of
// the snapshot (hostname = the host, namespace = the ServiceEntry's), so routing,
// DestinationRules and Sidecar scoping treat it as they treat a Kubernetes Service. Its
// endpoints are the ServiceEntry's `endpoints`, or the Pods and WorkloadEntries its
// workloadSelector picks in its namespace; with DNS resolution and no endpoints, the host
// itself.
import type { PodObject, ServiceEntryObject, WorkloadEntryObject } from './objects.js';
import type { MeshEndpoint, MeshService, MeshServicePort } from './service.js';
import { portProtocol } from './protocol.js';
import { selectorMatches, type Labels } from './labels.js';
import { locationOf, resolutionOf, type WorkloadEntrySpec } from './service-entry.js';

const NO_LABELS: Labels = Object.freeze({});

function byNamespacedName(a: ServiceEntryObject, b: ServiceEntryObject): number {
  const x = `${a.metadata.namespace}/${a.metadata.name}`;
  const y = `${b.metadata.namespace}/${b.metadata.name}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A registry service made from a ServiceEntry host, with the ServiceEntry. */
export interface EntryService {
  svc: MeshService;
  entry: ServiceEntryObject;
}

function entryPorts(se: ServiceEntryObject): MeshServicePort[] {
  return (se.spec.ports ?? [])
    .map((p) => ({ name: p.name ?? '', port: p.number, targetPort: p.targetPort ?? p.number, protocol: portProtocol({ name: p.name ?? '', ...(p.protocol ? { appProtocol: p.protocol } : {}) }) }))
    .sort((a, b) => a.port - b.port);
}

/**
 * The services of `entries`, one per host. A host a Kubernetes Service (in `taken`) or an
 * earlier ServiceEntry (by namespace/name) already holds is left to that one.
 */
export function serviceEntryServices(entries: readonly ServiceEntryObject[], taken: ReadonlySet<string>): EntryService[] {
  const out: EntryService[] = [];
  const seen = new Set(taken);
  for (const se of [...entries].sort(byNamespacedName)) {
    const ports = entryPorts(se);
    const origin = {
      namespace: se.metadata.namespace,
      name: se.metadata.name,
      location: locationOf(se.spec),
      resolution: resolutionOf(se.spec),
      addresses: se.spec.addresses ?? [],
      exportTo: se.spec.exportTo ?? undefined,
      subjectAltNames: se.spec.subjectAltNames ?? undefined,
    };
    for (const host of se.spec.hosts) {
      if (seen.has(host)) continue;
      seen.add(host);
      const svc: MeshService = { hostname: host, name: host, namespace: se.metadata.namespace, clusterIP: undefined, ports, selector: se.spec.workloadSelector?.labels ?? undefined, labels: se.metadata.labels, entry: origin };
      out.push({ svc, entry: se });
    }
  }
  return out;
}

/** The workloads a ServiceEntry's workloadSelector may pick. */
export interface SelectableWorkloads {
  pods: Iterable<PodObject>;
  workloadEntries: readonly WorkloadEntryObject[];
}

/**
 * A workload (a ServiceEntry endpoint or a WorkloadEntry) as the endpoint of `port`: its
 * port for the port's name (or a named targetPort), else the target port, else the port.
 */
export function workloadEndpoint(w: WorkloadEntrySpec, port: MeshServicePort, namespace: string): MeshEndpoint | undefined {
  if (!w.address) return undefined;
  const target = typeof port.targetPort === 'number' ? port.targetPort : port.port;
  const named = (port.name ? w.ports?.[port.name] : undefined) ?? (typeof port.targetPort === 'string' ? w.ports?.[port.targetPort] : undefined);
  const ep: MeshEndpoint = { address: w.address, port: named ?? target, labels: w.labels ?? NO_LABELS };
  if (w.serviceAccount) ep.serviceAccount = `${namespace}/${w.serviceAccount}`;
  if (w.locality) {
    const [region, zone, subZone] = w.locality.split('/');
    if (region) ep.region = region;
    if (zone) ep.zone = zone;
    if (subZone) ep.subZone = subZone;
  }
  if (w.weight !== undefined && w.weight !== null) ep.weight = w.weight;
  if (w.network) ep.network = w.network;
  return ep;
}

function byAddress(a: MeshEndpoint, b: MeshEndpoint): number {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;
}

/** The endpoints of a ServiceEntry host, per port (keyed by port number). */
export function serviceEntryEndpoints(e: EntryService, workloads: SelectableWorkloads): Map<number, MeshEndpoint[]> {
  const { svc, entry } = e;
  const ns = entry.metadata.namespace;
  const out = new Map<number, MeshEndpoint[]>();
  const resolution = svc.entry?.resolution ?? 'NONE';
  const selector = entry.spec.workloadSelector?.labels ?? undefined;
  for (const port of svc.ports) {
    const eps: MeshEndpoint[] = [];
    if (resolution !== 'NONE') {
      for (const w of entry.spec.endpoints ?? []) {
        const ep = workloadEndpoint(w, port, ns);
        if (ep) eps.push(ep);
      }
      if (selector && Object.keys(selector).length > 0) {
        for (const we of workloads.workloadEntries) {
          if (we.metadata.namespace !== ns || !selectorMatches(selector, we.spec.labels ?? NO_LABELS)) continue;
          const ep = workloadEndpoint(we.spec, port, ns);
          if (ep) eps.push(ep);
        }
        for (const pod of workloads.pods) {
          if (pod.metadata.namespace !== ns || !pod.ready || pod.podIPs.length === 0 || !selectorMatches(selector, pod.metadata.labels)) continue;
          const target = typeof port.targetPort === 'number' ? port.targetPort : port.port;
          eps.push({ address: pod.podIPs[0]!, port: target, labels: pod.metadata.labels, podName: pod.metadata.name, serviceAccount: `${ns}/${pod.serviceAccountName}` });
        }
      }
      // DNS without endpoints: the host itself is resolved.
      if (eps.length === 0 && !selector && (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN')) {
        eps.push({ address: svc.hostname, port: typeof port.targetPort === 'number' ? port.targetPort : port.port, labels: NO_LABELS });
      }
    }
    out.set(port.port, eps.sort(byAddress));
  }
  return out;
}
