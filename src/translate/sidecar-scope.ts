// What a sidecar proxy sees under its Sidecar resource (model/sidecar.ts): the service ports
// it imports and its outbound traffic policy. Proxies without a Sidecar see every service.
// ServiceEntry hosts are services of the ServiceEntry's namespace (model/service-entries.ts).
import { createHash } from 'node:crypto';
import type { MeshService, MeshSnapshot } from '../model/mesh.js';
import type { Proxy } from '../model/proxy.js';
import type { OutboundTrafficMode } from '../model/mesh-config.js';
import type { SidecarObject } from '../model/objects.js';
import { importsServicePort, sidecarFor, sidecarImports } from '../model/sidecar.js';
import { rootNamespaceOf } from './istio-config.js';
import { portProtocol, type Protocol } from '../model/protocol.js';

/** One ingress listener: the port traffic arrives on, its protocol, and where it goes. */
export interface SidecarIngress {
  port: number;
  protocol: Protocol;
  /** `127.0.0.1:<port>`, `[::1]:<port>`, `0.0.0.0:<port>`, `[::]:<port>` or `unix://<path>`; unset: the original destination. */
  defaultEndpoint: string | undefined;
}

export interface SidecarScope {
  /** The Sidecar applied, `namespace/name`. */
  readonly sidecar: string;
  /** The imported service ports, as `<hostname>|<port>`. */
  readonly imported: ReadonlySet<string>;
  /** The Sidecar's outboundTrafficPolicy mode, when it sets one (it overrides the mesh config's). */
  readonly outboundMode: OutboundTrafficMode | undefined;
  /** The Sidecar's ingress listeners, when it has any: they replace the ports of the services selecting the workload. */
  readonly ingress: readonly SidecarIngress[];
  /** A digest of what is imported and the mode: proxies with equal keys get the same outbound config. */
  readonly key: string;
}

/**
 * Scopes computed once per service list, Sidecar object and proxy namespace: every proxy a
 * Sidecar applies to in one namespace shares it (matching each service against the Sidecar's
 * hosts for each of a thousand proxies was most of a push's CPU).
 */
const scopes = new WeakMap<readonly MeshService[], WeakMap<SidecarObject, Map<string, SidecarScope>>>();

/** The scope of a sidecar proxy, or undefined when no Sidecar applies to it (or it is not a sidecar). */
export function sidecarScope(snapshot: MeshSnapshot, proxy: Proxy): SidecarScope | undefined {
  if (proxy.type !== 'sidecar') return undefined;
  const sidecars = snapshot.config.sidecars ?? [];
  if (sidecars.length === 0) return undefined;
  const sc = sidecarFor(sidecars, proxy.namespace, proxy.labels, rootNamespaceOf(snapshot.config));
  if (!sc) return undefined;
  let bySidecar = scopes.get(snapshot.services);
  if (!bySidecar) scopes.set(snapshot.services, (bySidecar = new WeakMap()));
  let byNamespace = bySidecar.get(sc);
  if (!byNamespace) bySidecar.set(sc, (byNamespace = new Map()));
  let scope = byNamespace.get(proxy.namespace);
  if (!scope) byNamespace.set(proxy.namespace, (scope = computeScope(snapshot, sc, proxy.namespace)));
  return scope;
}

function computeScope(snapshot: MeshSnapshot, sc: SidecarObject, proxyNamespace: string): SidecarScope {
  const imports = sidecarImports(sc, proxyNamespace);
  const imported = new Set<string>();
  for (const svc of snapshot.services) for (const p of svc.ports) if (importsServicePort(imports, svc, p.port)) imported.add(`${svc.hostname}|${p.port}`);
  const digest = createHash('sha256');
  for (const k of imported) digest.update(k).update('\n');
  const outboundMode = imports.outboundMode;
  const ingress = (sc.spec.ingress ?? [])
    .map((g): SidecarIngress => ({ port: g.port.number, protocol: portProtocol({ appProtocol: g.port.protocol ?? undefined, name: g.port.name ?? '' }), defaultEndpoint: g.defaultEndpoint || undefined }))
    .sort((a, b) => a.port - b.port);
  return { sidecar: `${sc.metadata.namespace}/${sc.metadata.name}`, imported, outboundMode, ingress, key: `${outboundMode ?? ''}:${digest.digest('base64url').slice(0, 22)}` };
}

/** Whether a proxy with this scope sees port `port` of `svc` (always, without a Sidecar). */
export function seesServicePort(scope: SidecarScope | undefined, svc: MeshService, port: number): boolean {
  return scope === undefined || scope.imported.has(`${svc.hostname}|${port}`);
}
