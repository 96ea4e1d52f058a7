// How proxy-status, proxy-config and version reach things: in a cluster through the API
// server as istioctl does (an Envoy's admin port by pods/<pod>:15000/proxy, each meshd replica
// by the pods of the istiod Deployment, pods/<pod>:15014/proxy), or directly with
// --admin-address and --meshd-address.
import { Command, Option } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeApiError, kubeRequest, loadKubeConfig, type KubeConnection } from '../kube/client.js';
import { boundedRequest, kubeRawRequest, type RawAnswer } from '../kube/proxy-request.js';

export const ENVOY_ADMIN_PORT = 15000;
export const MESHD_MONITORING_PORT = 15014;
/** istioctl's selector for control plane pods. */
export const ISTIOD_SELECTOR = 'app=istiod';

export interface AccessOptions {
  kubeconfig?: string;
  namespace?: string;
  istioNamespace: string;
  adminAddress?: string;
  meshdAddress?: string[];
}

/** Adds the reaching flags to a command. */
export function withAccessOptions(cmd: Command, o: { admin: boolean }): Command {
  cmd
    .addOption(new Option('--kubeconfig <file>', 'kubeconfig of the cluster').env('KUBECONFIG'))
    .addOption(new Option('-n, --namespace <ns>', 'namespace of the pod (default: the kubeconfig context\'s, else default)'))
    .addOption(new Option('-i, --istio-namespace <ns>', 'namespace of the control plane (the istiod pods)').default('istio-system'))
    .addOption(new Option('--meshd-address <host:port...>', 'reach meshd replicas directly at their monitoring address (repeatable), not through the API server'));
  if (o.admin) cmd.addOption(new Option('--admin-address <host:port>', 'reach the Envoy admin API directly, not through the API server'));
  return cmd;
}

export interface Replica {
  /** The replica's pod name, or the address it was reached at. */
  name: string;
  get(path: string): Promise<string>;
}

export interface PodRef {
  name: string;
  namespace: string;
}

function bounded(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function httpDirect(address: string, method: string, path: string): Promise<RawAnswer> {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address.trim());
  if (!m) return Promise.reject(new Error(`"${address}" is not host:port`));
  return boundedRequest({ host: m[1] ?? m[2], port: Number(m[3]), method, path }, false, `${method} http://${address}${path}`).catch((err: Error) => {
    throw new Error(`cannot reach ${address}: ${err.message}`, { cause: err });
  });
}

export class Access {
  private conn: KubeConnection | undefined;

  constructor(readonly o: AccessOptions) {}

  private kube(): KubeConnection {
    if (!this.conn) {
      const file = this.o.kubeconfig || join(homedir(), '.kube', 'config');
      try {
        this.conn = loadKubeConfig(file);
      } catch (err) {
        throw new Error(`cannot load kubeconfig ${file} (${(err as Error).message}); give --kubeconfig, or reach things directly with --admin-address / --meshd-address`, { cause: err });
      }
    }
    return this.conn;
  }

  /** The namespace for a pod given without one: -n, else the kubeconfig context's, else default. */
  defaultNamespace(): string {
    if (this.o.namespace) return this.o.namespace;
    if (this.o.adminAddress && !this.o.kubeconfig) return 'default';
    try {
      const kc = this.kube().config;
      return kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
    } catch {
      return 'default';
    }
  }

  /** `pod`, `pod.ns` or `pod/pod[.ns]` as istioctl reads them. */
  podRef(arg: string): PodRef {
    const bare = arg.startsWith('pod/') ? arg.slice(4) : arg;
    if (!bare || bare.includes('/')) throw new Error(`"${arg}" is not a pod: give <pod>[.<namespace>]`);
    const dot = bare.lastIndexOf('.');
    return dot > 0 ? { name: bare.slice(0, dot), namespace: bare.slice(dot + 1) } : { name: bare, namespace: this.defaultNamespace() };
  }

