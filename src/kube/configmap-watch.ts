// Follows one ConfigMap by namespace and name (a list/watch with a field selector, as RBAC
// limited to that name allows): its data now, and again after every change or deletion.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeConnection } from './client.js';
import { ResilientInformer } from './resilient-informer.js';
import type { Logger } from '../util/log.js';

interface ConfigMap extends KubernetesObject {
  data?: Record<string, string>;
}

export class ConfigMapWatch {
  private readonly informer: ResilientInformer<ConfigMap>;

  /** `onData` gets the ConfigMap's data, or undefined when it does not exist (or was deleted). */
  constructor(conn: KubeConnection, namespace: string, name: string, onData: (data: Record<string, string> | undefined) => void, log: Logger) {
    this.informer = new ResilientInformer<ConfigMap>(
      conn,
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps?fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}`,
      'v1',
      'ConfigMap',
      {
        upsert: (cm) => onData(cm.data ?? {}),
        remove: () => onData(undefined),
        resync: (list) => onData(list[0]?.data ?? (list.length ? {} : undefined)),
      },
      log.child({ informer: `ConfigMap/${namespace}/${name}` }),
    );
  }

  start(): void {
    this.informer.start();
  }

  /** Resolves once the ConfigMap has been listed (found or not). */
  synced(): Promise<void> {
    return this.informer.synced();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }
}
