// An informer that survives: the client library's ListWatch stops on any watch error
// other than 410 Gone, so each failure here tears it down and starts a fresh one,
// which relists, after an exponential backoff. After every (re)list the store is
// reconciled with the full list, so deletions made while disconnected are seen.
import { ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { KubeConnection } from './client.js';
import { kubeRequest } from './client.js';
import type { Logger } from '../util/log.js';

export interface InformerHandlers<T> {
  /** One object added or changed. */
  upsert(obj: T): void;
  remove(obj: T): void;
  /** The full list after a (re)list: everything not in it is gone. */
  resync(objects: readonly T[]): void;
}

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 10_000 };

export interface InformerStats {
  synced: boolean;
  restarts: number;
  lastError: string | undefined;
  events: number;
}

export class ResilientInformer<T extends KubernetesObject> {
  private lw: ListWatch<T> | undefined;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private generation = 0;
  private syncedWaiters: (() => void)[] = [];
  readonly stats: InformerStats = { synced: false, restarts: 0, lastError: undefined, events: 0 };

  constructor(
    private readonly conn: KubeConnection,
    /** Collection path, e.g. /api/v1/services or /apis/networking.istio.io/v1/virtualservices. */
    readonly path: string,
    /** apiVersion and kind stamped on listed items (list items come without them). */
    private readonly apiVersion: string,
    private readonly kind: string,
    private readonly handlers: InformerHandlers<T>,
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly onEvent?: (event: 'add' | 'update' | 'delete' | 'error' | 'resync' | 'synced') => void,
  ) {}

  start(): void {
    this.stopped = false;
    void this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const lw = this.lw;
    this.lw = undefined;
    await lw?.stop();
  }

  /** Resolves once the first list has been applied. */
  synced(): Promise<void> {
    if (this.stats.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncedWaiters.push(resolve));
  }

  private stamp(obj: T): T {
    if (!obj.apiVersion) obj.apiVersion = this.apiVersion;
    if (!obj.kind) obj.kind = this.kind;
    return obj;
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const generation = ++this.generation;
    const current = (): boolean => generation === this.generation && !this.stopped;
    const listFn = async (): Promise<KubernetesListObject<T>> => kubeRequest<KubernetesListObject<T>>(this.conn, 'GET', this.path);
    const lw = new ListWatch<T>(this.path, new Watch(this.conn.config), listFn, false);
    this.lw = lw;
    let failed: unknown;
    // Until the (re)list has been reconciled below, the list's own add events are only
    // counted: the resync applies the whole list once, rather than object by object and again.
    let live = false;
    const on = (event: 'add' | 'update' | 'delete', apply: (o: T) => void) => (o: T): void => {
      if (!current()) return;
      this.stats.events++;
      this.onEvent?.(event);
      if (live) apply(this.stamp(o));
    };
    lw.on('add', on('add', (o) => this.handlers.upsert(o)));
    lw.on('update', on('update', (o) => this.handlers.upsert(o)));
    lw.on('delete', on('delete', (o) => this.handlers.remove(o)));
    lw.on('error', (err) => {
      failed = err ?? new Error('watch ended with an error');
      if (current()) this.fail(lw, failed);
    });
    try {
      await lw.start();
    } catch (err) {
      failed = err;
    }
    if (!current()) return;
    if (failed !== undefined) {
      this.fail(lw, failed);
      return;
    }
    // Listed and watching: reconcile with the full list.
    this.attempt = 0;
    this.handlers.resync(lw.list().map((o) => this.stamp(o)));
    live = true;
    this.onEvent?.('resync');
    if (!this.stats.synced) {
      this.stats.synced = true;
      const waiters = this.syncedWaiters;
      this.syncedWaiters = [];
      for (const w of waiters) w();
      this.onEvent?.('synced');
      this.log.info({ path: this.path, objects: lw.list().length }, 'informer synced');
    } else {
      this.log.info({ path: this.path, objects: lw.list().length }, 'informer relisted');
    }
  }

  private fail(lw: ListWatch<T>, err: unknown): void {
    if (this.lw !== lw || this.stopped) return;
    this.lw = undefined;
    this.generation++;
    void lw.stop();
    this.stats.lastError = String((err as Error)?.message ?? err);
    this.stats.restarts++;
    this.onEvent?.('error');
    const delay = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt++);
    this.log.warn({ path: this.path, err: this.stats.lastError, retryInMs: delay }, 'informer failed; relisting after backoff');
    this.timer = setTimeout(() => void this.run(), delay);
  }
}
