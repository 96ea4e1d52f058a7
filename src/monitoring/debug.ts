// Debug views of the control plane's state, in the spirit of istiod's /debug endpoints.
import type { AdsServer } from '../xds/ads-server.js';
import type { ConfigGenerator } from '../xds/generator.js';
import { PUSH_ORDER, SHORT_TYPE } from '../translate/types.js';
import type { DebugHandler } from './http-server.js';
import type { ConfigStore } from '../model/store.js';
import type { MeshKind } from '../model/objects.js';
import { endpointKey } from '../model/mesh.js';
import { sentResources } from '../xds/proxy-dump.js';
import { MESHD_VERSION, replicaName } from '../util/version.js';
import { clientText } from '../util/client-text.js';

const CONFIG_KINDS: MeshKind[] = ['Gateway', 'VirtualService', 'DestinationRule', 'PeerAuthentication', 'AuthorizationPolicy', 'RequestAuthentication', 'Sidecar', 'ServiceEntry', 'WorkloadEntry', 'Telemetry', 'Service', 'EndpointSlice', 'Pod', 'Namespace', 'Secret'];

/** Istio's /debug/syncz names for the nonces of each type (istioctl's older readers use them). */
const ISTIO_SYNCZ_NAMES: Record<string, string> = { cds: 'cluster', lds: 'listener', rds: 'route', eds: 'endpoint' };

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
    // Per proxy: Istio's fields (proxy, cluster_id, istio_version, <type>_sent/_acked nonces),
    // the replica serving it (istiod), and meshd's per-type detail (types).
    syncz: (q) => {
      const ns = q.get('namespace');
      const istiod = replicaName();
      return {
        body: [...ads.connections]
          .filter((c) => !ns || c.ctx.proxy.namespace === ns)
          .sort((a, b) => (a.proxy.id < b.proxy.id ? -1 : 1))
          .map((c) => {
            const types = c.syncStatus() as Record<string, { sentNonce?: string; ackedNonce?: string }>;
            const nonces: Record<string, string> = {};
            for (const [short, t] of Object.entries(types)) {
              const istio = ISTIO_SYNCZ_NAMES[short];
              if (!istio) continue;
              if (t.sentNonce) nonces[`${istio}_sent`] = t.sentNonce;
              if (t.ackedNonce) nonces[`${istio}_acked`] = t.ackedNonce;
            }
            return {
              proxy: c.proxy.id,
              proxy_type: c.proxy.type,
              cluster_id: c.proxy.clusterId,
              namespace: c.ctx.proxy.namespace,
              istio_version: c.proxy.istioVersion,
              ...nonces,
              istiod,
              connection: c.id,
              protocol: c.protocol,
              connectedAt: new Date(c.connectedAt).toISOString(),
              types,
            };
          }),
      };
    },
    // This replica and its version (meshd version reads it from every replica).
    versionz: () => ({ body: { component: 'istiod', id: replicaName(), version: MESHD_VERSION, revision: 'meshd', proxies: ads.connections.size } }),
    config_dump: (q) => {
      const id = q.get('proxyID') ?? q.get('proxyId') ?? '';
      const conns = id ? ads.findConnections(id) : [];
      const conn = conns[0];
      if (!conn) return { status: 404, body: { error: id ? `no connected proxy "${clientText(id, 256)}"` : 'proxyID is required, e.g. /debug/config_dump?proxyID=sidecar~10.0.0.1~app-1.default~default.svc.cluster.local' } };
      const sent = sentResources(conn, generator);
      const configs: Record<string, unknown> = {};
      for (const type of PUSH_ORDER) {
        configs[SHORT_TYPE[type]] = (sent.get(type) ?? []).map((e) => ({ name: e.name, version: e.version, resource: { '@type': type, ...e.body } }));
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
