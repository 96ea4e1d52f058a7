// The gRPC servers of a control plane: plaintext (Istio's 15010) and TLS (15012) with
// meshd's own certificate from its CA, each serving ADS and the CA API.
import * as grpc from '@grpc/grpc-js';
import type { Core } from './core.js';
import type { Security } from './security.js';
import { splitHostPort, type ControlPlaneOptions } from './options.js';

export interface GrpcServers {
  grpcPort: number;
  secureGrpcPort: number | undefined;
  /** host:port of each, for the log. */
  addresses: { grpc: string; secureGrpc?: string };
  stop(): void;
}

const DEFAULT_MAX_CONNECTION_AGE_MS = 30 * 60_000;

function serverOptions(o: ControlPlaneOptions): grpc.ServerOptions {
  const maxAge = o.xds?.maxConnectionAgeMs ?? DEFAULT_MAX_CONNECTION_AGE_MS;
  return {
    'grpc.max_send_message_length': -1,
    // ADS requests can be large (delta subscriptions); the CA refuses requests over 256 KiB itself.
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    // Connections are closed (GOAWAY, then after the grace) at this age, so proxies spread
    // over replicas after a scale-up or a restart; grpc-js adds jitter. istiod's default: 30 min.
    'grpc.max_connection_age_ms': maxAge,
    // Then streams get this long to end by themselves before the connection is closed (istiod: 10 s).
    'grpc.max_connection_age_grace_ms': Math.min(10_000, Math.max(1000, maxAge / 10)),
  };
}

function bind(server: grpc.Server, addr: string, creds: grpc.ServerCredentials): Promise<number> {
  const a = splitHostPort(addr);
  return new Promise<number>((resolve, reject) =>
    server.bindAsync(`${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`, creds, (err, port) => (err ? reject(new Error(`binding ${addr}: ${err.message}`)) : resolve(port))),
  );
}

export async function startGrpcServers(o: ControlPlaneOptions, core: Core, security: Security): Promise<GrpcServers> {
  const options = serverOptions(o);
  const grpcServer = new grpc.Server(options);
  core.ads.register(grpcServer);
  security.caService.register(grpcServer);
  const grpcPort = await bind(grpcServer, o.grpcAddr, grpc.ServerCredentials.createInsecure());
  const addresses: GrpcServers['addresses'] = { grpc: `${splitHostPort(o.grpcAddr).host}:${grpcPort}` };

  let secureServer: grpc.Server | undefined;
  let secureGrpcPort: number | undefined;
  if (o.secureGrpcAddr !== undefined) {
    secureServer = new grpc.Server(options);
    core.ads.register(secureServer);
    security.caService.register(secureServer);
    secureGrpcPort = await bind(secureServer, o.secureGrpcAddr, security.servingCert.credentials());
    addresses.secureGrpc = `${splitHostPort(o.secureGrpcAddr).host}:${secureGrpcPort}`;
  }
  return {
    grpcPort,
    secureGrpcPort,
    addresses,
    stop() {
      // ADS streams never end by themselves: cancel them; proxies reconnect to another replica.
      grpcServer.forceShutdown();
      secureServer?.forceShutdown();
    },
  };
}
