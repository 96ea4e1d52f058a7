// Every destination a VirtualService names (routes, mirrors, TCP and TLS routes), with the
// path of its field, so each check names exactly where the bad reference is.
import type { VirtualServiceObject } from '../objects.js';
import { formatFieldPath } from '../objects.js';

export interface NamedDestination {
  host: string;
  subset?: string | undefined;
  port?: number | undefined;
  /** `spec.http[0].route[1].destination` */
  field: string;
  /** A mirror, which istioctl reports as "mirror host" rather than "host". */
  mirror: boolean;
}

export function destinationsOf(vs: VirtualServiceObject): NamedDestination[] {
  const out: NamedDestination[] = [];
  const add = (d: { host: string; subset?: string | undefined; port?: { number: number } | undefined } | undefined, path: (string | number)[], mirror: boolean): void => {
    if (d) out.push({ host: d.host, subset: d.subset, port: d.port?.number, field: formatFieldPath(['spec', ...path]), mirror });
  };
  vs.spec.http?.forEach((r, i) => {
    r.route?.forEach((d, j) => add(d.destination, ['http', i, 'route', j, 'destination'], false));
    add(r.mirror, ['http', i, 'mirror'], true);
    r.mirrors?.forEach((m, j) => add(m.destination, ['http', i, 'mirrors', j, 'destination'], true));
  });
  for (const kind of ['tcp', 'tls'] as const) vs.spec[kind]?.forEach((r, i) => r.route?.forEach((d, j) => add(d.destination, [kind, i, 'route', j, 'destination'], false)));
  return out;
}

/** The Gateways a VirtualService binds to (`mesh` when it lists none). */
export function gatewaysOf(vs: VirtualServiceObject): string[] {
  return vs.spec.gateways?.length ? vs.spec.gateways : ['mesh'];
}
