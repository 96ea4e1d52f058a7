// The Aggregated Discovery Service over gRPC: state-of-the-world and delta streams,
// proxy identification, and fan-out of pushes to every connected proxy.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../util/log.js';
import { parseProxy, NodeIdError, type Proxy } from '../model/proxy.js';
import { SHORT_TYPE, TypeUrl } from '../translate/types.js';
import { supportsVhdsOverAds, type ClientNode } from './vhds-support.js';
import type { Metrics } from '../util/metrics.js';
import { structToJson } from './envoy-json.js';
import type { ConfigGenerator, PushRequest } from './generator.js';
import { Connection, type ConnectionHooks, type Protocol } from './connection.js';
import { PushQueue } from './push-queue.js';
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from './wire.js';
import { rawMethod } from '../util/raw-grpc.js';
import { abortStream, grpcStreamSink, StreamStalledError, type StreamSink } from './stream-sink.js';
import { AdmissionRefused, StreamAdmission } from './admission.js';
import { clientText } from '../util/client-text.js';
import { AuthenticationError, type Authenticator } from '../ca/authenticate.js';
import type { WorkloadIdentity } from '../model/proxy.js';
import { identityKey, type WorkloadSecrets } from './workload-secrets.js';
import { answerDebugRequest, DEBUG_TYPE_PREFIX, DebugStreamState, MAX_DEBUG_REQUESTS_PER_STREAM } from './debug-types.js';
import { controlPlaneIdentifier } from '../util/version.js';

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
  /** Longest a write may wait for a stream to drain before the stream is detached (ms). Default 10 s. */
  sendTimeoutMs?: number;
  /** How long a detached (stalled) stream may take to drain before it is closed (ms). Default 30 s. */
  stallGraceMs?: number;
  /** Longest one proxy's push holds a push slot (ms); a slower write finishes outside the slots. Default 1 s. */
  pushSlotTimeoutMs?: number;
  /** New streams admitted per second (0: no limit), and how many may wait. */
  admissionRate?: number;
  admissionQueue?: number;
  /** Node metadata larger than this (bytes, as JSON) or with more labels is refused. */
  maxMetadataBytes?: number;
  maxLabels?: number;
  /** meshd's namespace: callers of istio.io/debug/* types from it see every proxy. Default istio-system. */
  systemNamespace?: string;
  /** Sidecars on delta streams of a recent Envoy take their service virtual hosts over VHDS (translate/virtual-hosts.ts, vhds-support.ts). Default false. */
  vhds?: boolean;
}

/** Bounds on what a proxy may say about itself. */
export const DEFAULT_MAX_METADATA_BYTES = 64 * 1024;
export const DEFAULT_MAX_LABELS = 256;
const MAX_NODE_ID = 1024;
const MAX_VERSION_LABELS = 32;

/** What a stream proved about itself before its first request was handled. */
interface StreamIdentity {
  identity: WorkloadIdentity;
}

type Call = grpc.ServerDuplexStream<Buffer, Buffer>;

/** Why node metadata is refused, or undefined when it is within bounds. */
function metadataProblem(metadata: Record<string, unknown>, maxBytes: number, maxLabels: number): string | undefined {
  const size = Buffer.byteLength(JSON.stringify(metadata));
  if (size > maxBytes) return `node metadata is ${size} bytes; meshd accepts at most ${maxBytes}`;
  const labels = metadata.LABELS;
  if (labels && typeof labels === 'object') {
    const n = Object.keys(labels).length;
    if (n > maxLabels) return `node metadata LABELS has ${n} labels; meshd accepts at most ${maxLabels}`;
  }
  return undefined;
}

