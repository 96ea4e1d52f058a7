// Gateway servers on one gateway proxy: which Gateway keeps each listening port and host.
// Two Gateways claiming one listening port and host: the first by namespace/name keeps it;
// a listening port carries one protocol family, the first server's. The translator takes
// the servers this decides for each proxy; the validation stage reports the losers.
import type { GatewayObject } from '../objects.js';
import type { GatewaySpec } from '../istio.js';
import { finding, type Finding } from '../finding.js';
import { labelsKey, selectorMatches, type Labels } from '../labels.js';
import { gatewayListenPort } from '../gateway-ports.js';
import type { MeshService } from '../service.js';

export type GatewayServerSpec = GatewaySpec['servers'][number];

export const HTTP_PROTOCOLS: ReadonlySet<string> = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

export interface ClaimedServer {
  gateway: GatewayObject;
  /** "ns/name" */
  ref: string;
  /** The server, with only the hosts this Gateway keeps. */
  server: GatewayServerSpec;
  index: number;
  /** The port the proxy listens on for this server: the gateway Service's targetPort for `server.port.number`, else that number. */
  listenPort: number;
}

/** A server (or one host of it) that another Gateway keeps on the same proxy. */
export interface GatewayConflict {
  gateway: GatewayObject;
  /** "ns/name" of the Gateway that keeps the port (and host). */
  winner: string;
  /** The server's index in spec.servers. */
  index: number;
  /** The Gateway server's port number, as written. */
  port: number;
  /** The host lost, with its index in the server's hosts; absent for a protocol conflict. */
  host?: { name: string; index: number };
  /** For a protocol conflict: this server's protocol, which the listening port does not carry. */
  protocol?: string;
}

/** The protocol family a listening port carries: HTTP, terminated HTTPS, or the protocol itself. */
function family(server: GatewayServerSpec): string {
  const protocol = server.port.protocol.toUpperCase();
  return HTTP_PROTOCOLS.has(protocol) ? 'HTTP' : protocol === 'HTTPS' || (protocol === 'TLS' && server.tls?.mode !== 'PASSTHROUGH') ? 'HTTPS' : protocol;
}

/**
 * The servers a gateway proxy (namespace, labels) serves, by listening port (sorted), and the
 * conflicts lost. `gateways` sorted by namespace/name; those whose selector does not match
 * the proxy's labels are passed over.
 */
export function claimGatewayServers(gateways: readonly GatewayObject[], services: readonly MeshService[], proxy: { namespace: string; labels: Labels }): { byPort: Map<number, ClaimedServer[]>; conflicts: GatewayConflict[] } {
  const byPort = new Map<number, ClaimedServer[]>();
  const conflicts: GatewayConflict[] = [];
  const owners = new Map<string, string>();
  /** Per listening port: its protocol family and the first Gateway that set it. */
  const portFamily = new Map<number, { family: string; ref: string }>();
  for (const gw of gateways) {
    if (!selectorMatches(gw.spec.selector, proxy.labels)) continue;
    const ref = `${gw.metadata.namespace}/${gw.metadata.name}`;
    gw.spec.servers.forEach((server, index) => {
      const listenPort = gatewayListenPort({ services }, proxy, server.port.number);
      const existing = portFamily.get(listenPort);
      if (existing && existing.family !== family(server)) {
        conflicts.push({ gateway: gw, winner: existing.ref, index, port: server.port.number, protocol: server.port.protocol.toUpperCase() });
        return;
      }
      const hosts = server.hosts.filter((h, hostIndex) => {
        const key = `${listenPort}/${h}`;
        const owner = owners.get(key);
        if (owner && owner !== ref) {
          conflicts.push({ gateway: gw, winner: owner, index, port: server.port.number, host: { name: h, index: hostIndex } });
          return false;
        }
        owners.set(key, ref);
        return true;
      });
      if (hosts.length === 0) return;
      if (!existing) portFamily.set(listenPort, { family: family(server), ref });
      let list = byPort.get(listenPort);
      if (!list) byPort.set(listenPort, (list = []));
      list.push({ gateway: gw, ref, server: { ...server, hosts }, index, listenPort });
    });
  }
  return { byPort: new Map([...byPort.entries()].sort((a, b) => a[0] - b[0])), conflicts };
}

/**
 * IST0145 ConflictingGateways, an Error (the server, or that host of it, is ignored): for each
 * distinct selector, the conflicts on a proxy with exactly those labels, in the Gateway's namespace.
 */
export function gatewayConflictFindings(gateways: readonly GatewayObject[], services: readonly MeshService[]): Finding[] {
  const out = new Map<string, Finding>();
  for (const gw of gateways) {
    const labels = gw.spec.selector ?? {};
    for (const c of claimGatewayServers(gateways, services, { namespace: gw.metadata.namespace, labels }).conflicts) {
      const selector = labelsKey(c.gateway.spec.selector ?? {});
      const f = c.host
        ? finding(
            'ConflictingGateways',
            c.gateway,
            `spec.servers[${c.index}].hosts[${c.host.index}]`,
            `Conflict with gateway ${c.winner} (workload selector ${selector}, port ${c.port}, host ${c.host.name}): ${c.winner} comes first by namespace/name and keeps this port and host, so this server is ignored for it.`,
          )
        : finding(
            'ConflictingGateways',
            c.gateway,
            `spec.servers[${c.index}].port.protocol`,
            `Conflict with gateway ${c.winner} (workload selector ${selector}, port ${c.port}): it serves another protocol than ${c.protocol} on the same listening port, so this server is ignored.`,
          );
      out.set(`${f.namespace}/${f.name}|${f.field}|${f.message}`, f);
    }
  }
  return [...out.values()];
}
