// Flushes connections with pending pushes, at most `concurrency` at a time, so a
// push to thousands of proxies neither blocks the event loop nor buffers without bound.
// A flush holds its slot for at most `slotTimeoutMs`: a slow stream goes on writing
// outside the slots, so it never delays the proxies queued behind it.

export interface Flushable {
  readonly hasPending: boolean;
  /** Closed or stalled: nothing is flushed to it. */
  readonly detached: boolean;
  flush(): Promise<void>;
}

export interface PushQueueOptions<T> {
  concurrency: number;
  /** Longest one flush occupies a slot (ms); it then finishes outside the slots. Default 1000. */
  slotTimeoutMs?: number;
  onError(item: T, err: unknown): void;
}

export class PushQueue<T extends Flushable> {
  private readonly queue: T[] = [];
  private readonly queued = new Set<T>();
  /** Flushes in progress, in a slot or overdue. */
  private readonly running = new Set<T>();
  /** Slots taken. */
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly slotTimeoutMs: number;

  constructor(private readonly o: PushQueueOptions<T>) {
    this.slotTimeoutMs = o.slotTimeoutMs ?? 1000;
  }

  enqueue(item: T): void {
    if (this.queued.has(item) || this.running.has(item)) return;
    this.queued.add(item);
    this.queue.push(item);
    this.pump();
  }

  get size(): number {
    return this.queue.length + this.running.size;
  }

  /** Flushes that outlived their slot and are still writing. */
  get overdue(): number {
    return this.running.size - this.active;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.active < this.o.concurrency && this.queue.length > 0) {
      const item = this.queue.shift()!;
      this.queued.delete(item);
      if (item.detached) continue;
      this.running.add(item);
      this.active++;
      let inSlot = true;
      const releaseSlot = (): void => {
        if (!inSlot) return;
        inSlot = false;
        this.active--;
      };
      const slotTimer = setTimeout(() => {
        releaseSlot();
        this.pump();
      }, this.slotTimeoutMs);
      slotTimer.unref();
      // Start each flush on its own turn of the event loop, so a push to thousands of
      // proxies lets requests, timers and sockets in between.
      new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => item.flush())
        .catch((err: unknown) => this.o.onError(item, err))
        .finally(() => {
          clearTimeout(slotTimer);
          releaseSlot();
          this.running.delete(item);
          // A push that arrived while this one ran is picked up again.
          if (item.hasPending && !item.detached) this.enqueue(item);
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
