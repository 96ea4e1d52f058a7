// The Aggregated Discovery Service over gRPC: state-of-the-world and delta streams,
// proxy identification, and fan-out of pushes to every connected proxy.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../util/log.js';
import { parseProxy, NodeIdError, type Proxy } from '../model/proxy.js';
import { SHORT_TYPE, TypeUrl } from '../translate/types.js';
import type { Metrics } from '../monitoring/metrics.js';
import { structToJson } from './envoy-json.js';
import type { ConfigGenerator, PushRequest } from './generator.js';
import { Connection, type ConnectionHooks, type Protocol, type StreamSink } from './connection.js';
import { PushQueue } from './push-queue.js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from './wire.js';
import { rawMethod } from '../util/raw-grpc.js';
import { grpcFramed, presendFramed } from './grpc-frames.js';
import { AuthenticationError, type Authenticator } from '../ca/authenticate.js';
import type { WorkloadIdentity } from '../model/proxy.js';
import type { CachedResource } from './resource-cache.js';
import { identityKey, type WorkloadSecrets } from './workload-secrets.js';

const ADS_SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService/';
const KNOWN_TYPES = new Set<string>(Object.values(TypeUrl));

function bidi(method: string): grpc.MethodDefinition<Buffer, Buffer> {
  return rawMethod(ADS_SERVICE + method, { request: true, response: true });
}

export const ADS_SERVICE_DEFINITION: grpc.ServiceDefinition = {
  StreamAggregatedResources: bidi('StreamAggregatedResources'),
  DeltaAggregatedResources: bidi('DeltaAggregatedResources'),
};

export interface AdsServerOptions {
  generator: ConfigGenerator;
  metrics: Metrics;
  log: Logger;
  /** How many proxies are pushed to at once. */
  pushConcurrency?: number;
  controlPlaneId?: string;
  /** Checks `authorization: Bearer` tokens of streams; a proven identity gets mTLS and SDS `default`. */
  authenticator?: Authenticator;
  /** Certificates for proven identities (SDS). Both this and `authenticator` are needed for mTLS. */
  workloadSecrets?: WorkloadSecrets;
  trustDomain?: string;
}

/** What a stream proved about itself before its first request was handled. */
interface StreamIdentity {
  identity: WorkloadIdentity;
  secrets: CachedResource[];
}

type Call = grpc.ServerDuplexStream<Buffer, Buffer>;

function sinkFor(call: Call, metrics: Metrics): StreamSink {
  const framedWrites = presendFramed(call);
  return {
    // grpc-js counts buffered messages, not bytes, so write()'s return value says little:
    // wait for the message to be handed to the transport before the next one is built.
    write(bytes: Buffer): Promise<void> {
      return new Promise((resolve) => {
        if (call.destroyed || call.writableEnded) return resolve();
        const start = performance.now();
        const done = (): void => {
          call.off('close', done);
          metrics.xdsSendTime.observe((performance.now() - start) / 1000);
          resolve();
        };
        call.once('close', done);
        call.write(framedWrites ? grpcFramed(bytes) : bytes, done);
      });
    },
  };
}

export class AdsServer {
  readonly connections = new Set<Connection>();
  private readonly queue: PushQueue<Connection>;
  private readonly hooks: ConnectionHooks;
  private readonly controlPlaneId: string;

  constructor(private readonly opts: AdsServerOptions) {
    this.controlPlaneId = opts.controlPlaneId ?? 'meshd';
    this.queue = new PushQueue<Connection>(opts.pushConcurrency ?? 20, (conn, err) => {
      opts.log.error({ proxy: conn.proxy.id, err: String(err) }, 'push failed');
    });
    const m = opts.metrics;
    this.hooks = {
      onSent: (_conn, type, bytes) => {
        m.xdsPushes.inc({ type: SHORT_TYPE[type] });
        m.xdsConfigSize.observe({ type: SHORT_TYPE[type] }, bytes);
      },
      onAck: (_conn, _type, convergenceMs) => {
        if (convergenceMs !== undefined) m.proxyConvergenceTime.observe(convergenceMs / 1000);
      },
      onNack: (conn, type, message) => {
        m.xdsRejects.inc({ type: SHORT_TYPE[type] });
        opts.log.warn({ proxy: conn.proxy.id, type: SHORT_TYPE[type], error: message }, 'proxy rejected config (NACK)');
      },
      onStaleNonce: (_conn, type) => m.expiredNonce.inc({ type: SHORT_TYPE[type] }),
    };
  }

