// A tiny gRPC backend for proxyless tests, defined without .proto files: one unary
// method `/meshd.test.Echo/Say` whose reply is the backend's own name, so a test can
// tell which backend served a call.
import * as grpc from '@grpc/grpc-js';
import { rawMethod } from '../../src/util/raw-grpc.js';

export const ECHO_SAY_PATH = '/meshd.test.Echo/Say';

/** Per call, in the xDS client (xds-echo-client.ts). */
export const CALL_DEADLINE_MS = 5000;

/** What xds-echo-client.ts prints for a batch of calls. */
export interface CallSummary {
  ok: number;
  failed: number;
  /** Replies by backend name. */
  byBackend: Record<string, number>;
  /** Up to ten distinct error texts, as "<code name>: <details>". */
  errors: string[];
  /** Wall time of the batch. */
  ms: number;
}

/** The Echo service: raw bytes in, raw bytes out. */
export const ECHO_SERVICE: grpc.ServiceDefinition = {
  Say: rawMethod(ECHO_SAY_PATH, { request: false, response: false }),
};

export interface EchoBackend {
  name: string;
  host: string;
  port: number;
  /** Calls served so far. */
  calls(): number;
  stop(): Promise<void>;
}

function bind(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Starts a backend answering with `name` on host:port (port 0 picks a free one). */
export async function startEchoBackend(name: string, host: string, port = 0): Promise<EchoBackend> {
  let served = 0;
  const server = new grpc.Server();
  const impl: grpc.UntypedServiceImplementation = {
    Say: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      served++;
      callback(null, Buffer.from(name, 'utf8'));
    },
  };
  server.addService(ECHO_SERVICE, impl);
  const bound = await bind(server, `${host}:${port}`);
  return {
    name,
    host,
    port: bound,
    calls: () => served,
    stop: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Do not let lingering client connections hold the test up.
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000).unref();
      }),
  };
}

/**
 * Starts one backend per name, one per host, all on the same port (one EndpointSlice
 * port number applies to all of its endpoints). Retries if the port is taken on a later host.
 */
export async function startEchoBackendsOnePort(specs: { name: string; host: string }[]): Promise<EchoBackend[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const started: EchoBackend[] = [];
    try {
      const [first, ...rest] = specs;
      if (!first) return [];
      const a = await startEchoBackend(first.name, first.host, 0);
      started.push(a);
      for (const s of rest) started.push(await startEchoBackend(s.name, s.host, a.port));
      return started;
    } catch (err) {
      await Promise.all(started.map((b) => b.stop()));
      if (attempt === 19) throw err;
    }
  }
  throw new Error('unreachable');
}
