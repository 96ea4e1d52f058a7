// Turns one proxy's translated resources into a self-contained Envoy bootstrap, so
// that `envoy --mode validate` checks exactly what meshd would send: RDS references
// are replaced by the route configurations they name, EDS clusters by static ones
// carrying their ClusterLoadAssignment.
import { TypeUrl, type EnvoyResource } from '../../src/translate/types.js';
import type { ResourcesByType } from '../../src/translate/index.js';
import { ROOT_CA_SECRET, WORKLOAD_SECRET, rootCaSecret, workloadSecret } from '../../src/translate/mtls.js';
import { routeOfVirtualHost } from '../../src/translate/virtual-hosts.js';
import { selfSignedCertificate } from './tls.js';

type Json = Record<string, unknown>;

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function inlineRds(hcm: Json, routes: Map<string, Json>): Json {
  const rds = hcm.rds as { route_config_name?: string } | undefined;
  if (!rds) return hcm;
  const { rds: _rds, ...rest } = hcm;
  const name = rds.route_config_name ?? '';
  const rc = routes.get(name);
  if (!rc) throw new Error(`listener refers to route configuration "${name}", which the translation does not contain`);
  return { ...rest, route_config: rc };
}

function inlineListener(l: Json, routes: Map<string, Json>): Json {
  const chains = (l.filter_chains as Json[] | undefined)?.map((c) => ({
    ...c,
    filters: (c.filters as Json[] | undefined)?.map((f) => {
      const tc = f.typed_config as Json | undefined;
      return tc?.['@type'] === HCM_TYPE ? { ...f, typed_config: inlineRds(tc, routes) } : f;
    }),
  }));
  return chains ? { ...l, filter_chains: chains } : l;
}

function staticCluster(c: Json, endpoints: Map<string, Json>): Json {
  if (c.type !== 'EDS') return c;
  const { eds_cluster_config, ...rest } = c;
  const serviceName = (eds_cluster_config as { service_name?: string } | undefined)?.service_name ?? String(c.name);
  const cla = endpoints.get(serviceName) ?? { cluster_name: serviceName, endpoints: [] };
  return { ...rest, type: 'STATIC', load_assignment: cla };
}

/** SDS references to meshd become references to the bootstrap's static secrets. */
function staticSds(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(staticSds);
  if (value === null || typeof value !== 'object') return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value as Json)) if (k !== 'sds_config') out[k] = staticSds(v);
  return out;
}

/** Stand-ins for the SDS secrets meshd sends per workload identity (one self-signed certificate). */
let workloadSecrets: Json[] | undefined;
function meshSecrets(): Json[] {
  if (!workloadSecrets) {
    const { certPem, keyPem } = selfSignedCertificate('workload.example');
    workloadSecrets = [workloadSecret([certPem], keyPem).body, rootCaSecret(certPem).body];
  }
  return workloadSecrets;
}

/**
 * Route configurations as Envoy builds them from RDS and VHDS: the VHDS virtual hosts of
 * each (`<route configuration>/<virtual host>`) after its inline ones, and no `vhds` (a
 * static route configuration takes none).
 */
function mergedRoutes(res: ResourcesByType): Map<string, Json> {
  const vhosts = new Map<string, Json[]>();
  for (const vh of res[TypeUrl.VirtualHost] ?? []) {
    const route = routeOfVirtualHost(vh.name);
    if (!vhosts.has(route)) vhosts.set(route, []);
    vhosts.get(route)!.push(vh.body);
  }
  return new Map(
    res[TypeUrl.RouteConfiguration].map((r: EnvoyResource) => {
      if (!r.body.vhds) return [r.name, r.body];
      const { vhds: _vhds, ...rest } = r.body;
      return [r.name, { ...rest, virtual_hosts: [...((r.body.virtual_hosts as Json[] | undefined) ?? []), ...(vhosts.get(r.name) ?? [])] }];
    }),
  );
}

/** A bootstrap with everything inline. API listeners (proxyless gRPC) are checked through a plain listener per route configuration. */
export function staticBootstrap(res: ResourcesByType): Json {
  const routes = mergedRoutes(res);
  const endpoints = new Map(res[TypeUrl.ClusterLoadAssignment].map((r: EnvoyResource) => [r.name, r.body]));
  const listeners: Json[] = [];
  let port = 20000;
  for (const l of res[TypeUrl.Listener]) {
    if (l.body.api_listener) {
      const hcm = (l.body.api_listener as { api_listener: Json }).api_listener;
      listeners.push({
        name: `api-${l.name}`,
        address: { socket_address: { address: '127.0.0.1', port_value: port++ } },
        filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: inlineRds(hcm, routes) }] }],
      });
    } else listeners.push(staticSds(inlineListener(l.body, routes)) as Json);
  }
  const clusters = res[TypeUrl.Cluster].map((c) => staticSds(staticCluster(c.body, endpoints)) as Json);
  const text = JSON.stringify([listeners, clusters]);
  const secrets = [...res[TypeUrl.Secret].map((s) => s.body), ...(text.includes(`"${WORKLOAD_SECRET}"`) || text.includes(`"${ROOT_CA_SECRET}"`) ? meshSecrets() : [])];
  return {
    node: { id: 'sidecar~127.0.0.1~validate.default~default.svc.cluster.local', cluster: 'validate' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners,
      clusters,
      ...(secrets.length ? { secrets } : {}),
    },
  };
}
