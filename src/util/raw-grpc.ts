// gRPC methods whose messages stay bytes: meshd encodes and decodes its own messages
// (once, shared), so grpc-js only frames them.
import type * as grpc from '@grpc/grpc-js';

const passthrough = (b: Buffer): Buffer => b;

export function rawMethod(path: string, streams: { request: boolean; response: boolean }): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: streams.request,
    responseStream: streams.response,
    requestSerialize: passthrough,
    requestDeserialize: passthrough,
    responseSerialize: passthrough,
    responseDeserialize: passthrough,
  };
}
