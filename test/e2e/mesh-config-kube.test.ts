// The mesh config from a real kube-apiserver: ConfigMap `istio` (key `mesh`) in meshd's
// namespace, read with the manifests' RBAC, edited live, refused when invalid, and back to
// Istio's defaults when deleted. What arrives is checked in a real Envoy's config_dump.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startKube, type KubeCluster } from '../support/kube.js';
import { applyAll, readManifests, waitForCrds } from '../support/kube-objects.js';
import { startMeshd, MESHD_CLI, REPO_ROOT, type MeshdProcess } from '../support/meshd.js';
import { startEnvoy, type EnvoyProcess } from '../support/envoy.js';
import { freePort } from '../support/backends.js';

const CM_PATH = '/api/v1/namespaces/istio-system/configmaps/istio';

describe('mesh config from ConfigMap istio on a real apiserver', () => {
  let kube: KubeCluster;
  let meshd: MeshdProcess;
  let envoy: EnvoyProcess;
  let port: number;

  const configMap = (mesh: string): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: { mesh } });

  /** The access log path on the outbound listener's HTTP connection manager, from Envoy's config_dump. */
  async function accessLogPath(): Promise<string | undefined> {
    const dump = await envoy.configDump();
    for (const c of dump.configs as { dynamic_listeners?: { name: string; active_state?: { listener: Record<string, unknown> } }[] }[]) {
      for (const l of c.dynamic_listeners ?? []) {
        if (l.name !== `127.0.0.1_${port}`) continue;
        const hcm = (l.active_state!.listener.filter_chains as { filters: { typed_config: { access_log?: { typed_config: { path: string } }[] } }[] }[])[0]!.filters[0]!.typed_config;
        return hcm.access_log?.[0]?.typed_config.path;
      }
    }
    return undefined;
  }

  before(async () => {
    kube = await startKube();
    await applyAll(kube, readManifests(join(REPO_ROOT, 'manifests', 'base', 'crds.yaml'), join(REPO_ROOT, 'manifests', 'base', 'namespace.yaml'), join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml')));
    await waitForCrds(kube, ['gateways.networking.istio.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io', 'peerauthentications.security.istio.io']);
    port = await freePort();
    await kube.apply('/api/v1/namespaces/default/services/httpbin', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'httpbin', namespace: 'default' }, spec: { selector: { app: 'httpbin' }, ports: [{ name: 'http', port, targetPort: 80 }] } });
    await kube.apply(CM_PATH, configMap('accessLogFile: /tmp/meshd-kube-access.log\n'));
    // The token meshd uses has only the manifests' RBAC.
    meshd = await startMeshd({ extraArgs: ['--kubeconfig', kube.kubeconfig(kube.meshdToken)] });
    const bootstrap = execFileSync(process.execPath, [MESHD_CLI, 'bootstrap', '--xds-address', meshd.xdsAddress, '--pod', 'client-1', '--interception', 'NONE', '--admin-port', '0', '--readiness-port', '0', '--delta'], { encoding: 'utf8' });
    envoy = await startEnvoy({ bootstrap: parse(bootstrap) as object, name: 'meshcfg-kube' });
  });

  after(async () => {
    await envoy?.stop();
    await meshd?.stop();
    await kube?.stop();
  });

  it('reads the ConfigMap at start with the manifests\' RBAC', async () => {
    await envoy.waitFor(async () => (await accessLogPath()) === '/tmp/meshd-kube-access.log', { what: 'the access log from the ConfigMap', timeoutMs: 10_000 });
  });

  it('applies an edit live, refuses an invalid one naming the ConfigMap and field, and goes back to defaults when it is deleted', async () => {
    await kube.apply(CM_PATH, configMap('accessLogFile: /tmp/meshd-kube-edited.log\naccessLogEncoding: JSON\n'));
    await envoy.waitFor(async () => (await accessLogPath()) === '/tmp/meshd-kube-edited.log', { what: 'the edited access log path', timeoutMs: 10_000 });

    await kube.apply(CM_PATH, configMap('accessLogFile: /tmp/meshd-kube-bad.log\noutboundTrafficPolicy: {mode: ALLOWANY}\n'));
    await envoy.waitFor(() => meshd.records().some((r) => String(r.msg).startsWith('mesh config (ConfigMap istio-system/istio, key mesh): outboundTrafficPolicy.mode: "ALLOWANY" is not one of ALLOW_ANY, REGISTRY_ONLY')), { what: 'the refusal', timeoutMs: 10_000 });
    assert.equal(await accessLogPath(), '/tmp/meshd-kube-edited.log', 'the last good mesh config keeps serving');

    await kube.request('DELETE', CM_PATH);
    await envoy.waitFor(async () => (await accessLogPath()) === undefined, { what: "Istio's defaults (no access log)", timeoutMs: 10_000 });
  });
});
