// One resource type on one stream, from meshd's side: the responses sent (nonce, version),
// and what the proxy acknowledged or rejected of them.
import { clientText } from '../util/client-text.js';
import type { DecodedStatus } from './wire.js';

/** Longest NACK message meshd keeps (and logs) of what a proxy sent. */
export const MAX_NACK_MESSAGE = 1024;

export interface Nack {
  nonce: string;
  version: string;
  message: string;
  at: number;
}

/** What a request's nonce says about the last response. */
export type Reply = { kind: 'ack'; convergenceMs: number | undefined } | { kind: 'nack'; nack: Nack } | { kind: 'repeated-nack' } | { kind: 'stale' };

export class Delivery {
  lastNonce = '';
  lastVersion = '';
  lastSentAt = 0;
  sentResponses = 0;
  ackedNonce = '';
  ackedVersion = '';
  ackedAt = 0;
  nack: Nack | undefined;
  /** The change time of the oldest push not yet acknowledged, for convergence metrics. */
  private pendingSince = 0;

  /** A response went out. */
  sent(nonce: string, version: string, since: number): void {
    this.lastNonce = nonce;
    this.lastVersion = version;
    this.lastSentAt = Date.now();
    this.sentResponses++;
    if (!this.pendingSince) this.pendingSince = since;
  }

  /**
   * A request answering a response (it carries that response's nonce). A nonce other than
   * the last one sent is stale ("the control plane ... should ignore" it); with an error it
   * is a NACK, recorded once per nonce (a proxy repeating it is not recounted); otherwise an
   * ACK of `version`.
   */
  reply(nonce: string, version: string, error: DecodedStatus | undefined): Reply {
    if (nonce !== this.lastNonce) return { kind: 'stale' };
    if (error && (error.message || error.code)) {
      if (this.nack?.nonce === nonce) return { kind: 'repeated-nack' };
      this.nack = { nonce, version: this.lastVersion, message: clientText(error.message || `code ${error.code}`, MAX_NACK_MESSAGE), at: Date.now() };
      this.pendingSince = 0;
      return { kind: 'nack', nack: this.nack };
    }
    this.ackedNonce = nonce;
    this.ackedVersion = version;
    this.ackedAt = Date.now();
    const convergenceMs = this.pendingSince ? this.ackedAt - this.pendingSince : undefined;
    this.pendingSince = 0;
    return { kind: 'ack', convergenceMs };
  }

  /** Whether the proxy rejected exactly this version (it is not sent again, to avoid a loop). */
  rejected(version: string): boolean {
    return this.nack?.version === version;
  }

  /** SYNCED, STALE or NOT SENT, as istiod's proxy-status says. */
  status(): 'SYNCED' | 'STALE' | 'NOT SENT' {
    if (this.sentResponses === 0) return 'NOT SENT';
    if (this.ackedNonce === this.lastNonce && !(this.nack && this.nack.nonce === this.lastNonce)) return 'SYNCED';
    return 'STALE';
  }
}
