// Istio's ServiceEntry (networking.istio.io v1, v1beta1, v1alpha3): hosts added to the mesh's
// service registry (an external API, VMs, a service of another cluster), with their ports,
// where they are (MESH_EXTERNAL or MESH_INTERNAL), how their endpoints are found (NONE,
// STATIC, DNS, DNS_ROUND_ROBIN) and who sees them (exportTo). Validation names the field, as
// Istio's does; model/service-entries.ts turns valid ones into the registry's services.
import { isIP } from 'node:net';
import { z } from 'zod';

const portNumber = z.number().int().min(1, 'must be a port number from 1 to 65535').max(65535, 'must be a port number from 1 to 65535');

export const LOCATIONS = ['MESH_EXTERNAL', 'MESH_INTERNAL'] as const;
export type ServiceEntryLocation = (typeof LOCATIONS)[number];
export const RESOLUTIONS = ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'] as const;
export type ServiceEntryResolution = (typeof RESOLUTIONS)[number];

const servicePort = z.object({
  number: portNumber,
  protocol: z.string().nullish(),
  name: z.string().nullish(),
  targetPort: portNumber.nullish(),
});

/** A ServiceEntry endpoint, or the spec of a WorkloadEntry (the same message in Istio's API). */
export const workloadEntrySpecSchema = z.object({
  address: z.string().nullish(),
  ports: z.record(z.string(), portNumber).nullish(),
  labels: z.record(z.string(), z.string()).nullish(),
  network: z.string().nullish(),
  locality: z.string().nullish(),
  weight: z.number().int().min(0, 'must not be negative').max(4294967295, 'must fit in 32 bits').nullish(),
  serviceAccount: z.string().nullish(),
});
export type WorkloadEntrySpec = z.infer<typeof workloadEntrySpecSchema>;

export const serviceEntrySpecSchema = z.object({
  hosts: z.array(z.string()).min(1, 'must list at least one host'),
  addresses: z.array(z.string()).nullish(),
  ports: z.array(servicePort).nullish(),
  location: z.enum(LOCATIONS, { error: (i) => `${JSON.stringify(i.input)} is not one of ${LOCATIONS.join(', ')}` }).nullish(),
  resolution: z.enum(RESOLUTIONS, { error: (i) => `${JSON.stringify(i.input)} is not one of ${RESOLUTIONS.join(', ')}` }).nullish(),
  endpoints: z.array(workloadEntrySpecSchema).nullish(),
  workloadSelector: z.object({ labels: z.record(z.string(), z.string()).nullish() }).nullish(),
  exportTo: z.array(z.string()).nullish(),
  subjectAltNames: z.array(z.string()).nullish(),
});
export type ServiceEntrySpec = z.infer<typeof serviceEntrySpecSchema>;
export type ServiceEntryPort = z.infer<typeof servicePort>;

type Issue = { path: (string | number)[]; message: string };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HOST = /^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$/;
const FQDN = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*\.?$/;

