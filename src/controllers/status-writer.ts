// Writes status on the Istio objects meshd reads from the cluster (Gateway, VirtualService,
// DestinationRule, PeerAuthentication, AuthorizationPolicy, RequestAuthentication, Sidecar, ServiceEntry, WorkloadEntry): whether each was accepted and whether its proxies
// have it (istio-status.ts says what). Runs on the replica holding the leader Lease only,
// so two replicas that see things differently never write against each other.
//
// Passes: any change (a snapshot, an ACK or NACK, an object event) schedules a pass, at
// most one per `minPassIntervalMs`; a pass computes every object's status (objects x proxy
// groups) and queues the objects whose stored status differs (lastTransitionTime aside).
// The queue is a set: an object edited ten times between writes is written once. Writes
// are merge patches of the status subresource, at most `writeRate` per second. meshd's own
// write comes back as an informer event with the same status: nothing more is written.
import { KubeApiError, kubeRequest, type KubeConnection } from '../kube/client.js';
import type { IstioConfig, MeshSnapshot } from '../model/mesh.js';
import type { IstioObject } from '../model/objects.js';
import type { Finding } from '../model/finding.js';
import type { Logger } from '../util/log.js';
import type { Metrics } from '../util/metrics.js';
import { TokenBucket } from '../util/token-bucket.js';
import { clientText } from '../util/client-text.js';
import { computeStatus, refuses, sameStatus, type IstioStatus, type ProxyCounts } from './istio-status.js';
import { observedKey, type ObservedObject, type ObservedObjects } from './observed-objects.js';

/** Proxy counts for one pass (xds/distribution.ts's DistributionIndex). */
export interface DistributionView {
  counts(obj: IstioObject, since: number, config: IstioConfig): ProxyCounts;
}

export interface StatusWriterOptions {
  conn: KubeConnection;
  objects: ObservedObjects;
  /** The newest snapshot. */
  snapshot: () => MeshSnapshot | undefined;
  /** The connected proxies' states now, `current` being the newest snapshot's version. */
  distribution: (current: number) => DistributionView;
  /** Subscribes to changes of proxies' states (pushes, ACKs, NACKs, disconnects). */
  onDistributionChange: (listener: () => void) => () => void;
  /** Subscribes to new snapshots (findings-only ones too), told before they are pushed. */
  onSnapshot: (listener: () => void) => () => void;
  /** Status writes per second [20], and how many at once after a quiet time [2 x rate]. */
  writeRate?: number;
  writeBurst?: number;
  /** Wait after a change before a pass [250 ms], and least time between passes [1 s]. */
  passDelayMs?: number;
  minPassIntervalMs?: number;
  metrics?: Metrics;
  log: Logger;
}

export const DEFAULT_STATUS_WRITE_RATE = 20;
const MAX_IN_FLIGHT = 4;
const RETRY_MS = 5000;

/** The config objects of a snapshot, by observedKey. */
function configObjects(config: IstioConfig): Map<string, IstioObject> {
  const out = new Map<string, IstioObject>();
  for (const list of [config.gateways, config.virtualServices, config.destinationRules, config.peerAuthentications] as readonly (readonly IstioObject[])[]) {
    for (const o of list) out.set(observedKey(o.kind, o.metadata.namespace, o.metadata.name), o);
  }
  for (const o of [...(config.authorizationPolicies ?? []), ...(config.requestAuthentications ?? [])]) out.set(observedKey(o.kind, o.metadata.namespace, o.metadata.name), o);
  for (const list of [config.sidecars ?? [], config.serviceEntries ?? [], config.workloadEntries ?? [], config.telemetries ?? []] as readonly (readonly IstioObject[])[]) {
    for (const o of list) out.set(observedKey(o.kind, o.metadata.namespace, o.metadata.name), o);
  }
  return out;
}

function findingsByObject(findings: readonly Finding[]): Map<string, Finding[]> {
  const out = new Map<string, Finding[]>();
  for (const f of findings) {
    const key = observedKey(f.kind, f.namespace, f.name);
    let list = out.get(key);
    if (!list) out.set(key, (list = []));
    list.push(f);
  }
  return out;
}

export class StatusWriter {
  private readonly bucket: TokenBucket;
  /** Objects whose status must be written, with what. */
  private readonly queue = new Map<string, IstioStatus>();
  /** Per object: the generation meshd last saw in a snapshot, and that snapshot's version. */
  private readonly since = new Map<string, { generation: number | undefined; version: number }>();
  private notedConfig: IstioConfig | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private passTimer: NodeJS.Timeout | undefined;
  private pumpTimer: NodeJS.Timeout | undefined;
  private lastPassAt = 0;
  private inFlight = 0;
  private stopped = false;
  /** Kinds whose status writes were refused (403) already logged as such. */
  private readonly forbiddenLogged = new Set<string>();
  /** Status writes done (for tests and logs). */
  writes = 0;
  passes = 0;

  constructor(private readonly o: StatusWriterOptions) {
    const rate = o.writeRate ?? DEFAULT_STATUS_WRITE_RATE;
    this.bucket = new TokenBucket(rate, o.writeBurst ?? rate * 2);
  }

