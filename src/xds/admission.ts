// New xDS streams are admitted at a bounded rate: a reconnect storm (a replica died, a
// thousand proxies come at once) waits in a queue and is served in order, instead of
// every stream asking for its full config in the same second. Beyond the queue's bound a
// stream is refused, and its proxy retries with backoff.
import { TokenBucket } from '../util/token-bucket.js';

export interface AdmissionOptions {
  /** Streams admitted per second, on average. 0 or Infinity: no limit. */
  ratePerSecond: number;
  /** Streams admitted at once after a quiet period. Default: ratePerSecond (at least 1). */
  burst?: number;
  /** Streams that may wait; more are refused. */
  maxQueue: number;
  now?: () => number;
}

export class AdmissionRefused extends Error {
  constructor(queued: number) {
    super(`meshd is admitting new xDS streams at its rate limit and ${queued} are already waiting; retry later`);
    this.name = 'AdmissionRefused';
  }
}

interface Waiter {
  admit(): void;
}

export class StreamAdmission {
  private readonly bucket: TokenBucket;
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: AdmissionOptions) {
    this.bucket = new TokenBucket(o.ratePerSecond, o.burst ?? (Number.isFinite(o.ratePerSecond) ? o.ratePerSecond : 1), o.now);
  }

  get unlimited(): boolean {
    return !(this.o.ratePerSecond > 0) || !Number.isFinite(this.o.ratePerSecond);
  }

  /** Streams waiting now. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Waits for this stream's turn. Returns a function that withdraws the stream from the
   * queue (it closed while waiting). Throws AdmissionRefused when the queue is full.
   */
  admit(onAdmitted: () => void): () => void {
    if (this.unlimited) {
      onAdmitted();
      return () => undefined;
    }
    if (this.queue.length === 0 && this.bucket.take()) {
      onAdmitted();
      return () => undefined;
    }
    if (this.queue.length >= this.o.maxQueue) throw new AdmissionRefused(this.queue.length);
    const waiter: Waiter = { admit: onAdmitted };
    this.queue.push(waiter);
    this.schedule();
    return () => {
      const i = this.queue.indexOf(waiter);
      if (i >= 0) this.queue.splice(i, 1);
    };
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      while (this.queue.length > 0 && this.bucket.take()) this.queue.shift()!.admit();
      this.schedule();
    }, this.bucket.waitMs());
    this.timer.unref();
  }
}
