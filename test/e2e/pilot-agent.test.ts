// Istio's real sidecar agent against meshd: `pilot-agent proxy sidecar` (built from the Go
// module proxy by scripts/provision-pilot-agent.sh) runs in a network-namespace pod with
// Istio's capture, with a TokenRequest token from the real kube-apiserver and meshd's root.
// It must connect to meshd over delta ADS, get its workload certificate from meshd's CA API
// with that token, serve it to its Envoy over its own SDS, and its Envoy must become ready
// with no configuration rejected.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, readyEndpointSlice, waitForCrds } from '../support/kube-objects.js';
import { startMeshd, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { createPilotAgent, istioCaToken, meshdRootCert, type PilotAgent } from '../support/pilot-agent.js';
import { eventually, metricValue } from '../support/poll.js';

const NS = 'apps';
const SA = 'httpbin';
const POD = 'httpbin-agent-1';
const TRUST = 'cluster.local';
const SPIFFE = `spiffe://${TRUST}/ns/${NS}/sa/${SA}`;

interface SyncEntry {
  proxy: string;
  protocol: string;
  types: Record<string, { status?: string; lastNack?: { error: string } }>;
}

interface SecretDump {
  configs?: { '@type'?: string; name?: string; secret?: { name?: string; tls_certificate?: { certificate_chain?: { inline_bytes?: string; inline_string?: string } }; validation_context?: { trusted_ca?: { inline_bytes?: string; inline_string?: string } } } }[];
}

/** PEM text from an Envoy DataSource as config_dump shows it (inline_bytes are base64). */
function dataSourcePem(ds: { inline_bytes?: string; inline_string?: string } | undefined): string {
  if (ds?.inline_string !== undefined) return ds.inline_string;
  if (ds?.inline_bytes !== undefined) return Buffer.from(ds.inline_bytes, 'base64').toString('utf8');
  return '';
}

interface SdsConfig {
  ads?: unknown;
  api_config_source?: { grpc_services?: { envoy_grpc?: { cluster_name?: string } }[] };
}

/** Every `sds_config` object anywhere in a config_dump section. */
function sdsConfigs(v: unknown, out: SdsConfig[] = []): SdsConfig[] {
  if (Array.isArray(v)) for (const x of v) sdsConfigs(x, out);
  else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'sds_config' && x !== null && typeof x === 'object') out.push(x as SdsConfig);
      else sdsConfigs(x, out);
    }
  }
  return out;
}

/** Names of the SDS secrets that transport sockets refer to. */
function secretNames(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) secretNames(x, out);
  else if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (o.sds_config !== undefined && typeof o.name === 'string') out.push(o.name);
    for (const x of Object.values(o)) secretNames(x, out);
  }
  return out;
}

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

