// A token bucket: on average `ratePerSecond` takes, at most `burst` at once after a quiet
// period. Used to bound how fast meshd admits streams and writes to the API server.

export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly burst: number;

  constructor(
    readonly ratePerSecond: number,
    burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = Math.max(1, burst);
    this.tokens = this.burst;
    this.last = this.now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerSecond);
    this.last = t;
  }

  /** Takes one token if there is one. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether a token is there now (without taking it). */
  available(): boolean {
    this.refill();
    return this.tokens >= 1;
  }

  /** How long until the next token (ms, at least 1). */
  waitMs(): number {
    this.refill();
    return Math.max(1, Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000));
  }
}