  /** Registers the ADS service on a gRPC server. */
  register(server: grpc.Server): void {
    server.addService(ADS_SERVICE_DEFINITION, {
      StreamAggregatedResources: (call: Call) => this.handleStream(call, 'sotw'),
      DeltaAggregatedResources: (call: Call) => this.handleStream(call, 'delta'),
    });
  }

  /** Schedules a push to every connected proxy. */
  push(req: PushRequest): void {
    const start = performance.now();
    for (const conn of this.connections) {
      conn.schedule(req);
      this.queue.enqueue(conn);
    }
    void this.queue.idle().then(() => this.opts.metrics.xdsPushTime.observe({ type: req.full ? 'full' : 'eds' }, (performance.now() - start) / 1000));
  }

  /** Resolves when every scheduled push has been written. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  findConnections(proxyId: string): Connection[] {
    return [...this.connections].filter((c) => c.proxy.id === proxyId || c.id === proxyId);
  }

  /** Ends every stream, e.g. on shutdown. */
  closeAll(): void {
    for (const c of this.connections) c.closed = true;
  }

  /** Turns on stream authentication (Bearer tokens) and SDS certificates for proven identities. */
  useWorkloadIdentity(o: { authenticator: Authenticator; workloadSecrets: WorkloadSecrets; trustDomain: string }): void {
    this.opts.authenticator = o.authenticator;
    this.opts.workloadSecrets = o.workloadSecrets;
    this.opts.trustDomain = o.trustDomain;
  }

  /** A renewed certificate for `key` (namespace/serviceAccount): its proxies get it. */
  onCertificateRotated(key: string): void {
    const secrets = this.opts.workloadSecrets;
    const fresh = secrets?.current(key);
    if (!secrets || !fresh) return;
    for (const conn of this.connectionsOf(key)) {
      conn.ownSecrets = [fresh, secrets.rootSecret()];
      conn.scheduleType(TypeUrl.Secret);
      this.queue.enqueue(conn);
    }
  }

  /** Whether a connected proxy has this identity. */
  identityInUse(key: string): boolean {
    return !this.connectionsOf(key).next().done;
  }

  private *connectionsOf(identity: string): Generator<Connection> {
    for (const conn of this.connections) if (conn.proxy.workloadIdentity && identityKey(conn.proxy.workloadIdentity) === identity) yield conn;
  }

  /** Checks the stream's token, if it sent one, and gets its certificate ready. */
  private async authenticateStream(call: Call): Promise<StreamIdentity | undefined> {
    const header = call.metadata.get('authorization')[0];
    if (header === undefined) return undefined;
    const { authenticator, workloadSecrets } = this.opts;
    if (!authenticator || !workloadSecrets) {
      throw new AuthenticationError(grpc.status.UNAUTHENTICATED, 'this meshd cannot check tokens (no Kubernetes API): connect without an authorization header');
    }
    const caller = await authenticator.authenticate(String(header));
    const identity: WorkloadIdentity = { namespace: caller.namespace, serviceAccount: caller.serviceAccount, trustDomain: this.opts.trustDomain ?? 'cluster.local' };
    const secrets = [await workloadSecrets.workloadSecret(identity), workloadSecrets.rootSecret()];
    return { identity, secrets };
  }

