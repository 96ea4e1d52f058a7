// Simulated Envoy sidecars for the benchmark: many ADS streams (SotW or delta) in one
// Node process, driven by bench/run.ts over IPC. Each behaves like Envoy: CDS and LDS
// wildcard, EDS for every EDS cluster, RDS for every route its listeners name, VHDS
// (a VirtualHost wildcard over delta, as Envoy's ADS VHDS watches) once a route
// configuration names it, and an ACK for every response. Responses are read at the envelope level only; resource
// bodies are decoded once per distinct version and shared by all clients.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { messageType } from '../src/xds/protos.js';
import { SHORT_TYPE, TypeUrl } from '../src/translate/types.js';
import { fieldIds } from '../src/xds/wire.js';
import { FieldScanner, WIRE_LEN, lenField, stringField, varintField } from './proto-scan.js';
import { wallNow, type ClientEvent, type Command, type StartCommand, type WatchSpec, type XdsProtocol } from './ipc.js';

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService/';
const SHORT: Record<string, string> = SHORT_TYPE;
const ids = fieldIds;

const F = {
  req: ids('envoy.service.discovery.v3.DiscoveryRequest', ['version_info', 'node', 'resource_names', 'type_url', 'response_nonce']),
  dreq: ids('envoy.service.discovery.v3.DeltaDiscoveryRequest', ['node', 'type_url', 'resource_names_subscribe', 'resource_names_unsubscribe', 'response_nonce']),
  res: ids('envoy.service.discovery.v3.DiscoveryResponse', ['version_info', 'resources', 'type_url', 'nonce']),
  dres: ids('envoy.service.discovery.v3.DeltaDiscoveryResponse', ['system_version_info', 'resources', 'type_url', 'removed_resources', 'nonce']),
  resource: ids('envoy.service.discovery.v3.Resource', ['name', 'version', 'resource']),
  any: ids('google.protobuf.Any', ['type_url', 'value']),
  cluster: ids('envoy.config.cluster.v3.Cluster', ['name', 'type']),
  cla: ids('envoy.config.endpoint.v3.ClusterLoadAssignment', ['cluster_name']),
  route: ids('envoy.config.route.v3.RouteConfiguration', ['name', 'vhds']),
};
/** Per RDS resource version (delta): whether the route configuration takes its virtual hosts over VHDS. */
const routeNamesVhds = new Map<string, boolean>();
const EDS_TYPE = (messageType('envoy.config.cluster.v3.Cluster').lookupEnum('DiscoveryType').values as Record<string, number>).EDS!;
const LEN_TAG = (id: number): number => (id << 3) | WIRE_LEN;

// ---- names shared by all clients --------------------------------------------------------

/** Resource names to small integers, so per-client sets are bitmaps. */
const nameIds = new Map<string, number>();
function nameId(name: string): number {
  let i = nameIds.get(name);
  if (i === undefined) nameIds.set(name, (i = nameIds.size));
  return i;
}

