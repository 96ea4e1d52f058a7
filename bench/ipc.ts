// Messages between the benchmark orchestrator (bench/run.ts) and the simulated-proxy
// process (bench/ads-clients.ts), over Node's child-process IPC channel.

export type XdsProtocol = 'sotw' | 'delta';

export interface StartCommand {
  cmd: 'start';
  address: string;
  clients: number;
  protocol: XdsProtocol;
  /** Streams per gRPC channel (each channel has its own HTTP/2 connection). */
  perChannel: number;
  /** HTTP/2 receive window per stream and connection, bytes. */
  flowWindow: number;
}

/** A change the clients should look for in what they receive. */
export type WatchSpec =
  /** An EDS update: the ClusterLoadAssignment `cluster` now contains the address `needle`. */
  | { id: number; kind: 'eds'; cluster: string; needle: string }
  /** A new service: its cluster (CDS), its endpoints (EDS) and a virtual host naming `host` in route `route` (RDS). */
  | { id: number; kind: 'service'; cluster: string; host: string; route: string }
  /** A route change: a new RDS response carrying route `route` (delta sends a route only when it changed). */
  | { id: number; kind: 'route'; route: string };

export type Command =
  | StartCommand
  | { cmd: 'arm'; watch: WatchSpec }
  | { cmd: 'collect'; id: number }
  | { cmd: 'initial' }
  | { cmd: 'stats' }
  | { cmd: 'stop' };

/** Times are wall-clock milliseconds (performance.timeOrigin + performance.now()). */
export interface InitialReport {
  ev: 'initial';
  /** When the process began opening streams. */
  startedAt: number;
  /** Per client: when CDS, EDS (every subscribed cluster), LDS and RDS had all arrived; null if never. */
  fullAt: (number | null)[];
  /** Per client: bytes received up to now. */
  bytes: number[];
  /** Per client: responses received up to now. */
  messages: number[];
  /** Clusters subscribed over EDS by client 0, routes by client 0. */
  edsClusters: number;
  routes: number;
}

export interface WatchReport {
  ev: 'collected';
  id: number;
  /** Per client: when the change was fully received (null if not). */
  doneAt: (number | null)[];
  /** Per client, for service watches: when CDS, EDS and RDS carried it. */
  cdsAt: (number | null)[];
  edsAt: (number | null)[];
  rdsAt: (number | null)[];
  /** Per client: bytes and responses received since the watch was armed. */
  bytes: number[];
  messages: number[];
  /** Per client: responses by short type since armed. */
  byType: Record<string, number>;
}

export interface StatsReport {
  ev: 'stats';
  open: number;
  errors: number;
  errorSamples: string[];
  cpuUserMs: number;
  cpuSystemMs: number;
  rssBytes: number;
  maxRssBytes: number;
}

export type ClientEvent =
  | { ev: 'started'; at: number }
  | { ev: 'initialDone'; at: number }
  | { ev: 'armed'; id: number }
  | { ev: 'watchDone'; id: number; at: number }
  | { ev: 'fatal'; message: string }
  | InitialReport
  | WatchReport
  | StatsReport;

export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
