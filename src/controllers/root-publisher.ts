// Publishes the mesh's root certificate as ConfigMap `istio-ca-root-cert` (key
// `root-cert.pem`) in every namespace, as istiod does, so workloads can verify meshd and
// each other. Namespaces come from the store (the kube source's Namespace informer);
// the ConfigMaps themselves are watched (by name only, as RBAC allows), so one deleted or
// edited by hand is put back.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ConfigStore } from '../model/store.js';
import { KubeApiError, kubeRequest, type KubeConnection } from '../kube/client.js';
import { ResilientInformer, DEFAULT_BACKOFF, type BackoffPolicy } from '../kube/resilient-informer.js';
import type { Logger } from '../util/log.js';

export const ROOT_CERT_CONFIGMAP = 'istio-ca-root-cert';
export const ROOT_CERT_KEY = 'root-cert.pem';
/** Namespaces Istio leaves alone. */
export const EXCLUDED_NAMESPACES: ReadonlySet<string> = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']);

interface ConfigMap extends KubernetesObject {
  data?: Record<string, string>;
}

export interface RootPublisherOptions {
  conn: KubeConnection;
  store: ConfigStore;
  rootCertPem: string;
  log: Logger;
  backoff?: BackoffPolicy;
  /** ConfigMap writes in flight at once; default 4. */
  concurrency?: number;
}

export class RootPublisher {
  private readonly current = new Map<string, ConfigMap>();
  private readonly pending = new Set<string>();
  private readonly retries = new Map<string, { attempt: number; timer?: NodeJS.Timeout }>();
  private informer: ResilientInformer<ConfigMap> | undefined;
  private unsubscribe: (() => void) | undefined;
  private synced = false;
  private running = 0;
  private stopped = false;
  /** ConfigMaps created or updated (for tests and logs). */
  writes = 0;

  constructor(private readonly o: RootPublisherOptions) {}

  start(): void {
    this.unsubscribe = this.o.store.onChange((changes) => {
      for (const c of changes) if (c.kind === 'Namespace' && c.op === 'add') this.enqueue(c.name);
    });
    this.informer = new ResilientInformer<ConfigMap>(
      this.o.conn,
      `/api/v1/configmaps?fieldSelector=${encodeURIComponent(`metadata.name=${ROOT_CERT_CONFIGMAP}`)}`,
      'v1',
      'ConfigMap',
      {
        upsert: (cm) => {
          const ns = cm.metadata?.namespace ?? '';
          this.current.set(ns, cm);
          if (cm.data?.[ROOT_CERT_KEY] !== this.o.rootCertPem) this.enqueue(ns);
        },
        remove: (cm) => {
          const ns = cm.metadata?.namespace ?? '';
          this.current.delete(ns);
          this.enqueue(ns);
        },
        resync: (list) => {
          this.current.clear();
          for (const cm of list) this.current.set(cm.metadata?.namespace ?? '', cm);
          this.synced = true;
          for (const ns of this.o.store.list('Namespace')) this.enqueue(ns.metadata.name);
        },
      },
      this.o.log.child({ informer: 'ConfigMap/' + ROOT_CERT_CONFIGMAP }),
      this.o.backoff,
    );
    this.informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    for (const r of this.retries.values()) if (r.timer) clearTimeout(r.timer);
    await this.informer?.stop();
  }

  /** Resolves once the ConfigMaps have been listed. */
  async listed(): Promise<void> {
    await this.informer?.synced();
  }

  /** True when every known namespace holds the current root. */
  get upToDate(): boolean {
    return this.o.store.list('Namespace').every((n) => EXCLUDED_NAMESPACES.has(n.metadata.name) || this.current.get(n.metadata.name)?.data?.[ROOT_CERT_KEY] === this.o.rootCertPem);
  }

  private enqueue(ns: string): void {
    if (this.stopped || !this.synced || !ns || EXCLUDED_NAMESPACES.has(ns)) return;
    if (this.retries.get(ns)?.timer) return; // a retry is already scheduled
    this.pending.add(ns);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.running < (this.o.concurrency ?? 4) && this.pending.size) {
      const ns = this.pending.values().next().value as string;
      this.pending.delete(ns);
      this.running++;
      void this.reconcile(ns).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async reconcile(ns: string): Promise<void> {
    if (!this.o.store.get('Namespace', '', ns)) return;
    const cm = this.current.get(ns);
    if (cm?.data?.[ROOT_CERT_KEY] === this.o.rootCertPem) return;
    const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/configmaps`;
    try {
      let written: ConfigMap;
      if (!cm) {
        written = await kubeRequest<ConfigMap>(this.o.conn, 'POST', base, {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: ROOT_CERT_CONFIGMAP, namespace: ns, labels: { 'istio.io/config': 'true' } },
          data: { [ROOT_CERT_KEY]: this.o.rootCertPem },
        });
      } else {
        written = await kubeRequest<ConfigMap>(this.o.conn, 'PUT', `${base}/${ROOT_CERT_CONFIGMAP}`, { ...cm, apiVersion: 'v1', kind: 'ConfigMap', data: { ...cm.data, [ROOT_CERT_KEY]: this.o.rootCertPem } });
      }
      this.writes++;
      this.retries.delete(ns);
      // The watch will bring the same object; until then, do not write it again.
      this.current.set(ns, written);
      this.o.log.info({ namespace: ns, configMap: ROOT_CERT_CONFIGMAP, op: cm ? 'update' : 'create' }, 'published the root certificate');
    } catch (err) {
      const status = err instanceof KubeApiError ? err.statusCode : 0;
      // 409: created or changed meanwhile; its watch event brings it back here if needed.
      if (status === 409) return;
      // 403/404: the namespace is terminating or gone.
      if (status === 403 || status === 404) {
        this.o.log.debug({ namespace: ns, err: String(err) }, 'root certificate not published');
        return;
      }
      const r = this.retries.get(ns) ?? { attempt: 0 };
      const b = this.o.backoff ?? DEFAULT_BACKOFF;
      const delay = Math.min(b.maxMs, b.initialMs * 2 ** r.attempt++);
      this.o.log.warn({ namespace: ns, err: String(err), retryInMs: delay }, 'publishing the root certificate failed; retrying');
      r.timer = setTimeout(() => {
        r.timer = undefined;
        this.enqueue(ns);
      }, delay);
      this.retries.set(ns, r);
    }
  }
}