  start(): void {
    this.unsubscribe.push(
      this.o.onSnapshot(() => {
        this.noteGenerations();
        this.schedulePass();
      }),
      this.o.onDistributionChange(() => this.schedulePass()),
      this.o.objects.onChange(() => this.schedulePass()),
    );
    this.noteGenerations();
    this.schedulePass();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe) u();
    clearTimeout(this.passTimer);
    clearTimeout(this.pumpTimer);
    this.queue.clear();
  }

  /**
   * Called with each snapshot, before it is pushed: the generations it holds, with its
   * version (a proxy in sync with that version has them). Cheap: only a new config is looked at.
   */
  private noteGenerations(): void {
    const s = this.o.snapshot();
    if (!s || s.config === this.notedConfig) return;
    this.notedConfig = s.config;
    for (const [key, obj] of configObjects(s.config)) {
      const seen = this.since.get(key);
      if (!seen || seen.generation !== obj.metadata.generation) this.since.set(key, { generation: obj.metadata.generation, version: s.version });
    }
  }

  private schedulePass(): void {
    if (this.stopped || this.passTimer) return;
    const delay = Math.max(this.o.passDelayMs ?? 250, this.lastPassAt + (this.o.minPassIntervalMs ?? 1000) - Date.now());
    this.passTimer = setTimeout(() => {
      this.passTimer = undefined;
      this.pass();
    }, delay);
    this.passTimer.unref();
  }

  /** Computes every observed object's status; queues those that differ from what they hold. */
  pass(): void {
    const s = this.o.snapshot();
    if (this.stopped) return;
    if (!s) {
      // Before the first snapshot (the leader Lease can come first): look again shortly.
      this.schedulePass();
      return;
    }
    this.lastPassAt = Date.now();
    this.passes++;
    this.noteGenerations();
    const dist = this.o.distribution(s.version);
    const inConfig = configObjects(s.config);
    const findings = findingsByObject(s.findings);
    const now = new Date().toISOString();
    const live = new Set<string>();
    for (const obj of this.o.objects.values()) {
      const key = observedKey(obj.kind, obj.namespace, obj.name);
      live.add(key);
      const desired = this.desiredStatus(obj, key, inConfig.get(key), findings.get(key) ?? [], dist, s, now);
      if (!desired) {
        this.queue.delete(key); // what was queued is of an older generation
        continue;
      }
      if (sameStatus(obj.status, desired)) {
        this.queue.delete(key);
        this.o.metrics?.statusWrites.inc({ kind: obj.kind, result: 'unchanged' });
      } else this.queue.set(key, desired);
    }
    for (const key of this.since.keys()) if (!live.has(key) && !inConfig.has(key)) this.since.delete(key);
    this.pump();
  }

  /** The status `obj` should hold; undefined while the snapshot does not hold its generation yet. */
  private desiredStatus(obj: ObservedObject, key: string, current: IstioObject | undefined, all: readonly Finding[], dist: DistributionView, s: MeshSnapshot, now: string): IstioStatus | undefined {
    const generation = obj.generation;
    const findings = all.filter((f) => f.generation === undefined || generation === undefined || f.generation === generation);
    let proxies: ProxyCounts | undefined;
    if (current && current.metadata.generation === generation) {
      const since = this.since.get(key);
      proxies = dist.counts(current, since && since.generation === generation ? since.version : s.version, s.config);
    } else if (!findings.some((f) => refuses(f) && f.generation === generation)) {
      return undefined; // not in a snapshot yet (the push controller's debounce)
    }
    return computeStatus({ generation, findings, proxies, previous: obj.status, now });
  }

  private pump(): void {
    while (!this.stopped && this.queue.size > 0 && this.inFlight < MAX_IN_FLIGHT) {
      if (!this.bucket.take()) {
        if (!this.pumpTimer) {
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = undefined;
            this.pump();
          }, this.bucket.waitMs());
          this.pumpTimer.unref();
        }
        return;
      }
      const [key, desired] = this.queue.entries().next().value as [string, IstioStatus];
      this.queue.delete(key);
      const obj = this.o.objects.get(key);
      if (!obj) continue;
      if (sameStatus(obj.status, desired)) {
        this.o.metrics?.statusWrites.inc({ kind: obj.kind, result: 'unchanged' });
        continue;
      }
      this.inFlight++;
      void this.write(key, obj, desired).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async write(key: string, obj: ObservedObject, status: IstioStatus): Promise<void> {
    // A merge patch: the lists are replaced whole; a list meshd no longer has is removed (null).
    const body = { status: { ...status, validationMessages: status.validationMessages ?? null } };
    try {
      const written = await kubeRequest<{ status?: unknown }>(this.o.conn, 'PATCH', `${obj.statusPath}?fieldManager=meshd`, body, 'application/merge-patch+json');
      this.writes++;
      this.o.metrics?.statusWrites.inc({ kind: obj.kind, result: 'written' });
      // Until the watch brings it: what was written is what the object holds.
      this.o.objects.written(key, written.status ?? status);
      this.o.log.debug({ kind: obj.kind, object: `${obj.namespace}/${obj.name}`, generation: obj.generation }, 'status written');
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) {
        this.o.metrics?.statusWrites.inc({ kind: obj.kind, result: 'gone' });
        return;
      }
      this.o.metrics?.statusWrites.inc({ kind: obj.kind, result: 'failed' });
      const fields = { kind: obj.kind, object: `${obj.namespace}/${obj.name}`, err: clientText(String(err), 512), retryInMs: RETRY_MS };
      if (err instanceof KubeApiError && err.statusCode === 403) {
        // RBAC without */status patch (older manifests): said once per kind, not per object and retry.
        if (this.forbiddenLogged.has(obj.kind)) this.o.log.debug(fields, 'writing status refused');
        else {
          this.forbiddenLogged.add(obj.kind);
          this.o.log.error(fields, `writing status refused (403): grant meshd's service account "patch" on ${obj.kind.toLowerCase()}s/status (manifests/base/rbac.yaml); retrying`);
        }
      } else this.o.log.warn(fields, 'writing status failed; retrying');
      const t = setTimeout(() => this.schedulePass(), RETRY_MS);
      t.unref();
    }
  }
}
