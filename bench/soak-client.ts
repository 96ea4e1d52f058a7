// The soak's simulated sidecars (bench/soak.ts drives this process over IPC): delta ADS
// clients exactly as bench/ads-clients.ts makes them (its SimProxy: CDS/LDS wildcard, EDS
// and RDS subscriptions, every response ACKed), but a changing population: on each `churn`
// some clients leave (stream cancelled) and as many fresh ones join, each with a new node id
// and IP, on a new gRPC channel (HTTP/2 connection) per round; a channel is closed once its
// last stream has gone.
import * as grpc from '@grpc/grpc-js';
import { SimProxy } from './ads-clients.js';
import { wallNow } from './ipc.js';

export type SoakCommand =
  | { cmd: 'start'; address: string; clients: number; perChannel: number; flowWindow: number; seed: number }
  /** `leave` random live clients disconnect; then clients join until `target` are live. */
  | { cmd: 'churn'; leave: number; target: number }
  | { cmd: 'stats' }
  /** Every client disconnects (the process stays). */
  | { cmd: 'leaveAll' }
  | { cmd: 'stop' };

export interface SoakClientStats {
  ev: 'stats';
  live: number;
  /** Live clients that have their full configuration (CDS, EDS for every EDS cluster, LDS, RDS). */
  synced: number;
  /** Live clients connected for more than 30 s without their full configuration. */
  stuck: number;
  joinedTotal: number;
  leftTotal: number;
  /** Since the previous `stats`: ms from connecting to full configuration, for clients that joined by churn. */
  syncMs: number[];
  /** Clients that left (by churn) before they had their full configuration, in total. */
  leftUnsynced: number;
  /** Streams that ended without the client asking (error or server end), in total, and a few messages. */
  unexpectedCloses: number;
  closeSamples: string[];
  channels: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  rssBytes: number;
}

export type SoakClientEvent =
  | { ev: 'started' }
  | { ev: 'churned'; left: number; joined: number; live: number }
  | { ev: 'leftAll' }
  | { ev: 'fatal'; message: string }
  | SoakClientStats;

interface Chan {
  client: grpc.Client;
  live: number;
  /** Still taking new streams (the channel of the current round). */
  open: boolean;
}

interface Member {
  p: SimProxy;
  ch: Chan;
  joinedAt: number;
  /** Joined by churn (not one of the initial clients): its sync time is reported. */
  churned: boolean;
  reported: boolean;
  leaving: boolean;
}

const live = new Set<Member>();
const channels = new Set<Chan>();
let address = '';
let perChannel = 50;
let opts: grpc.ChannelOptions = {};
let nextIndex = 0;
let joinedTotal = 0;
let leftTotal = 0;
let leftUnsynced = 0;
let unexpectedCloses = 0;
const closeSamples: string[] = [];
let syncMs: number[] = [];
let rand: () => number = Math.random;

/** mulberry32: a small seeded PRNG, so that a run's choices can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function send(ev: SoakClientEvent): void {
  process.send?.(ev);
}

function newChannel(): Chan {
  const ch: Chan = { client: new grpc.Client(address, grpc.credentials.createInsecure(), opts), live: 0, open: true };
  channels.add(ch);
  return ch;
}

function release(ch: Chan): void {
  ch.live--;
  if (ch.live <= 0 && !ch.open) {
    channels.delete(ch);
    ch.client.close();
  }
}

function closeChannel(ch: Chan): void {
  ch.open = false;
  if (ch.live <= 0) {
    channels.delete(ch);
    ch.client.close();
  }
}

/**
 * Node ids and IPs come from the index (ads-clients.ts: sidecar~10.1.<i/250>.<i%250+1>~client-<i>...);
 * they stay valid for i < 64000 (about 3.5 hours of the default churn), then indexes are reused.
 */
