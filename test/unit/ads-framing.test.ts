// Shared responses are framed for gRPC once and handed to grpc-js as they are: the
// installed grpc-js must still allow that, and the bytes must arrive unchanged.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { framedMessage, grpcFramed, presendFramed } from '../../src/xds/grpc-frames.js';
import { rawMethod } from '../../src/util/raw-grpc.js';

const passthrough = (b: Buffer): Buffer => b;
const METHOD = rawMethod('/meshd.test.Echo/Stream', { request: true, response: true });

describe('pre-framed gRPC responses', () => {
  it('send one framed buffer to several streams, unchanged, and leave other messages to grpc-js', async () => {
    const shared = Buffer.from('a shared discovery response '.repeat(5000));
    const own = Buffer.from('a message framed by grpc-js');
    const hooked: boolean[] = [];
    const server = new grpc.Server();
    server.addService({ Stream: METHOD }, {
      Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        hooked.push(presendFramed(call));
        call.write(grpcFramed(shared));
        call.write(own);
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const receive = (): Promise<Buffer[]> =>
        new Promise((resolve, reject) => {
          const got: Buffer[] = [];
          const call = client.makeBidiStreamRequest(METHOD.path, passthrough, passthrough);
          call.on('data', (b: Buffer) => got.push(b));
          call.on('error', reject);
          call.on('end', () => resolve(got));
          call.end();
        });
      const [a, b] = await Promise.all([receive(), receive()]);
      assert.deepEqual(hooked, [true, true], 'the installed grpc-js lets meshd send pre-framed messages');
      for (const got of [a, b]) {
        assert.equal(got.length, 2);
        assert.ok(got[0]!.equals(shared), 'the shared response arrives byte for byte');
        assert.ok(got[1]!.equals(own), 'an unframed message is framed by grpc-js as before');
      }
      assert.equal(grpcFramed(shared), grpcFramed(shared), 'one framed copy per buffer');
      const view = framedMessage(Buffer.alloc(10_000, 1));
      const frame = grpcFramed(view);
      assert.ok(frame.buffer === view.buffer && frame.byteOffset + 5 === view.byteOffset, 'a kept message is a view into its own frame, not a second copy');
      assert.ok(grpcFramed(view).subarray(5).equals(view));
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});

describe('resetting a stuck stream', () => {
  it('abortStream ends a stream whose writes wait behind a closed flow-control window (reaches the HTTP/2 stream inside grpc-js)', async () => {
    const http2 = await import('node:http2');
    const { abortStream } = await import('../../src/xds/stream-sink.js');
    let serverCall: grpc.ServerDuplexStream<Buffer, Buffer> | undefined;
    let wrote: () => void = () => undefined;
    const written = new Promise<void>((resolve) => (wrote = resolve));
    const server = new grpc.Server();
    server.addService({ Stream: METHOD }, {
      Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        serverCall = call;
        call.write(Buffer.alloc(1000, 7));
        wrote();
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    // A client that never opens its window: the server's write cannot drain.
    const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => undefined);
    const stream = session.request({ ':method': 'POST', ':path': METHOD.path, 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => stream.once('close', () => resolve(stream.rstCode ?? -1)));
    stream.write(Buffer.from([0, 0, 0, 0, 0]));
    try {
      await written;
      const inner = (serverCall as unknown as { call?: { stream?: unknown } }).call?.stream;
      assert.ok(inner, 'grpc-js keeps the HTTP/2 stream at call.call.stream (src/xds/stream-sink.ts relies on it)');
      abortStream(serverCall!);
      const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-2), 3000))]);
      assert.equal(code, http2.constants.NGHTTP2_CANCEL, 'the client sees the stream reset with CANCEL');
    } finally {
      session.destroy();
      server.forceShutdown();
    }
  });
});