/** Whether `a` is an IP address or a CIDR block (`10.0.0.0/24`, `2001:db8::/32`). */
export function isAddressOrCidr(a: string): boolean {
  const slash = a.indexOf('/');
  if (slash < 0) return isIP(a) !== 0;
  const ip = a.slice(0, slash);
  const bits = a.slice(slash + 1);
  const family = isIP(ip);
  if (family === 0 || !/^[0-9]{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** The resolution, Istio's default (NONE) when unset. */
export function resolutionOf(spec: ServiceEntrySpec): ServiceEntryResolution {
  return spec.resolution ?? 'NONE';
}

/** The location, Istio's default (MESH_EXTERNAL) when unset. */
export function locationOf(spec: ServiceEntrySpec): ServiceEntryLocation {
  return spec.location ?? 'MESH_EXTERNAL';
}

/** Checks of one endpoint (or WorkloadEntry) address, as Istio's validation makes them. */
function endpointAddressIssue(address: string, resolution: ServiceEntryResolution | undefined): string | undefined {
  if (address.startsWith('unix://')) {
    if (address.length <= 'unix://'.length) return 'a unix:// address needs a socket path';
    return resolution === undefined || resolution === 'STATIC' ? undefined : 'a unix:// address needs resolution STATIC';
  }
  if (isIP(address) !== 0) return undefined;
  if (resolution === 'STATIC') return `"${address}" must be an IP address (or unix://<path>) with resolution STATIC`;
  if (!FQDN.test(address) || address.length > 253) return `"${address}" must be an IP address or a DNS name`;
  return undefined;
}

/** Checks of a workload's fields, shared by ServiceEntry endpoints and WorkloadEntries. */
export function workloadIssues(w: WorkloadEntrySpec, resolution: ServiceEntryResolution | undefined, path: (string | number)[], portNames: ReadonlySet<string> | undefined, out: Issue[]): void {
  if (w.address) {
    const issue = endpointAddressIssue(w.address, resolution);
    if (issue) out.push({ path: [...path, 'address'], message: issue });
  }
  if (portNames) {
    for (const name of Object.keys(w.ports ?? {})) {
      if (!portNames.has(name)) out.push({ path: [...path, 'ports', name], message: `names no port of the ServiceEntry (ports: ${[...portNames].join(', ') || 'none'})` });
    }
  }
  if (w.locality) {
    const parts = w.locality.split('/');
    if (parts.length > 3 || parts.some((p) => p === '')) out.push({ path: [...path, 'locality'], message: `"${w.locality}" must be "region", "region/zone" or "region/zone/subzone"` });
  }
  if (w.serviceAccount && !DNS_LABEL.test(w.serviceAccount)) out.push({ path: [...path, 'serviceAccount'], message: `"${w.serviceAccount}" must be a service account name` });
}

/** Checks beyond the schema, as Istio's validation makes them. */
export function serviceEntryIssues(spec: ServiceEntrySpec): Issue[] {
  const out: Issue[] = [];
  const resolution = resolutionOf(spec);
  const wildcardHosts: number[] = [];
  spec.hosts.forEach((h, i) => {
    if (h === '*') out.push({ path: ['hosts', i], message: 'must not be "*": name the hosts (or "*.suffix")' });
    else if (h.length > 253 || !HOST.test(h)) out.push({ path: ['hosts', i], message: `"${h}" must be a DNS name or "*.suffix"` });
    else if (h.startsWith('*.')) wildcardHosts.push(i);
  });
  spec.addresses?.forEach((a, i) => {
    if (!isAddressOrCidr(a)) out.push({ path: ['addresses', i], message: `"${a}" must be an IP address or a CIDR block` });
  });
  const numbers = new Map<number, number>();
  const names = new Map<string, number>();
  spec.ports?.forEach((p, i) => {
    const first = numbers.get(p.number);
    if (first !== undefined) out.push({ path: ['ports', i, 'number'], message: `port ${p.number} is already defined by ports[${first}]` });
    else numbers.set(p.number, i);
    if (p.name) {
      const n = names.get(p.name);
      if (n !== undefined) out.push({ path: ['ports', i, 'name'], message: `"${p.name}" is already the name of ports[${n}]` });
      else names.set(p.name, i);
    }
  });
  const hasSelector = spec.workloadSelector !== undefined && spec.workloadSelector !== null;
  if (hasSelector && Object.keys(spec.workloadSelector?.labels ?? {}).length === 0) out.push({ path: ['workloadSelector', 'labels'], message: 'must have at least one label' });
  const endpoints = spec.endpoints ?? [];
  if (hasSelector && endpoints.length > 0) out.push({ path: ['endpoints'], message: 'must be empty with a workloadSelector (the selected workloads are the endpoints)' });
  if (resolution === 'NONE' && endpoints.length > 0) out.push({ path: ['endpoints'], message: 'must be empty with resolution NONE (traffic goes to the address the client asked for)' });
  if (resolution === 'STATIC' && endpoints.length === 0 && !hasSelector) out.push({ path: ['endpoints'], message: 'resolution STATIC needs endpoints (or a workloadSelector)' });
  if ((resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && endpoints.length === 0) {
    for (const i of wildcardHosts) out.push({ path: ['hosts', i], message: `"${spec.hosts[i]}": a wildcard host cannot be resolved by DNS; give endpoints or use resolution NONE` });
  }
  if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) out.push({ path: ['endpoints'], message: `resolution DNS_ROUND_ROBIN takes at most one endpoint, not ${endpoints.length}` });
  const portNames = new Set([...names.keys()]);
  endpoints.forEach((e, i) => {
    if (!e.address) out.push({ path: ['endpoints', i, 'address'], message: 'is required' });
    workloadIssues(e, resolution, ['endpoints', i], portNames, out);
  });
  spec.exportTo?.forEach((e, i) => {
    if (e !== '*' && e !== '.' && e !== '~' && !DNS_LABEL.test(e)) out.push({ path: ['exportTo', i], message: `"${e}" must be ".", "*" or a namespace name` });
  });
  return out;
}

/** Checks of a WorkloadEntry beyond the schema. */
export function workloadEntryIssues(spec: WorkloadEntrySpec): Issue[] {
  const out: Issue[] = [];
  if (!spec.address) out.push({ path: ['address'], message: 'is required (an IP address, a DNS name or unix://<path>)' });
  workloadIssues(spec, undefined, [], undefined, out);
  return out;
}