  private handleStream(call: Call, protocol: Protocol): void {
    let conn: Connection | undefined;
    const log = this.opts.log;
    const fail = (code: grpc.status, details: string): void => {
      log.warn({ peer: call.getPeer(), code: grpc.status[code], details }, 'rejecting xDS stream');
      call.emit('error', { code, details });
    };
    // Requests wait until the stream's token (if any) is checked.
    let auth: StreamIdentity | undefined;
    let waiting: Buffer[] | undefined = [];
    this.authenticateStream(call).then(
      (a) => {
        auth = a;
        const queued = waiting ?? [];
        waiting = undefined;
        for (const buf of queued) onData(buf);
      },
      (err: unknown) => {
        waiting = undefined;
        if (err instanceof AuthenticationError) fail(err.grpcStatus, err.message);
        else fail(grpc.status.INTERNAL, `cannot prepare the workload certificate: ${String(err)}`);
      },
    );
    call.on('data', (buf: Buffer) => {
      if (waiting) waiting.push(buf);
      else if (!call.destroyed) onData(buf);
    });
    const onData = (buf: Buffer): void => {
      try {
        if (protocol === 'sotw') {
          const req = decodeDiscoveryRequest(buf);
          conn ??= this.open(call, protocol, req.node, fail, auth);
          if (!conn) return;
          const type = req.type_url ?? '';
          if (!KNOWN_TYPES.has(type)) return fail(grpc.status.INVALID_ARGUMENT, `unknown type_url "${type}"; meshd serves ${[...KNOWN_TYPES].join(', ')}`);
          if (conn.onSotwRequest(type as TypeUrl, req.resource_names ?? [], req.response_nonce ?? '', req.version_info ?? '', req.error_detail)) this.queue.enqueue(conn);
        } else {
          const req = decodeDeltaDiscoveryRequest(buf);
          conn ??= this.open(call, protocol, req.node, fail, auth);
          if (!conn) return;
          const type = req.type_url ?? '';
          if (!KNOWN_TYPES.has(type)) return fail(grpc.status.INVALID_ARGUMENT, `unknown type_url "${type}"; meshd serves ${[...KNOWN_TYPES].join(', ')}`);
          const owed = conn.onDeltaRequest(
            type as TypeUrl,
            req.resource_names_subscribe ?? [],
            req.resource_names_unsubscribe ?? [],
            req.initial_resource_versions ?? {},
            req.response_nonce ?? '',
            req.error_detail,
          );
          if (owed) this.queue.enqueue(conn);
        }
      } catch (err) {
        fail(grpc.status.INVALID_ARGUMENT, `cannot decode ${protocol === 'sotw' ? 'DiscoveryRequest' : 'DeltaDiscoveryRequest'}: ${String(err)}`);
      }
    };
    const close = (): void => {
      if (!conn || conn.closed) return;
      conn.closed = true;
      this.connections.delete(conn);
      this.opts.metrics.xdsClients.dec({ version: conn.proxy.istioVersion || 'none' });
      log.info({ proxy: conn.proxy.id, connection: conn.id }, 'proxy disconnected');
    };
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('close', close);
  }

  private open(call: Call, protocol: Protocol, node: { id?: string; metadata?: unknown } | undefined, fail: (code: grpc.status, details: string) => void, auth: StreamIdentity | undefined): Connection | undefined {
    if (!this.opts.generator.snapshot) {
      fail(grpc.status.UNAVAILABLE, 'meshd has not loaded its configuration yet');
      return undefined;
    }
    let proxy: Proxy;
    try {
      proxy = parseProxy(node?.id ?? '', structToJson(node?.metadata));
      if (auth) proxy.workloadIdentity = auth.identity;
    } catch (err) {
      fail(grpc.status.INVALID_ARGUMENT, err instanceof NodeIdError ? err.message : String(err));
      return undefined;
    }
    const identity = this.opts.generator.identify(proxy);
    if (identity.disagreements.length > 0) {
      this.opts.log.warn({ proxy: proxy.id, disagreements: identity.disagreements }, 'proxy metadata disagrees with its Pod; using the Pod');
    }
    const conn = new Connection(proxy, protocol, this.opts.generator, sinkFor(call, this.opts.metrics), this.hooks, this.controlPlaneId);
    if (auth) conn.ownSecrets = auth.secrets;
    this.connections.add(conn);
    this.opts.metrics.xdsClients.inc({ version: proxy.istioVersion || 'none' });
    this.opts.log.info({ proxy: proxy.id, connection: conn.id, protocol, class: conn.ctx.classKey }, 'proxy connected');
    return conn;
  }
}