/** Failed pushes are retried after this long, doubling up to the cap. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

export class AdsServer {
  readonly connections = new Set<Connection>();
  private readonly queue: PushQueue<Connection>;
  private readonly hooks: ConnectionHooks;
  private readonly controlPlaneId: string;
  private readonly admission: StreamAdmission;
  /** Streams, by connection, so meshd can end them (drain, stall). */
  private readonly calls = new Map<Connection, Call>();
  /** Retry delays of connections whose last push failed. */
  private readonly retryDelays = new WeakMap<Connection, number>();
  private draining = false;
  /** Told when any proxy's distribution state may have changed (status tracking); must be cheap. */
  private readonly distributionListeners = new Set<() => void>();

  constructor(private readonly opts: AdsServerOptions) {
    this.controlPlaneId = opts.controlPlaneId ?? 'meshd';
    this.queue = new PushQueue<Connection>({
      concurrency: opts.pushConcurrency ?? 20,
      slotTimeoutMs: opts.pushSlotTimeoutMs ?? 1000,
      onError: (conn, err) => this.onPushError(conn, err),
    });
    this.admission = new StreamAdmission({ ratePerSecond: opts.admissionRate ?? 0, maxQueue: opts.admissionQueue ?? 10_000 });
    const m = opts.metrics;
    this.hooks = {
      onSent: (_conn, type, bytes) => {
        m.xdsPushes.inc({ type: SHORT_TYPE[type] });
        m.xdsConfigSize.observe({ type: SHORT_TYPE[type] }, bytes);
      },
      onAck: (_conn, _type, convergenceMs) => {
        if (convergenceMs !== undefined) m.proxyConvergenceTime.observe(convergenceMs / 1000);
        this.distributionChanged();
      },
      onFlushed: () => this.distributionChanged(),
      onNack: (conn, type, message) => {
        this.distributionChanged();
        m.xdsRejects.inc({ type: SHORT_TYPE[type] });
        opts.log.warn({ proxy: conn.id, type: SHORT_TYPE[type], error: message }, 'proxy rejected config (NACK)');
      },
      onStaleNonce: (_conn, type) => m.expiredNonce.inc({ type: SHORT_TYPE[type] }),
      onSecretRefused: (conn, name, reason) => {
        m.secretRefusals.inc({ reason });
        const id = conn.proxy.workloadIdentity;
        opts.log.warn(
          { proxy: conn.id, secret: clientText(name, 256), reason, ...(id ? { identity: `${id.namespace}/${id.serviceAccount}` } : {}), namespace: clientText(conn.ctx.proxy.namespace, 256) },
          reason === 'no-verified-identity'
            ? 'gateway credential withheld (sent empty): the stream proved no identity; connect with a service-account token (audience istio-ca) of the gateway\'s namespace'
            : "gateway credential withheld (sent empty): the stream's identity is not of the gateway's namespace",
        );
      },
    };
  }

  /** A push failed: stalled streams are detached; anything else is retried with backoff. */
  private onPushError(conn: Connection, err: unknown): void {
    if (conn.closed) return;
    if (err instanceof StreamStalledError) return; // onStalled handled it
    const delay = this.retryDelays.get(conn) ?? RETRY_FIRST_MS;
    this.retryDelays.set(conn, Math.min(delay * 2, RETRY_MAX_MS));
    this.opts.metrics.pushRetries.inc();
    this.opts.log.error({ proxy: conn.id, err: clientText(String(err), 1024), retryInMs: delay }, 'push failed; retrying');
    setTimeout(() => {
      if (!conn.closed) this.queue.enqueue(conn);
    }, delay).unref();
  }

  private onStalled(conn: Connection, call: Call): void {
    if (conn.closed || conn.stalled) return;
    conn.stalled = true;
    this.opts.metrics.stalledStreams.inc();
    const graceMs = this.opts.stallGraceMs ?? 30_000;
    this.opts.log.warn({ proxy: conn.id, sendTimeoutMs: this.opts.sendTimeoutMs ?? 10_000, graceMs }, 'xDS stream stalled (it takes no data); detached from pushes, closed unless it drains');
    setTimeout(() => {
      if (conn.closed || !conn.stalled) return;
      this.opts.metrics.stalledStreamsClosed.inc();
      this.opts.log.warn({ proxy: conn.id }, 'closing a stalled xDS stream');
      this.closeConnection(conn);
      abortStream(call);
    }, graceMs).unref();
  }

  private onDrained(conn: Connection): void {
    if (conn.closed || !conn.stalled) return;
    conn.stalled = false;
    this.opts.log.info({ proxy: conn.id }, 'stalled xDS stream drained; pushes resume');
    this.queue.enqueue(conn);
  }

  /** Registers the ADS service on a gRPC server. */
  register(server: grpc.Server): void {
    server.addService(ADS_SERVICE_DEFINITION, {
      StreamAggregatedResources: (call: Call) => this.handleStream(call, 'sotw'),
      DeltaAggregatedResources: (call: Call) => this.handleStream(call, 'delta'),
    });
  }

  /**
   * Calls `listener` whenever a proxy's distribution state may have changed: a push, an ACK
   * or NACK, a proxy that connected or left. Called often: it should only note the change.
   */
  onDistributionChange(listener: () => void): () => void {
    this.distributionListeners.add(listener);
    return () => this.distributionListeners.delete(listener);
  }

  private distributionChanged(): void {
    for (const l of this.distributionListeners) l();
  }

  /** Schedules a push to every connected proxy (a stalled one gets it when it drains). */
  push(req: PushRequest): void {
    this.distributionChanged();
    const start = performance.now();
    for (const conn of this.connections) {
      conn.schedule(req);
      if (!conn.stalled) this.queue.enqueue(conn);
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
    for (const c of [...this.connections]) {
      const call = this.calls.get(c);
      this.closeConnection(c);
      if (call) abortStream(call);
    }
    this.admission.stop();
  }

  /**
   * Stops taking new streams and ends the open ones spread evenly over `durationMs`, so
   * their proxies reconnect to another replica a few at a time rather than all at once.
   * Each stream ends with UNAVAILABLE, which proxies answer by reconnecting.
   */
  async drain(durationMs: number): Promise<void> {
    this.draining = true;
    const conns = [...this.connections];
    const step = conns.length > 0 ? durationMs / conns.length : 0;
    for (const c of conns) {
      const call = this.calls.get(c);
      if (!c.closed && call) {
        this.opts.metrics.drainedStreams.inc();
        this.closeConnection(c);
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'meshd is shutting down; reconnect to another replica' });
        // A stream whose writes are stuck cannot take a status: reset it a little later.
        setTimeout(() => abortStream(call), 2000).unref();
      }
      if (step > 0) await new Promise((r) => setTimeout(r, step));
    }
  }

  /**
   * The `version` label of pilot_xds: what proxies claim, but at most MAX_VERSION_LABELS
   * distinct values (the rest are "other"), so clients cannot grow the metric without bound.
   */
  private versionLabel(version: string): string {
    if (!version) return 'none';
    if (this.versionLabels.has(version)) return version;
    if (this.versionLabels.size >= MAX_VERSION_LABELS || !/^[\w.+-]{1,64}$/.test(version)) return 'other';
    this.versionLabels.add(version);
    return version;
  }
  private readonly versionLabels = new Set<string>();

  private closeConnection(conn: Connection): void {
    if (conn.closed) return;
    conn.close();
    this.connections.delete(conn);
    this.calls.delete(conn);
    this.opts.metrics.xdsClients.dec({ version: this.versionLabel(conn.proxy.istioVersion) });
    this.opts.log.info({ proxy: conn.id }, 'proxy disconnected');
    this.distributionChanged();
  }

  /** Turns on stream authentication (Bearer tokens) and SDS certificates for proven identities. */
  useWorkloadIdentity(o: { authenticator: Authenticator; workloadSecrets: WorkloadSecrets; trustDomain: string; systemNamespace?: string }): void {
    if (o.systemNamespace) this.opts.systemNamespace = o.systemNamespace;
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
    // Proxies whose certificate meshd makes (not those of Istio's agent, which makes its own).
    for (const conn of this.connections) if (conn.proxy.certificates?.source === 'meshd' && conn.proxy.workloadIdentity && identityKey(conn.proxy.workloadIdentity) === identity) yield conn;
  }

  private unknownType(conn: Connection, type: string): void {
    if (conn.onUnknownType(type)) {
      this.opts.log.info({ proxy: conn.id, type: clientText(type, 256), serves: [...KNOWN_TYPES] }, 'a proxy asked for a type meshd does not serve; answered with no resources');
    }
  }

  /** SDS `default` and `ROOTCA` for a proxy whose stream proved `identity`; pushed as soon as they are made. */
  private issueCertificate(conn: Connection, identity: WorkloadIdentity, fail: (code: grpc.status, details: string) => void): void {
    const secrets = this.opts.workloadSecrets;
    if (!secrets) return;
    secrets.workloadSecret(identity).then(
      (cert) => {
        if (conn.closed) return;
        conn.ownSecrets = [cert, secrets.rootSecret()];
        conn.scheduleType(TypeUrl.Secret);
        if (!conn.stalled) this.queue.enqueue(conn);
      },
      (err: unknown) => fail(grpc.status.INTERNAL, `cannot prepare the workload certificate: ${String(err)}`),
    );
  }

  /** Checks the stream's token, if it sent one. */
  private async authenticateStream(call: Call): Promise<StreamIdentity | undefined> {
    const header = call.metadata.get('authorization')[0];
    if (header === undefined) return undefined;
    const { authenticator, workloadSecrets } = this.opts;
    if (!authenticator || !workloadSecrets) {
      throw new AuthenticationError(grpc.status.UNAUTHENTICATED, 'this meshd cannot check tokens (no Kubernetes API): connect without an authorization header');
    }
    const caller = await authenticator.authenticate(String(header));
    const trustDomain = this.opts.trustDomain;
    if (!trustDomain) throw new AuthenticationError(grpc.status.INTERNAL, 'meshd has no trust domain for workload identities');
    return { identity: { namespace: caller.namespace, serviceAccount: caller.serviceAccount, trustDomain } };
  }

  private handleStream(call: Call, protocol: Protocol): void {
    let conn: Connection | undefined;
    const log = this.opts.log;
    let failed = false;
    const fail = (code: grpc.status, details: string): void => {
      if (failed) return;
      failed = true;
      details = clientText(details, 1024);
      log.warn({ peer: call.getPeer(), code: grpc.status[code], details }, 'rejecting xDS stream');
      this.opts.metrics.streamsRefused.inc({ reason: grpc.status[code] ?? String(code) });
      call.emit('error', { code, details });
    };
    if (this.draining) return fail(grpc.status.UNAVAILABLE, 'meshd is shutting down; connect to another replica');
    // Requests wait until the stream is admitted (rate limit) and its token (if any) is checked.
    let auth: StreamIdentity | undefined;
    let waiting: Buffer[] | undefined = [];
    let waitingBytes = 0;
    let withdraw: () => void = () => undefined;
    const admitted = new Promise<void>((resolve) => {
      try {
        withdraw = this.admission.admit(resolve);
      } catch (err) {
        if (err instanceof AdmissionRefused) fail(grpc.status.UNAVAILABLE, err.message);
        else throw err;
      }
    });
    this.opts.metrics.admissionQueue.set(this.admission.waiting);
    admitted
      .then(() => {
        this.opts.metrics.admissionQueue.set(this.admission.waiting);
        return call.destroyed || failed ? undefined : this.authenticateStream(call);
      })
      .then(
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
      if (failed) return;
      if (waiting) {
        // A stream may send ahead while it waits, but not without bound.
        waitingBytes += buf.length;
        if (waiting.length >= 16 || waitingBytes > 4 * 1024 * 1024) return fail(grpc.status.RESOURCE_EXHAUSTED, 'too many requests before the stream was admitted');
        waiting.push(buf);
      } else if (!call.destroyed) onData(buf);
    });
    const debug = new DebugStreamState();
    let debugSink: StreamSink | undefined;
    const onDebug = (type: string, names: string[], nonce: string): void => {
      if (debug.isReply(type, nonce)) return; // the ACK of our answer
      if (++debug.requests > MAX_DEBUG_REQUESTS_PER_STREAM) return fail(grpc.status.RESOURCE_EXHAUSTED, `at most ${MAX_DEBUG_REQUESTS_PER_STREAM} istio.io/debug/* requests per stream; open a new stream`);
      if (debug.writing) return; // one answer in flight per stream; the client asks again
      const caller = conn ? conn.proxy.workloadIdentity : auth?.identity;
      const out = answerDebugRequest(type, names, protocol, {
        caller,
        systemNamespace: this.opts.systemNamespace ?? 'istio-system',
        connections: this.connections,
        config: this.opts.generator,
        controlPlane: controlPlaneIdentifier(),
      });
      if (out.kind === 'refuse') return fail(out.code, out.details);
      debug.answered(type, out.nonce);
      debug.writing = true;
      debugSink ??= grpcStreamSink(call, { sendTimeoutMs: this.opts.sendTimeoutMs ?? 10_000, onStalled: () => abortStream(call), onDrained: () => undefined });
      debugSink.write(out.bytes).then(
        () => (debug.writing = false),
        () => abortStream(call),
      );
    };
    const onData = (buf: Buffer): void => {
      if (failed) return;
      try {
        if (protocol === 'sotw') {
          const req = decodeDiscoveryRequest(buf);
          if (req.type_url?.startsWith(DEBUG_TYPE_PREFIX)) return onDebug(req.type_url, req.resource_names ?? [], req.response_nonce ?? '');
          conn ??= this.open(call, protocol, req.node, fail, auth);
          if (!conn) return;
          const type = req.type_url ?? '';
          if (!KNOWN_TYPES.has(type)) return this.unknownType(conn, type);
          if (conn.onSotwRequest(type as TypeUrl, req.resource_names ?? [], req.response_nonce ?? '', req.version_info ?? '', req.error_detail) && !conn.stalled) this.queue.enqueue(conn);
        } else {
          const req = decodeDeltaDiscoveryRequest(buf);
          if (req.type_url?.startsWith(DEBUG_TYPE_PREFIX)) return onDebug(req.type_url, req.resource_names_subscribe ?? [], req.response_nonce ?? '');
          conn ??= this.open(call, protocol, req.node, fail, auth);
          if (!conn) return;
          const type = req.type_url ?? '';
          if (!KNOWN_TYPES.has(type)) return this.unknownType(conn, type);
          const owed = conn.onDeltaRequest(
            type as TypeUrl,
            req.resource_names_subscribe ?? [],
            req.resource_names_unsubscribe ?? [],
            req.initial_resource_versions ?? {},
            req.response_nonce ?? '',
            req.error_detail,
          );
          if (owed && !conn.stalled) this.queue.enqueue(conn);
        }
      } catch (err) {
        fail(grpc.status.INVALID_ARGUMENT, `cannot decode ${protocol === 'sotw' ? 'DiscoveryRequest' : 'DeltaDiscoveryRequest'}: ${String(err)}`);
      }
    };
    const close = (): void => {
      withdraw();
      waiting = undefined;
      if (conn) this.closeConnection(conn);
    };
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('close', close);
  }

  private open(call: Call, protocol: Protocol, node: ({ id?: string; metadata?: unknown } & ClientNode) | undefined, fail: (code: grpc.status, details: string) => void, auth: StreamIdentity | undefined): Connection | undefined {
    if (!this.opts.generator.snapshot) {
      fail(grpc.status.UNAVAILABLE, 'meshd has not loaded its configuration yet');
      return undefined;
    }
    let proxy: Proxy;
    try {
      const id = node?.id ?? '';
      if (id.length > MAX_NODE_ID) throw new NodeIdError(`node id is ${id.length} characters; meshd accepts at most ${MAX_NODE_ID}`);
      const metadata = structToJson(node?.metadata);
      const problem = metadataProblem(metadata, this.opts.maxMetadataBytes ?? DEFAULT_MAX_METADATA_BYTES, this.opts.maxLabels ?? DEFAULT_MAX_LABELS);
      if (problem) throw new NodeIdError(problem);
      proxy = parseProxy(id, metadata);
      if (auth) proxy.workloadIdentity = auth.identity;
      if (protocol === 'delta' && this.opts.vhds === true && supportsVhdsOverAds(node)) proxy.vhds = true;
      // Istio's agent makes the key in the pod and serves it (sds-grpc); other proxies with a
      // proven identity get theirs from meshd over this stream.
      const trustDomain = this.opts.trustDomain;
      if (proxy.agent && trustDomain) proxy.certificates = { source: 'agent', trustDomain };
      else if (auth) proxy.certificates = { source: 'meshd', trustDomain: auth.identity.trustDomain };
    } catch (err) {
      fail(grpc.status.INVALID_ARGUMENT, err instanceof NodeIdError ? err.message : String(err));
      return undefined;
    }
    const identity = this.opts.generator.identify(proxy);
    if (identity.disagreements.length > 0) {
      this.opts.log.warn({ proxy: proxy.id, disagreements: identity.disagreements }, 'proxy metadata disagrees with its Pod; using the Pod');
    }
    const m = this.opts.metrics;
    // eslint-disable-next-line prefer-const
    let conn: Connection;
    const sink = grpcStreamSink(call, {
      sendTimeoutMs: this.opts.sendTimeoutMs ?? 10_000,
      onStalled: () => this.onStalled(conn, call),
      onDrained: () => this.onDrained(conn),
      observeSendTime: (s) => m.xdsSendTime.observe(s),
    });
    conn = new Connection(proxy, protocol, this.opts.generator, sink, this.hooks, this.controlPlaneId);
    if (proxy.certificates?.source === 'meshd') this.issueCertificate(conn, proxy.workloadIdentity!, fail);
    this.connections.add(conn);
    this.calls.set(conn, call);
    m.xdsClients.inc({ version: this.versionLabel(proxy.istioVersion) });
    this.opts.log.info({ proxy: conn.id, protocol, class: clientText(conn.ctx.classKey, 512) }, 'proxy connected');
    return conn;
  }
}