describe('Istio\'s pilot-agent against meshd', { timeout: 240_000 }, () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let agent: PilotAgent;
  let rootPem: string;
  let issuedBefore = 0;

  const syncz = async (): Promise<SyncEntry[]> => JSON.parse((await meshd.monitoring('/debug/syncz')).body) as SyncEntry[];
  const metrics = async (): Promise<string> => (await meshd.monitoring('/metrics')).body;
  const withLogs = (err: unknown): never => {
    throw new Error(`${String(err)}\n--- pilot-agent:\n${agent?.logs(80) ?? ''}\n--- meshd:\n${meshd?.logs().slice(-4000) ?? ''}`);
  };

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io']);
    await kube.createNamespace(NS);
    await kube.request('POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SA } });

    // meshd listens on every address: the agent reaches it from its pod through the host end of the veth.
    meshd = await startMeshd({ extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken), '--grpc-addr', '0.0.0.0:0'] });
    rootPem = await meshdRootCert(meshd);
    issuedBefore = metricValue(await metrics(), 'citadel_server_success_cert_issuance_count');

    agent = await createPilotAgent({
      name: 'agent',
      podName: POD,
      namespace: NS,
      serviceAccount: SA,
      labels: { app: 'httpbin', 'security.istio.io/tlsMode': 'istio' },
      controlPlanePort: meshd.grpcPort,
      rootCertPem: rootPem,
      token: await istioCaToken(kube, NS, SA),
    });
    // The Pod as the apiserver knows it (no kubelet runs: the test writes its status).
    await kube.request('POST', `/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: POD, labels: { app: 'httpbin', 'security.istio.io/tlsMode': 'istio' } },
      spec: { serviceAccountName: SA, containers: [{ name: 'app', image: 'httpbin' }, { name: 'istio-proxy', image: 'proxyv2' }] },
    });
    await kube.request('PATCH', `/api/v1/namespaces/${NS}/pods/${POD}/status`, { status: { phase: 'Running', podIP: agent.podIp, podIPs: [{ ip: agent.podIp }], conditions: [{ type: 'Ready', status: 'True' }] } });

    // A Service selecting the pod: its Envoy gets inbound mTLS chains and an auto-mTLS outbound cluster.
    await kube.request('POST', `/api/v1/namespaces/${NS}/services`, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port: 8000, targetPort: 8080 }] } });
    await kube.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, readyEndpointSlice({ name: 'httpbin-abc', service: 'httpbin', ports: [{ name: 'http', port: 8080 }], pods: [{ ip: agent.podIp, name: POD, namespace: NS }] }));

    await agent.start();
    await agent.waitReady(90_000).catch(withLogs);
  });

  after(async () => {
    // MESHD_PILOT_AGENT_DUMP=<file>: Envoy's config_dump there, and both logs beside it.
    const dumpFile = process.env.MESHD_PILOT_AGENT_DUMP;
    if (dumpFile) {
      writeFileSync(`${dumpFile}.agent.log`, agent?.logs(5000) ?? '');
      writeFileSync(`${dumpFile}.meshd.log`, meshd?.logs() ?? '');
      if (meshd !== undefined) writeFileSync(`${dumpFile}.syncz.json`, JSON.stringify(await syncz().catch((e: unknown) => String(e)), null, 2));
    }
    await agent?.destroy();
    await meshd?.stop();
    await kube?.stop();
  });

  it('connects to meshd over delta ADS', async () => {
    const entry = await eventually('the agent\'s proxy in /debug/syncz', async () => (await syncz()).find((e) => e.proxy === agent.nodeId), 10_000).catch(withLogs);
    assert.equal(entry.protocol, 'delta', JSON.stringify(entry));
    const nacks = Object.entries(entry.types).filter(([, t]) => t.lastNack !== undefined);
    assert.deepEqual(nacks, [], `meshd recorded no NACK from the agent's Envoy: ${JSON.stringify(nacks)}`);
  });

  it('gets its workload certificate from meshd\'s CA with its token', async () => {
    const text = await metrics();
    assert.ok(metricValue(text, 'citadel_server_success_cert_issuance_count') > issuedBefore, `citadel_server_success_cert_issuance_count rose above ${issuedBefore}`);
    assert.equal(metricValue(text, 'citadel_server_authentication_failure_count'), 0, 'no CA request failed authentication');
  });

  it('its Envoy is ready (the agent\'s /healthz/ready and Envoy\'s /ready)', async () => {
    assert.equal((await agent.readiness()).status, 200);
    assert.equal((await agent.admin('/ready')).trim(), 'LIVE');
  });

  it('its Envoy rejected no update', async () => {
    const stats = await agent.stats('update_rejected');
    const rejected = [...stats].filter(([k, v]) => k.endsWith('update_rejected') && v !== 0);
    assert.ok(stats.size > 0, 'Envoy reports update_rejected counters');
    assert.deepEqual(rejected, [], `update_rejected counters: ${JSON.stringify(rejected)}\n${agent.logs(40)}`);
    const lds = await agent.stats('listener_manager.lds.update_success');
    const cds = await agent.stats('cluster_manager.cds.update_success');
    assert.ok((lds.get('listener_manager.lds.update_success') ?? 0) > 0 && (cds.get('cluster_manager.cds.update_success') ?? 0) > 0, 'Envoy accepted listeners and clusters');
  });

  it("its Envoy takes its virtual hosts over VHDS, through the agent's xDS proxy", async () => {
    // Route `8000` names VHDS; httpbin's virtual host comes as VirtualHost `8000/httpbin.apps.svc.cluster.local:8000`
    // (Istio's bootstrap keeps Envoy's vhds stats out: its config dump shows it).
    const route = await eventually(
      "route 8000 with httpbin's VHDS virtual host in Envoy's config_dump",
      async () => {
        // With `resource=`, each entry of `configs` is one DynamicRouteConfig.
        const d = await agent.adminJson<{ configs: { route_config?: { name: string; vhds?: unknown; virtual_hosts?: { name: string }[] } }[] }>('/config_dump?resource=dynamic_route_configs');
        const rc = d.configs.map((c) => c.route_config).find((r) => r?.name === '8000');
        return rc?.virtual_hosts?.some((v) => v.name === `8000/httpbin.${NS}.svc.cluster.local:8000`) ? rc : undefined;
      },
      10_000,
    ).catch(withLogs);
    assert.ok(route.vhds, 'route 8000 names VHDS');
    const entry = (await syncz()).find((e) => e.proxy === agent.nodeId)!;
    assert.equal(entry.types.vhds?.status, 'SYNCED', JSON.stringify(entry.types));
  });

  it('its Envoy holds the secret `default`, issued by meshd\'s root for the token\'s identity', async () => {
    const dump = await eventually(
      'the active secret `default` in Envoy\'s config_dump',
      async () => {
        const d = await agent.adminJson<SecretDump>('/config_dump?resource=dynamic_active_secrets');
        return d.configs?.some((c) => c.name === 'default') ? d : undefined;
      },
      20_000,
    ).catch(async (err: unknown) => {
      const secrets = await agent.admin('/config_dump?resource=dynamic_warming_secrets').catch((e: unknown) => String(e));
      const sds = await agent.stats('sds').catch(() => new Map());
      throw new Error(`${String(err)}\nwarming secrets: ${secrets.slice(0, 2000)}\nsds stats: ${JSON.stringify([...sds].filter(([, v]) => v !== 0))}\n${agent.logs(40)}`);
    });
    const secret = dump.configs!.find((c) => c.name === 'default')!.secret;
    const chain = pemBlocks(dataSourcePem(secret?.tls_certificate?.certificate_chain));
    assert.ok(chain.length > 0, `a certificate chain in the secret: ${JSON.stringify(secret).slice(0, 500)}`);
    const leaf = new X509Certificate(chain[0]!);
    const root = new X509Certificate(rootPem);
    assert.equal(leaf.subjectAltName, `URI:${SPIFFE}`, 'the certificate names the token\'s identity');
    const issuer = chain.length > 1 ? new X509Certificate(chain[1]!) : root;
    assert.ok(leaf.verify(issuer.publicKey), 'the leaf is signed by the next certificate of its chain');
    assert.ok(chain.some((c) => new X509Certificate(c).fingerprint256 === root.fingerprint256) || leaf.verify(root.publicKey), 'the chain ends at meshd\'s root');

    const rootSecret = dump.configs!.find((c) => c.name === 'ROOTCA')?.secret;
    if (rootSecret !== undefined) {
      const cas = pemBlocks(dataSourcePem(rootSecret.validation_context?.trusted_ca));
      assert.ok(cas.some((c) => new X509Certificate(c).fingerprint256 === root.fingerprint256), 'ROOTCA is meshd\'s root');
    }
  });

  it('the agent\'s Envoy gets its secrets from the agent (sds-grpc), not from meshd over ADS', async () => {
    const dump = await agent.adminJson<{ configs: unknown[] }>('/config_dump');
    if (process.env.MESHD_PILOT_AGENT_DUMP) writeFileSync(process.env.MESHD_PILOT_AGENT_DUMP, JSON.stringify(dump, null, 2));
    const bootstrapClusters = dump.configs.flatMap((c) => (c as { bootstrap?: { static_resources?: { clusters?: { name: string }[] } } }).bootstrap?.static_resources?.clusters ?? []).map((c) => c.name);
    assert.ok(bootstrapClusters.includes('sds-grpc'), `the bootstrap has the agent's sds-grpc cluster: ${JSON.stringify(bootstrapClusters)}`);
    // Every SDS reference in what meshd sent (listeners' and clusters' transport sockets).
    const sources = new Map<string, number>();
    for (const c of dump.configs) {
      if ((c as { bootstrap?: unknown }).bootstrap !== undefined) continue;
      for (const sds of sdsConfigs(c)) {
        const key = sds.ads !== undefined ? 'ads' : (sds.api_config_source?.grpc_services?.[0]?.envoy_grpc?.cluster_name ?? JSON.stringify(sds));
        sources.set(key, (sources.get(key) ?? 0) + 1);
      }
    }
    const names = new Set(secretNames(dump.configs.filter((c) => (c as { bootstrap?: unknown }).bootstrap === undefined)));
    assert.deepEqual([...names].sort(), ['ROOTCA', 'default'], 'the transport sockets name only the secrets the agent serves');
    assert.ok(sources.size > 0, 'meshd sent transport sockets that use SDS (mTLS with auto mTLS / PERMISSIVE inbound)');
    assert.deepEqual([...sources.keys()], ['sds-grpc'], `SDS sources in the dynamic config: ${JSON.stringify(Object.fromEntries(sources))}`);
    // Istio's bootstrap names the cluster's stats `sds-grpc;` (alt_stat_name).
    const sds = await agent.stats('sds');
    assert.ok((sds.get('cluster.sds-grpc;.upstream_cx_total') ?? 0) > 0, `Envoy connected to the agent's SDS: ${JSON.stringify([...sds])}`);
    assert.ok((sds.get('sds.default.update_success') ?? 0) > 0, 'and took `default` from it');
  });
});
