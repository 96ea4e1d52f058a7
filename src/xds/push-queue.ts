// Flushes connections with pending pushes, at most `concurrency` at a time, so a
// push to thousands of proxies neither blocks the event loop nor buffers without bound.

export interface Flushable {
  readonly hasPending: boolean;
  readonly closed: boolean;
  flush(): Promise<void>;
}

export class PushQueue<T extends Flushable> {
  private readonly queue: T[] = [];
  private readonly queued = new Set<T>();
  private readonly running = new Set<T>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly onError: (item: T, err: unknown) => void,
  ) {}

  enqueue(item: T): void {
    if (this.queued.has(item) || this.running.has(item)) return;
    this.queued.add(item);
    this.queue.push(item);
    this.pump();
  }

  get size(): number {
    return this.queue.length + this.running.size;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running.size < this.concurrency && this.queue.length > 0) {
      const item = this.queue.shift()!;
      this.queued.delete(item);
      if (item.closed) continue;
      this.running.add(item);
      // Start each flush on its own turn of the event loop, so a push to thousands of
      // proxies lets requests, timers and sockets in between.
      new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => item.flush())
        .catch((err: unknown) => this.onError(item, err))
        .finally(() => {
          this.running.delete(item);
          // A push that arrived while this one ran is picked up again.
          if (item.hasPending && !item.closed) this.enqueue(item);
          else this.pump();
          if (this.size === 0) {
            const waiters = this.idleWaiters;
            this.idleWaiters = [];
            for (const w of waiters) w();
          }
        });
    }
  }
}