  /** Checks the pod exists and has an IP, with a clear error otherwise. */
  async checkPod(pod: PodRef): Promise<void> {
    if (this.o.adminAddress) return;
    const conn = this.kube();
    let p: { status?: { podIP?: string; phase?: string } };
    try {
      p = await kubeRequest(conn, 'GET', `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) {
        const others = await kubeRequest<{ items?: { metadata: { name: string } }[] }>(conn, 'GET', `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods?limit=10`).catch(() => ({ items: [] }));
        const names = (others.items ?? []).map((i) => i.metadata.name);
        throw new Error(`pod "${pod.name}" not found in namespace "${pod.namespace}"${names.length ? ` (pods there: ${names.join(', ')}${names.length === 10 ? ', ...' : ''})` : ' (no pods there)'}; give <pod>.<namespace> or -n <namespace>`, { cause: err });
      }
      throw err;
    }
    if (!p.status?.podIP) throw new Error(`pod ${pod.name}.${pod.namespace} has no IP yet (phase ${p.status?.phase ?? 'unknown'}): its Envoy cannot be reached`);
  }

  /** A request to the pod's Envoy admin API. */
  async envoy(pod: PodRef, path: string, method = 'GET'): Promise<string> {
    const where = this.o.adminAddress ? `Envoy admin at ${this.o.adminAddress}` : `Envoy admin of pod ${pod.name}.${pod.namespace} (port ${ENVOY_ADMIN_PORT}, through the API server)`;
    const r = this.o.adminAddress
      ? await httpDirect(this.o.adminAddress, method, `/${path}`)
      : await kubeRawRequest(this.kube(), method, `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}:${ENVOY_ADMIN_PORT}/proxy/${path}`);
    if (r.status < 200 || r.status >= 300) throw new Error(`${where}: ${method} /${path}: HTTP ${r.status}: ${bounded(r.body.trim())}`);
    return r.body;
  }

  /** Every meshd replica: --meshd-address, else the running pods of the istiod Deployment. */
  async replicas(): Promise<Replica[]> {
    if (this.o.meshdAddress?.length) {
      return this.o.meshdAddress.map((address) => ({ name: address, get: (path) => this.check(`meshd at ${address}`, path, httpDirect(address, 'GET', path)) }));
    }
    const conn = this.kube();
    const ns = this.o.istioNamespace;
    const pods = await kubeRequest<{ items?: { metadata: { name: string }; status?: { phase?: string; podIP?: string } }[] }>(
      conn,
      'GET',
      `/api/v1/namespaces/${encodeURIComponent(ns)}/pods?labelSelector=${encodeURIComponent(ISTIOD_SELECTOR)}&fieldSelector=${encodeURIComponent('status.phase=Running')}`,
    );
    const running = (pods.items ?? []).filter((p) => p.status?.podIP);
    if (running.length === 0) throw new Error(`no running meshd (istiod) pods in namespace "${ns}" (label ${ISTIOD_SELECTOR}); give -i <namespace>, or --meshd-address host:port`);
    return running
      .map((p) => p.metadata.name)
      .sort()
      .map((name) => ({
        name,
        get: (path: string) => this.check(`meshd pod ${name}.${ns}`, path, kubeRawRequest(conn, 'GET', `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}:${MESHD_MONITORING_PORT}/proxy${path}`)),
      }));
  }

  private async check(where: string, path: string, answer: Promise<RawAnswer>): Promise<string> {
    const r = await answer;
    if (r.status < 200 || r.status >= 300) throw new Error(`${where}: GET ${path}: HTTP ${r.status}: ${bounded(r.body.trim())}`);
    return r.body;
  }
}

export function accessFrom(opts: Record<string, unknown>): Access {
  return new Access({
    kubeconfig: opts.kubeconfig as string | undefined,
    namespace: opts.namespace as string | undefined,
    istioNamespace: (opts.istioNamespace as string | undefined) ?? 'istio-system',
    adminAddress: opts.adminAddress as string | undefined,
    meshdAddress: opts.meshdAddress as string[] | undefined,
  });
}

/** Parses JSON a program answered, naming it when it is not JSON. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what} is not JSON: ${bounded(text.trim(), 200)}`);
  }
}
