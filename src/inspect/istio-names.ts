// Istio's naming conventions as istioctl reads them back from Envoy config: cluster names
// (`outbound|<port>|<subset>|<fqdn>`), the `istio` filter metadata that names the Istio
// object behind a resource.
import { obj, str, type Json } from './config-dump.js';

export interface SubsetKey {
  direction: string;
  port: number;
  subset: string;
  fqdn: string;
}

/** Splits `outbound|9080|v1|reviews.default.svc.cluster.local` (or the `outbound_.9080_.v1_.host` SNI form). */
export function parseSubsetKey(name: string): SubsetKey | undefined {
  const sep = name.startsWith('outbound_') || name.startsWith('inbound_') ? '_.' : '|';
  const parts = name.split(sep);
  if (parts.length < 4) return undefined;
  const [direction, port, subset, ...rest] = parts;
  return { direction: direction!, port: Number.parseInt(port!, 10) || 0, subset: subset!, fqdn: rest.join(sep) };
}

/** For a sort: the key of a name that is not a subset key is the name as FQDN. */
export function sortKey(name: string): SubsetKey {
  return name.split('|').length > 3 ? (parseSubsetKey(name) ?? { direction: '', port: 0, subset: '', fqdn: name }) : { direction: '', port: 0, subset: '', fqdn: name };
}

export function compareSubsetKeys(a: SubsetKey, b: SubsetKey): number {
  if (a.fqdn !== b.fqdn) return a.fqdn < b.fqdn ? -1 : 1;
  if (a.subset !== b.subset) return a.subset < b.subset ? -1 : 1;
  if (a.port !== b.port) return a.port - b.port;
  return a.direction < b.direction ? -1 : a.direction > b.direction ? 1 : 0;
}

/**
 * The Istio object a resource came from, from its `metadata.filter_metadata.istio.config`
 * (`/apis/networking.istio.io/v1/namespaces/<ns>/<kind>/<name>` → `<name>.<ns>`).
 */
export function describeManagement(metadata: unknown): string {
  const config = obj(obj(obj(metadata).filter_metadata).istio).config;
  if (config === undefined) return '';
  const path = str(config);
  if (!path.startsWith('/apis/networking.istio.io/')) return '<unknown>';
  const pieces = path.split('/');
  return pieces.length === 8 ? `${pieces[7]}.${pieces[5]}` : '';
}

export type { Json };
