// Writes responses to one gRPC stream with a deadline. A push never waits on one stream
// for longer than the send timeout: a stream that does not drain by then is reported as
// stalled (its writer gives up), and reported again if it drains later.
import { constants as http2 } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { grpcFramed, presendFramed } from './grpc-frames.js';

export interface StreamSink {
  /** Writes one encoded response; resolves when the stream took it, rejects with StreamStalledError past the send timeout. */
  write(bytes: Buffer): Promise<void>;
}

export class StreamStalledError extends Error {
  constructor(readonly waitedMs: number) {
    super(`the stream took no data for ${waitedMs} ms (its flow-control window stayed closed)`);
    this.name = 'StreamStalledError';
  }
}

export interface StreamSinkOptions {
  /** Longest a write may wait for the stream to drain (ms). */
  sendTimeoutMs: number;
  /** A write did not drain in time. */
  onStalled(): void;
  /** A write that had stalled drained after all. */
  onDrained(): void;
  /** Seconds from a write to the stream taking it (pilot_xds_send_time). */
  observeSendTime?(seconds: number): void;
}

type Call = grpc.ServerDuplexStream<Buffer, Buffer>;

export function grpcStreamSink(call: Call, o: StreamSinkOptions): StreamSink {
  const framedWrites = presendFramed(call);
  let stalled = false;
  return {
    // grpc-js counts buffered messages, not bytes, so write()'s return value says little:
    // wait for the message to be handed to the transport before the next one is built.
    write(bytes: Buffer): Promise<void> {
      if (stalled) return Promise.reject(new StreamStalledError(o.sendTimeoutMs));
      return new Promise((resolve, reject) => {
        if (call.destroyed || call.writableEnded) return resolve();
        const start = performance.now();
        let timedOut = false;
        const onClose = (): void => {
          clearTimeout(timer);
          if (!timedOut) resolve();
        };
        const timer = setTimeout(() => {
          timedOut = true;
          stalled = true;
          call.off('close', onClose);
          o.onStalled();
          reject(new StreamStalledError(Math.round(performance.now() - start)));
        }, o.sendTimeoutMs);
        timer.unref();
        call.once('close', onClose);
        call.write(framedWrites ? grpcFramed(bytes) : bytes, () => {
          clearTimeout(timer);
          call.off('close', onClose);
          if (timedOut) {
            if (call.destroyed) return;
            stalled = false;
            o.onDrained();
            return;
          }
          o.observeSendTime?.((performance.now() - start) / 1000);
          resolve();
        });
      });
    },
  };
}

// This reaches into grpc-js (1.x) internals (the call's HTTP/2 stream);
// test/unit/ads-framing.test.ts fails loudly when an installed grpc-js no longer has it.
/**
 * Ends a stream at once, even with writes queued behind a closed flow-control window
 * (a status would wait behind them): the HTTP/2 stream is reset with CANCEL.
 */
export function abortStream(call: Call): void {
  const inner = (call as unknown as { call?: { stream?: { destroyed?: boolean; close?: (code: number) => void } } }).call;
  const stream = inner?.stream;
  if (stream && typeof stream.close === 'function' && !stream.destroyed) stream.close(http2.NGHTTP2_CANCEL);
  call.destroy();
}
