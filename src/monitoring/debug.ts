// Debug views of the control plane's state, in the spirit of istiod's /debug endpoints.
import type { AdsServer } from '../xds/ads-server.js';
import type { ConfigGenerator } from '../xds/generator.js';
import { PUSH_ORDER, SHORT_TYPE } from '../translate/types.js';
import type { DebugHandler } from './http-server.js';
import type { ConfigStore } from '../model/store.js';
import type { MeshKind } from '../model/objects.js';
import { endpointKey } from '../model/mesh.js';

const CONFIG_KINDS: MeshKind[] = ['Gateway', 'VirtualService', 'DestinationRule', 'PeerAuthentication', 'Service', 'EndpointSlice', 'Pod', 'Namespace', 'Secret'];

/** Private keys never leave meshd through debug output. */
function redactKeys(body: Record<string, unknown>): Record<string, unknown> {
  const tls = body.tls_certificate as Record<string, unknown> | undefined;
  if (!tls?.private_key) return body;
  return { ...body, tls_certificate: { ...tls, private_key: { inline_string: '[redacted]' } } };
}

export function debugHandlers(ads: AdsServer, generator: ConfigGenerator, store: ConfigStore): Record<string, DebugHandler> {
  return {
    configz: (q) => {
      const kinds = q.get('kind') ? CONFIG_KINDS.filter((k) => k === q.get('kind')) : CONFIG_KINDS;
      const out: Record<string, unknown>[] = [];
      for (const kind of kinds) {
        for (const o of store.list(kind).sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`))) {
          // Secrets are listed by name and type only: their data is key material.
          out.push(o.kind === 'Secret' ? { kind, namespace: o.metadata.namespace, name: o.metadata.name, type: o.type, keys: Object.keys(o.data).sort() } : { ...o });
        }
      }
      return { body: out };
    },
    syncz: () => ({
      body: [...ads.connections]
        .sort((a, b) => (a.proxy.id < b.proxy.id ? -1 : 1))
        .map((c) => ({ proxy: c.proxy.id, connection: c.id, protocol: c.protocol, connectedAt: new Date(c.connectedAt).toISOString(), types: c.syncStatus() })),
    }),
    config_dump: (q) => {
      const id = q.get('proxyID') ?? q.get('proxyId') ?? '';
      const conns = id ? ads.findConnections(id) : [];
      const conn = conns[0];
      if (!conn) return { status: 404, body: { error: id ? `no connected proxy "${id}"` : 'proxyID is required, e.g. /debug/config_dump?proxyID=sidecar~10.0.0.1~app-1.default~default.svc.cluster.local' } };
      const view = generator.resourcesFor(conn.ctx);
      const configs: Record<string, unknown> = {};
      for (const type of PUSH_ORDER) {
        const sub = conn.watches.get(type)?.subscription;
        const sent = sub ? [...sub.heldNames()].sort() : [];
        const entries = sub?.wildcard ? [...view.byType[type].values()] : sent.map((n) => view.byType[type].get(n)).filter((e) => e !== undefined);
        configs[SHORT_TYPE[type]] = entries.map((e) => ({ name: e.name, version: e.version, resource: { '@type': type, ...redactKeys(e.body) } }));
      }
      return { body: { proxy: conn.proxy.id, class: conn.ctx.classKey, configs } };
    },
    registryz: () => {
      const s = generator.snapshot;
      return {
        body: (s?.services ?? []).map((svc) => ({
          hostname: svc.hostname,
          namespace: svc.namespace,
          name: svc.name,
          clusterIP: svc.clusterIP ?? null,
          ports: svc.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
          endpoints: Object.fromEntries(svc.ports.map((p) => [String(p.port), (s?.endpoints.get(endpointKey(svc.hostname, p.port)) ?? []).map((e) => `${e.address}:${e.port}`)])),
        })),
      };
    },
    connections: () => ({
      body: [...ads.connections].map((c) => ({ proxy: c.proxy.id, connection: c.id, protocol: c.protocol, class: c.ctx.classKey, type: c.proxy.type, namespace: c.proxy.namespace })),
    }),
    cachez: () => ({ body: { resources: generator.cache.size, encodes: generator.cache.encodes, hits: generator.cache.hits, held: generator.held() } }),
  };
}
