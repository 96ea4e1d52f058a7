// ServiceEntries whose TCP ports have no addresses: every connection to such a port, to any
// host, is taken for the ServiceEntry (Istio's IST0134 ServiceEntryAddressesRequired, a
// warning; the ServiceEntry is served as written).
import type { ServiceEntryObject } from '../objects.js';
import { finding, type Finding } from '../finding.js';

/** Ports whose protocol is unset or TCP (Istio's test for this finding). */
function tcpPorts(se: ServiceEntryObject): number[] {
  const out: number[] = [];
  se.spec.ports?.forEach((p, i) => {
    if (!p.protocol || p.protocol.toUpperCase() === 'TCP') out.push(i);
  });
  return out;
}

/** `entries` sorted by namespace/name. */
export function serviceEntryFindings(entries: readonly ServiceEntryObject[]): Finding[] {
  const out: Finding[] = [];
  for (const se of entries) {
    if (se.spec.addresses?.length) continue;
    for (const i of tcpPorts(se)) {
      const p = se.spec.ports![i]!;
      out.push(finding('ServiceEntryAddressesRequired', se, `spec.ports[${i}]`, `ServiceEntry addresses are required for this protocol: port ${p.number} (protocol ${p.protocol ?? 'unset'}) without addresses takes every connection to that port, whatever the host.`));
    }
  }
  return out;
}
