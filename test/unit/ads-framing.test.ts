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
