// Encoded discovery responses shared by the proxies that get the same one. In a push,
// every proxy of a class usually receives identical bytes (same resources, same version):
// they are encoded once, with one nonce, instead of once per stream.
import { framedMessage } from './grpc-frames.js';

export interface SharedResponse {
  readonly nonce: string;
  readonly bytes: Buffer;
}

let nonceCounter = 0;
const bootId = Date.now().toString(36);

/** A nonce unique across every stream of this process. */
export function newNonce(): string {
  return `${bootId}-${(++nonceCounter).toString(36)}`;
}

export class SharedResponses {
  private readonly entries = new Map<string, SharedResponse>();
  private bytes = 0;
  hits = 0;
  builds = 0;

  /** @param maxBytes encoded bytes kept; the oldest responses go first. */
  constructor(private readonly maxBytes = 32 * 1024 * 1024) {}

  /** The response for `key`, built with a fresh nonce the first time it is asked for. */
  get(key: string, build: (nonce: string) => Buffer): SharedResponse {
    const found = this.entries.get(key);
    if (found) {
      this.hits++;
      return found;
    }
    const nonce = newNonce();
    // Kept as a view into its gRPC frame: streams send the frame without copying it.
    const entry: SharedResponse = { nonce, bytes: framedMessage(build(nonce)) };
    this.builds++;
    this.entries.set(key, entry);
    this.bytes += entry.bytes.length;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes || k === key) break;
      this.entries.delete(k);
      this.bytes -= e.bytes.length;
    }
    return entry;
  }

  get size(): number {
    return this.entries.size;
  }
}