function join(ch: Chan, churned: boolean): void {
  if (nextIndex >= 64_000) nextIndex = 0;
  const p = new SimProxy(nextIndex++, 'delta');
  const m: Member = { p, ch, joinedAt: wallNow(), churned, reported: false, leaving: false };
  live.add(m);
  ch.live++;
  joinedTotal++;
  p.start(ch.client);
  let closed = false;
  const onClosed = (why: string): void => {
    if (closed) return;
    closed = true;
    if (m.leaving) return;
    unexpectedCloses++;
    if (closeSamples.length < 10) closeSamples.push(`client ${p.index}: ${why}`.slice(0, 300));
    live.delete(m);
    release(ch);
  };
  p.call!.on('error', (err: Error) => onClosed(err.message));
  p.call!.on('end', () => onClosed('stream ended by server'));
}

function leave(m: Member): void {
  m.leaving = true;
  live.delete(m);
  leftTotal++;
  if (m.p.fullAt === null) leftUnsynced++;
  else collect(m);
  m.p.call?.cancel();
  release(m.ch);
}

/** Notes a churned client's time to full configuration, once. */
function collect(m: Member): void {
  if (m.reported || m.p.fullAt === null) return;
  m.reported = true;
  if (m.churned) syncMs.push(m.p.fullAt - m.joinedAt);
}

function start(c: Extract<SoakCommand, { cmd: 'start' }>): void {
  address = c.address;
  perChannel = c.perChannel;
  rand = prng(c.seed);
  opts = {
    // Distinct channels must not share one HTTP/2 connection.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    'grpc-node.flow_control_window': c.flowWindow,
    'grpc.keepalive_time_ms': 60_000,
  };
  let ch: Chan | undefined;
  for (let i = 0; i < c.clients; i++) {
    if (i % perChannel === 0) {
      if (ch) closeChannel(ch);
      ch = newChannel();
    }
    join(ch!, false);
  }
  if (ch) closeChannel(ch);
  send({ ev: 'started' });
}

function churn(leaveCount: number, target: number): void {
  const members = [...live];
  // Partial Fisher-Yates: the first `n` are a uniform random choice.
  const n = Math.min(leaveCount, members.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (members.length - i));
    [members[i], members[j]] = [members[j]!, members[i]!];
  }
  for (const m of members.slice(0, n)) leave(m);
  let joined = 0;
  let ch: Chan | undefined;
  while (live.size < target) {
    if (!ch || ch.live >= perChannel) {
      if (ch) closeChannel(ch);
      ch = newChannel();
    }
    join(ch, true);
    joined++;
  }
  if (ch) closeChannel(ch);
  send({ ev: 'churned', left: n, joined, live: live.size });
}

function stats(): void {
  const now = wallNow();
  let synced = 0;
  let stuck = 0;
  for (const m of live) {
    if (m.p.fullAt !== null) {
      synced++;
      collect(m);
    } else if (now - m.joinedAt > 30_000) stuck++;
  }
  const u = process.resourceUsage();
  send({
    ev: 'stats',
    live: live.size,
    synced,
    stuck,
    joinedTotal,
    leftTotal,
    syncMs,
    leftUnsynced,
    unexpectedCloses,
    closeSamples,
    channels: channels.size,
    cpuUserMs: u.userCPUTime / 1000,
    cpuSystemMs: u.systemCPUTime / 1000,
    rssBytes: process.memoryUsage.rss(),
  });
  syncMs = [];
}

function handle(m: SoakCommand): void {
  switch (m.cmd) {
    case 'start':
      start(m);
      break;
    case 'churn':
      churn(m.leave, m.target);
      break;
    case 'stats':
      stats();
      break;
    case 'leaveAll':
      for (const x of [...live]) leave(x);
      send({ ev: 'leftAll' });
      break;
    case 'stop':
      for (const x of [...live]) leave(x);
      for (const ch of channels) ch.client.close();
      setTimeout(() => process.exit(0), 200).unref();
      break;
  }
}

if (!process.send) {
  console.error('bench/soak-client: run me from bench/soak.js (needs an IPC channel)');
  process.exit(2);
}
process.on('message', (m: SoakCommand) => {
  try {
    handle(m);
  } catch (err) {
    send({ ev: 'fatal', message: String(err instanceof Error ? err.stack : err) });
  }
});
// The orchestrator going away ends this process too.
process.on('disconnect', () => process.exit(0));