class BitSet {
  private bits = new Uint8Array(256);
  count = 0;
  has(i: number): boolean {
    return i < this.bits.length * 8 && (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }
  add(i: number): boolean {
    if (i >= this.bits.length * 8) {
      const next = new Uint8Array(Math.max(this.bits.length * 2, (i >> 3) + 1));
      next.set(this.bits);
      this.bits = next;
    }
    if (this.has(i)) return false;
    this.bits[i >> 3]! |= 1 << (i & 7);
    this.count++;
    return true;
  }
  delete(i: number): void {
    if (!this.has(i)) return;
    this.bits[i >> 3]! &= ~(1 << (i & 7));
    this.count--;
  }
  clear(): void {
    this.bits.fill(0);
    this.count = 0;
  }
}

/** A set of resource names as a SotW request carries it, encoded once and shared. */
interface NameList {
  key: string;
  names: string[];
  ids: number[];
  set: ReadonlySet<string>;
  /** The `resource_names` fields of a DiscoveryRequest, pre-encoded. */
  block: Buffer;
}
const nameLists = new Map<string, NameList>();
function nameList(names: string[]): NameList {
  const sorted = [...new Set(names)].sort();
  const key = sorted.join('\n');
  let l = nameLists.get(key);
  if (!l) {
    const w = protobuf.Writer.create();
    for (const n of sorted) w.uint32(LEN_TAG(F.req.resource_names!)).string(n);
    l = { key, names: sorted, ids: sorted.map(nameId), set: new Set(sorted), block: Buffer.from(w.finish()) };
    nameLists.set(key, l);
  }
  return l;
}

// ---- decoding, memoised by content version ----------------------------------------------

/** SotW CDS: version_info -> the EDS cluster names of that response. */
const cdsByVersion = new Map<string, NameList>();
/** Delta CDS: resource version -> is an EDS cluster. */
const clusterIsEds = new Map<string, boolean>();
/** LDS: (SotW version | delta name+version) -> route names its listeners use. */
const routesByKey = new Map<string, string[]>();
/** For the armed service watch: RDS content key -> contains the new host. */
let rdsHasHost = new Map<string, boolean>();

const Listener = messageType('envoy.config.listener.v3.Listener');
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const Hcm = messageType(HCM_TYPE);

interface AnyMsg {
  type_url?: string;
  value?: Uint8Array;
}
interface ListenerMsg {
  filter_chains?: { filters?: { typed_config?: AnyMsg }[] }[];
  default_filter_chain?: { filters?: { typed_config?: AnyMsg }[] };
}

function listenerRoutes(value: Uint8Array): string[] {
  const l = Listener.decode(value) as unknown as ListenerMsg;
  const out: string[] = [];
  const chains = [...(l.filter_chains ?? []), ...(l.default_filter_chain ? [l.default_filter_chain] : [])];
  for (const c of chains) {
    for (const f of c.filters ?? []) {
      const tc = f.typed_config;
      if (!tc?.type_url?.endsWith(HCM_TYPE) || !tc.value) continue;
      const h = Hcm.decode(tc.value) as unknown as { rds?: { route_config_name?: string } };
      if (h.rds?.route_config_name) out.push(h.rds.route_config_name);
    }
  }
  return out;
}

/** Bounds of the `value` of the Any in buf[start, end). */
function anyValue(buf: Buffer, start: number, end: number): [number, number] {
  return lenField(buf, F.any.value!, start, end) ?? [end, end];
}

interface Envelope {
  typeUrl: string;
  version: string;
  nonce: string;
  /** SotW: bounds of each Any's value. Delta: bounds of each Any value, with name and version. */
  resources: { name: string; version: string; start: number; end: number }[];
  removed: string[];
}

function readSotw(buf: Buffer): Envelope {
  const e: Envelope = { typeUrl: '', version: '', nonce: '', resources: [], removed: [] };
  const anys: [number, number][] = [];
  const s = new FieldScanner(buf);
  while (s.next()) {
    if (s.wire !== WIRE_LEN) continue;
    if (s.id === F.res.version_info) e.version = s.text();
    else if (s.id === F.res.type_url) e.typeUrl = s.text();
    else if (s.id === F.res.nonce) e.nonce = s.text();
    else if (s.id === F.res.resources) anys.push([s.start, s.end]);
  }
  const nameField = e.typeUrl === TypeUrl.ClusterLoadAssignment ? F.cla.cluster_name! : e.typeUrl === TypeUrl.Cluster ? F.cluster.name! : F.route.name!;
  for (const [a, b] of anys) {
    const [start, end] = anyValue(buf, a, b);
    // Cluster names are only needed on a CDS version not seen before (see onSotwCds).
    const name = e.typeUrl === TypeUrl.Cluster || e.typeUrl === TypeUrl.Listener ? '' : (stringField(buf, nameField, start, end) ?? '');
    e.resources.push({ name, version: '', start, end });
  }
  return e;
}

function readDelta(buf: Buffer): Envelope {
  const e: Envelope = { typeUrl: '', version: '', nonce: '', resources: [], removed: [] };
  const wrappers: [number, number][] = [];
  const s = new FieldScanner(buf);
  while (s.next()) {
    if (s.wire !== WIRE_LEN) continue;
    if (s.id === F.dres.system_version_info) e.version = s.text();
    else if (s.id === F.dres.type_url) e.typeUrl = s.text();
    else if (s.id === F.dres.nonce) e.nonce = s.text();
    else if (s.id === F.dres.removed_resources) e.removed.push(s.text());
    else if (s.id === F.dres.resources) wrappers.push([s.start, s.end]);
  }
  // Versions are only looked at for CDS, LDS and RDS (decoding caches), not for EDS.
  const wantVersion = e.typeUrl !== TypeUrl.ClusterLoadAssignment;
  for (const [a, b] of wrappers) {
    let name = '';
    let version = '';
    let start = b;
    let end = b;
    const r = new FieldScanner(buf, a, b);
    while (r.next()) {
      if (r.wire !== WIRE_LEN) continue;
      if (r.id === F.resource.name) name = r.text();
      else if (r.id === F.resource.version && wantVersion) version = r.text();
      else if (r.id === F.resource.resource) [start, end] = anyValue(buf, r.start, r.end);
    }
    e.resources.push({ name, version, start, end });
  }
  return e;
}

// ---- requests ---------------------------------------------------------------------------

function sotwRequest(typeUrl: string, version: string, nonce: string, names?: NameList, node?: Uint8Array): Buffer {
  const w = protobuf.Writer.create();
  if (node) w.uint32(LEN_TAG(F.req.node!)).bytes(node);
  if (version) w.uint32(LEN_TAG(F.req.version_info!)).string(version);
  w.uint32(LEN_TAG(F.req.type_url!)).string(typeUrl);
  if (nonce) w.uint32(LEN_TAG(F.req.response_nonce!)).string(nonce);
  const head = w.finish();
  // Concatenated protobuf encodings merge: the shared names block is appended as is.
  return names && names.block.length ? Buffer.concat([head, names.block]) : Buffer.from(head);
}

function deltaRequest(typeUrl: string, nonce: string, subscribe: readonly string[] = [], unsubscribe: readonly string[] = [], node?: Uint8Array): Buffer {
  const w = protobuf.Writer.create();
  if (node) w.uint32(LEN_TAG(F.dreq.node!)).bytes(node);
  w.uint32(LEN_TAG(F.dreq.type_url!)).string(typeUrl);
  for (const n of subscribe) w.uint32(LEN_TAG(F.dreq.resource_names_subscribe!)).string(n);
  for (const n of unsubscribe) w.uint32(LEN_TAG(F.dreq.resource_names_unsubscribe!)).string(n);
  if (nonce) w.uint32(LEN_TAG(F.dreq.response_nonce!)).string(nonce);
  return Buffer.from(w.finish());
}

function nodeBytes(i: number): Uint8Array {
  const ip = `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  const pod = `client-${i}`;
  const Node = messageType('envoy.config.core.v3.Node');
  const str = (v: string): Record<string, unknown> => ({ stringValue: v });
  return Node.encode(
    Node.fromObject({
      id: `sidecar~${ip}~${pod}.default~default.svc.cluster.local`,
      cluster: `${pod}.default`,
      user_agent_name: 'envoy',
      // As Envoy 1.40 says it: meshd offers VHDS to Envoys from 1.38 on (src/xds/vhds-support.ts).
      user_agent_build_version: { version: { major_number: 1, minor_number: 40, patch: 0 } },
      metadata: {
        fields: {
          NAMESPACE: str('default'),
          INSTANCE_IPS: str(ip),
          ISTIO_VERSION: str('bench'),
          LABELS: { structValue: { fields: { app: str('bench-client') } } },
        },
      },
    }),
  ).finish();
}

// ---- one simulated proxy ----------------------------------------------------------------

interface WatchState {
  bytes0: number;
  msgs0: number;
  cdsAt: number | null;
  edsAt: number | null;
  rdsAt: number | null;
  doneAt: number | null;
}

let watch: (WatchSpec & { needleBytes: Buffer }) | undefined;
let watchDone = 0;
let fullCount = 0;
let open = 0;
let errors = 0;
const errorSamples: string[] = [];
let byTypeSinceArm: Record<string, number> = {};
let clients: SimProxy[] = [];
let startedAt = 0;

const outbox: [SimProxy, Buffer][] = [];
function flushOutbox(): void {
  const batch = outbox.splice(0);
  for (const [p, b] of batch) p.transmit(b);
}

function send(ev: ClientEvent): void {
  process.send?.(ev);
}

/** One simulated sidecar; also used by bench/soak-client.ts (clients that come and go). */
export class SimProxy {
  bytes = 0;
  messages = 0;
  /** Responses by short type. */
  readonly received: Record<string, number> = {};
  fullAt: number | null = null;
  call: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  private node: Uint8Array | undefined;
  // What has arrived, for the initial full-config check.
  private cds = false;
  private lds = false;
  private readonly edsSub = new BitSet();
  private readonly edsGot = new BitSet();
  private routes: string[] = [];
  private readonly routesGot = new Set<string>();
  // SotW subscription state.
  private edsNames: NameList | undefined;
  private rdsNames: NameList | undefined;
  private readonly last = new Map<string, { version: string; nonce: string }>();
  // Delta: route names per listener, for the RDS subscription.
  private readonly listenerRoutes = new Map<string, string[]>();
  /** Delta: a route configuration named VHDS, so the VirtualHost watch is open; and virtual hosts arrived. */
  private vhds = false;
  private vhostsGot = false;
  w: WatchState = { bytes0: 0, msgs0: 0, cdsAt: null, edsAt: null, rdsAt: null, doneAt: null };

  constructor(
    readonly index: number,
    readonly protocol: XdsProtocol,
  ) {
    this.node = nodeBytes(index);
  }

  start(client: grpc.Client): void {
    const method = this.protocol === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources';
    const call = client.makeBidiStreamRequest(
      ADS + method,
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    this.call = call;
    open++;
    let closed = false;
    const onClosed = (why: string): void => {
      if (closed) return;
      closed = true;
      open--;
      errors++;
      if (errorSamples.length < 5) errorSamples.push(`client ${this.index}: ${why}`);
    };
    call.on('data', (buf: Buffer) => {
      try {
        this.onResponse(buf);
      } catch (err) {
        onClosed(`bad response: ${String(err)}`);
        call.cancel();
      }
    });
    call.on('error', (err: Error) => onClosed(err.message));
    call.on('end', () => onClosed('stream ended by server'));
    if (this.protocol === 'sotw') {
      this.write(sotwRequest(TypeUrl.Cluster, '', '', undefined, this.takeNode()));
      this.write(sotwRequest(TypeUrl.Listener, '', ''));
    } else {
      this.write(deltaRequest(TypeUrl.Cluster, '', ['*'], [], this.takeNode()));
      this.write(deltaRequest(TypeUrl.Listener, '', ['*']));
    }
  }

  /** Envoy sends its node on the first request of a stream only. */
  private takeNode(): Uint8Array | undefined {
    const n = this.node;
    this.node = undefined;
    return n;
  }

  /**
   * Requests go out at the end of this event-loop turn, after every response that arrived
   * in it was timestamped: with 1000 streams in one process, writing (gRPC framing, copies)
   * in line would delay the arrival times of the responses behind it.
   */
  private write(b: Buffer): void {
    if (outbox.length === 0) setImmediate(flushOutbox);
    outbox.push([this, b]);
  }

  transmit(b: Buffer): void {
    this.call?.write(b);
  }

  private onResponse(buf: Buffer): void {
    const t = wallNow();
    this.bytes += buf.length;
    this.messages++;
    const e = this.protocol === 'sotw' ? readSotw(buf) : readDelta(buf);
    const short = SHORT[e.typeUrl] ?? e.typeUrl;
    this.received[short] = (this.received[short] ?? 0) + 1;
    if (watch) byTypeSinceArm[short] = (byTypeSinceArm[short] ?? 0) + 1;
    switch (e.typeUrl) {
      case TypeUrl.Cluster:
        this.onClusters(buf, e, t);
        break;
      case TypeUrl.ClusterLoadAssignment:
        this.onEndpoints(buf, e, t);
        break;
      case TypeUrl.Listener:
        this.onListeners(buf, e);
        break;
      case TypeUrl.RouteConfiguration:
        this.onRoutes(buf, e, t);
        break;
      case TypeUrl.VirtualHost:
        this.onVirtualHosts(e, t);
        break;
      default:
        this.ack(e);
    }
    this.checkFull(t);
    this.checkWatch();
  }

  private ack(e: Envelope, names?: NameList): void {
    this.last.set(e.typeUrl, { version: e.version, nonce: e.nonce });
    this.write(this.protocol === 'sotw' ? sotwRequest(e.typeUrl, e.version, e.nonce, names) : deltaRequest(e.typeUrl, e.nonce));
  }

  /** A SotW request changing the names of a type, carrying the last version and nonce seen. */
  private resubscribe(typeUrl: string, names: NameList): void {
    const l = this.last.get(typeUrl) ?? { version: '', nonce: '' };
    this.write(sotwRequest(typeUrl, l.version, l.nonce, names));
  }

  private onClusters(buf: Buffer, e: Envelope, t: number): void {
    this.cds = true;
    if (this.protocol === 'sotw') {
      let list = cdsByVersion.get(e.version);
      if (!list) {
        const eds: string[] = [];
        const all: string[] = [];
        for (const r of e.resources) {
          const name = stringField(buf, F.cluster.name!, r.start, r.end) ?? '';
          all.push(name);
          if (varintField(buf, F.cluster.type!, r.start, r.end) === EDS_TYPE) eds.push(name);
        }
        list = nameList(eds);
        // Remember every cluster name of this version too, for service watches.
        cdsByVersion.set(e.version, list);
        cdsAllByVersion.set(e.version, new Set(all));
      }
      // Like Envoy: endpoints for new clusters are requested, then CDS is acknowledged.
      if (list !== this.edsNames) {
        this.edsNames = list;
        this.edsSub.clear();
        for (const i of list.ids) this.edsSub.add(i);
        this.resubscribe(TypeUrl.ClusterLoadAssignment, list);
      }
      this.ack(e);
      if (watch?.kind === 'service' && this.w.cdsAt === null && cdsAllByVersion.get(e.version)?.has(watch.cluster)) this.w.cdsAt = t;
      return;
    }
    const subscribe: string[] = [];
    for (const r of e.resources) {
      // The version is a hash of the content, name included.
      let eds = clusterIsEds.get(r.version);
      if (eds === undefined) clusterIsEds.set(r.version, (eds = varintField(buf, F.cluster.type!, r.start, r.end) === EDS_TYPE));
      if (eds && this.edsSub.add(nameId(r.name))) subscribe.push(r.name);
      if (watch?.kind === 'service' && this.w.cdsAt === null && r.name === watch.cluster) this.w.cdsAt = t;
    }
    const unsubscribe: string[] = [];
    for (const n of e.removed) {
      const i = nameId(n);
      if (this.edsSub.has(i)) {
        this.edsSub.delete(i);
        unsubscribe.push(n);
      }
    }
    if (subscribe.length || unsubscribe.length) this.write(deltaRequest(TypeUrl.ClusterLoadAssignment, '', subscribe, unsubscribe));
    this.ack(e);
  }

  private onEndpoints(buf: Buffer, e: Envelope, t: number): void {
    for (const r of e.resources) {
      const i = nameId(r.name);
      if (this.edsSub.has(i)) this.edsGot.add(i);
      if (watch && watch.kind !== 'route' && this.w.edsAt === null && r.name === watch.cluster) {
        if (watch.kind === 'service' || buf.subarray(r.start, r.end).indexOf(watch.needleBytes) >= 0) this.w.edsAt = t;
      }
    }
    this.ack(e, this.edsNames);
  }

  private onListeners(buf: Buffer, e: Envelope): void {
    this.lds = true;
    let routes: string[];
    if (this.protocol === 'sotw') {
      let r = routesByKey.get(`sotw\n${e.version}`);
      if (!r) {
        r = [...new Set(e.resources.flatMap((x) => listenerRoutes(buf.subarray(x.start, x.end))))].sort();
        routesByKey.set(`sotw\n${e.version}`, r);
      }
      routes = r;
    } else {
      for (const x of e.resources) {
        const key = `${x.name}\n${x.version}`;
        let r = routesByKey.get(key);
        if (!r) routesByKey.set(key, (r = listenerRoutes(buf.subarray(x.start, x.end))));
        this.listenerRoutes.set(x.name, r);
      }
      for (const n of e.removed) this.listenerRoutes.delete(n);
      routes = [...new Set([...this.listenerRoutes.values()].flat())].sort();
    }
    const added = routes.filter((n) => !this.routes.includes(n));
    const removed = this.routes.filter((n) => !routes.includes(n));
    this.routes = routes;
    // Like Envoy: the listeners' routes are requested, then LDS is acknowledged.
    if (added.length || removed.length) {
      if (this.protocol === 'sotw') {
        this.rdsNames = nameList(routes);
        this.resubscribe(TypeUrl.RouteConfiguration, this.rdsNames);
      } else this.write(deltaRequest(TypeUrl.RouteConfiguration, '', added, removed));
    }
    this.ack(e);
  }

  private onRoutes(buf: Buffer, e: Envelope, t: number): void {
    for (const r of e.resources) {
      this.routesGot.add(r.name);
      if (this.protocol === 'delta' && !this.vhds) {
        let named = routeNamesVhds.get(r.version);
        if (named === undefined) routeNamesVhds.set(r.version, (named = lenField(buf, F.route.vhds!, r.start, r.end) !== undefined));
        if (named) {
          // Like Envoy: the first route configuration naming VHDS opens the (wildcard) VirtualHost watch.
          this.vhds = true;
          this.write(deltaRequest(TypeUrl.VirtualHost, ''));
        }
      }
      if (watch?.kind === 'route' && this.w.rdsAt === null && r.name === watch.route) this.w.rdsAt = t;
      if (watch?.kind === 'service' && this.w.rdsAt === null && r.name === watch.route) {
        const key = `${this.protocol}\n${this.protocol === 'sotw' ? e.version : r.version}`;
        let has = rdsHasHost.get(key);
        if (has === undefined) rdsHasHost.set(key, (has = buf.subarray(r.start, r.end).indexOf(watch.needleBytes) >= 0));
        if (has) this.w.rdsAt = t;
      }
    }
    this.ack(e, this.rdsNames);
  }

  /** VHDS: a route edit or a new service arrives as virtual hosts `<route>/<host>:<port>`. */
  private onVirtualHosts(e: Envelope, t: number): void {
    this.vhostsGot = true;
    for (const r of e.resources) {
      if (this.w.rdsAt !== null || !watch) break;
      if (watch.kind === 'route' && r.name.startsWith(`${watch.route}/`)) this.w.rdsAt = t;
      if (watch.kind === 'service' && r.name.startsWith(`${watch.route}/${watch.host}:`)) this.w.rdsAt = t;
    }
    this.ack(e);
  }

  private checkFull(t: number): void {
    if (this.fullAt !== null) return;
    if (!this.cds || !this.lds || this.routes.length === 0 || this.edsSub.count === 0) return;
    if (this.vhds && !this.vhostsGot) return;
    if (this.edsGot.count < this.edsSub.count) return;
    for (const r of this.routes) if (!this.routesGot.has(r)) return;
    this.fullAt = t;
    if (++fullCount === clients.length) send({ ev: 'initialDone', at: t });
  }

  private checkWatch(): void {
    const w = this.w;
    if (!watch || w.doneAt !== null) return;
    if (watch.kind === 'eds') {
      if (w.edsAt === null) return;
      w.doneAt = w.edsAt;
    } else if (watch.kind === 'route') {
      if (w.rdsAt === null) return;
      w.doneAt = w.rdsAt;
    } else {
      if (w.cdsAt === null || w.edsAt === null || w.rdsAt === null) return;
      w.doneAt = Math.max(w.cdsAt, w.edsAt, w.rdsAt);
    }
    if (++watchDone === clients.length) send({ ev: 'watchDone', id: watch.id, at: wallNow() });
  }

  arm(): void {
    this.w = { bytes0: this.bytes, msgs0: this.messages, cdsAt: null, edsAt: null, rdsAt: null, doneAt: null };
  }

  /** The routes and EDS clusters this client subscribed to. */
  subscriptions(): { eds: number; routes: number } {
    return { eds: this.edsSub.count, routes: this.routes.length };
  }
}

/** SotW CDS: version_info -> every cluster name of that response. */
const cdsAllByVersion = new Map<string, Set<string>>();

// ---- commands ---------------------------------------------------------------------------

const channels: grpc.Client[] = [];

function start(c: StartCommand): void {
  startedAt = wallNow();
  const opts: grpc.ChannelOptions = {
    // Distinct channels must not share one HTTP/2 connection.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    'grpc-node.flow_control_window': c.flowWindow,
    'grpc.keepalive_time_ms': 60_000,
  };
  clients = [];
  for (let i = 0; i < c.clients; i++) {
    if (i % c.perChannel === 0) channels.push(new grpc.Client(c.address, grpc.credentials.createInsecure(), opts));
    clients.push(new SimProxy(i, c.protocol));
  }
  clients.forEach((p, i) => p.start(channels[Math.floor(i / c.perChannel)]!));
  send({ ev: 'started', at: startedAt });
  if (process.env.BENCH_PROGRESS === '1') {
    // Diagnostics: what has arrived so far, every second, until every client is synced.
    const timer = setInterval(() => {
      const got: Record<string, number> = {};
      for (const p of clients) for (const [k, v] of Object.entries(p.received)) got[k] = (got[k] ?? 0) + v;
      const mb = clients.reduce((n, p) => n + p.bytes, 0) / 1024 / 1024;
      process.stderr.write(`  clients +${((wallNow() - startedAt) / 1000).toFixed(1)} s: open ${open}, full ${fullCount}, ${mb.toFixed(0)} MiB, responses ${JSON.stringify(got)}\n`);
      if (fullCount === clients.length) clearInterval(timer);
    }, 1000);
    timer.unref();
  }
}

function handle(m: Command): void {
  switch (m.cmd) {
    case 'start':
      start(m);
      break;
    case 'initial': {
      const sub = clients[0]?.subscriptions() ?? { eds: 0, routes: 0 };
      send({
        ev: 'initial',
        startedAt,
        fullAt: clients.map((c) => c.fullAt),
        bytes: clients.map((c) => c.bytes),
        messages: clients.map((c) => c.messages),
        edsClusters: sub.eds,
        routes: sub.routes,
      });
      break;
    }
    case 'arm':
      watch = { ...m.watch, needleBytes: Buffer.from(m.watch.kind === 'eds' ? m.watch.needle : m.watch.kind === 'service' ? m.watch.host : '') };
      watchDone = 0;
      rdsHasHost = new Map();
      byTypeSinceArm = {};
      for (const c of clients) c.arm();
      send({ ev: 'armed', id: m.watch.id });
      break;
    case 'collect': {
      const ws = clients.map((c) => c.w);
      send({
        ev: 'collected',
        id: m.id,
        doneAt: ws.map((w) => w.doneAt),
        cdsAt: ws.map((w) => w.cdsAt),
        edsAt: ws.map((w) => w.edsAt),
        rdsAt: ws.map((w) => w.rdsAt),
        bytes: clients.map((c) => c.bytes - c.w.bytes0),
        messages: clients.map((c) => c.messages - c.w.msgs0),
        byType: { ...byTypeSinceArm },
      });
      watch = undefined;
      break;
    }
    case 'stats': {
      const u = process.resourceUsage();
      send({
        ev: 'stats',
        open,
        errors,
        errorSamples,
        cpuUserMs: u.userCPUTime / 1000,
        cpuSystemMs: u.systemCPUTime / 1000,
        rssBytes: process.memoryUsage.rss(),
        maxRssBytes: u.maxRSS * 1024,
      });
      break;
    }
    case 'stop':
      for (const c of clients) c.call?.cancel();
      for (const ch of channels) ch.close();
      setTimeout(() => process.exit(0), 200).unref();
      break;
  }
}

/** This file is the process (forked by bench/run.ts), not a module imported for SimProxy. */
function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  if (!process.send) {
    console.error('bench/ads-clients: run me from bench/run.js (needs an IPC channel)');
    process.exit(2);
  }
  process.on('message', (m: Command) => {
    try {
      handle(m);
    } catch (err) {
      send({ ev: 'fatal', message: String(err instanceof Error ? err.stack : err) });
    }
  });
  // The orchestrator going away ends this process too.
  process.on('disconnect', () => process.exit(0));
}
