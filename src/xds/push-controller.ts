// Coalesces config changes (debounce with a maximum delay), builds the next snapshot
// (the cheap endpoints-only path when only EndpointSlices changed, a findings-only one when
// only refusals changed) and pushes it; logs and counts the snapshot's findings.
import { buildSnapshot, updateEndpoints, updateFindings, type MeshSnapshot } from '../model/mesh.js';
import type { ConfigChange, ConfigStore } from '../model/store.js';
import { findingLine } from '../model/finding.js';
import type { Logger } from '../util/log.js';
import type { Metrics } from '../util/metrics.js';
import type { ConfigGenerator, PushRequest } from './generator.js';
import { systemClock, type Clock } from '../util/clock.js';
import { defaultMeshConfig, type MeshConfig } from '../model/mesh-config.js';


export interface PushControllerOptions {
  store: ConfigStore;
  generator: ConfigGenerator;
  domain: string;
  /** Quiet time after the last change before a push (ms). */
  debounceMs: number;
  /** Longest a change waits while changes keep coming (ms). */
  debounceMaxMs: number;
  /** Quiet time when only endpoints changed (ms): those pushes are small and incremental. Defaults to debounceMs. */
  debounceEndpointsMs?: number;
  push: (req: PushRequest) => void;
  metrics?: Metrics;
  log: Logger;
  clock?: Clock;
}

/** How long after a full push unused encoded resources are dropped (ms). */
const SWEEP_DELAY_MS = 1000;

/** Kinds whose changes do not (yet) affect generated config: they are kept, not pushed. */
const NOT_PUSHED = new Set<string>(['Namespace']);

function updateType(c: ConfigChange): string {
  if (c.op === 'refusal') return 'refusal';
  if (c.kind === 'EndpointSlice') return 'eds';
  if (c.kind === 'Service') return c.op === 'delete' ? 'svcdelete' : 'svc';
  if (c.kind === 'Pod') return 'pod';
  return 'config';
}

export class PushController {
  private pending: ConfigChange[] = [];
  private firstAt = 0;
  private timer: unknown;
  private sweepTimer: unknown;
  private readonly clock: Clock;
  private unsubscribe: (() => void) | undefined;
  /** Findings already logged, so each is logged once. */
  private reported = new Set<string>();
  /** Snapshots built so far, and how many took the endpoints-only and findings-only paths. */
  readonly stats = { full: 0, endpointsOnly: 0, findingsOnly: 0 };
  private readonly snapshotListeners = new Set<(s: MeshSnapshot) => void>();
  private meshConfig_: MeshConfig = defaultMeshConfig();
  /** A new mesh config waits for the next (full) snapshot. */
  private meshConfigPending = false;

  constructor(private readonly o: PushControllerOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /**
   * Logs each finding of the snapshot once (errors as errors, counted in
   * meshd_config_errors_total by kind; warnings as warnings), while it lasts.
   */
  private reportFindings(s: MeshSnapshot): void {
    const now = new Set<string>();
    for (const f of s.findings) {
      if (f.severity === 'Info') continue;
      const line = findingLine(f);
      now.add(line);
      if (this.reported.has(line)) continue;
      const fields = {
        kind: f.kind,
        object: `${f.namespace}/${f.name}`,
        field: f.field,
        code: f.code,
        ...(f.generation !== undefined ? { generation: f.generation } : {}),
        ...(f.origin ? { file: f.origin.file, line: f.origin.line } : {}),
      };
      if (f.severity === 'Error') {
        this.o.log.error(fields, line);
        this.o.metrics?.configErrors.inc({ kind: f.kind });
      } else {
        this.o.log.warn(fields, line);
      }
    }
    this.reported = now;
  }

  /** Calls `listener` with every new snapshot (findings-only ones too); returns the way to stop. */
  onSnapshot(listener: (s: MeshSnapshot) => void): () => void {
    this.snapshotListeners.add(listener);
    return () => this.snapshotListeners.delete(listener);
  }

  private applied(s: MeshSnapshot): void {
    this.reportFindings(s);
    for (const l of this.snapshotListeners) l(s);
  }

  get meshConfig(): MeshConfig {
    return this.meshConfig_;
  }

  /**
   * A new mesh config: the next snapshot is a full one with it, pushed after the usual
   * debounce (before start(), the first snapshot just uses it).
   */
  setMeshConfig(mesh: MeshConfig): void {
    this.meshConfig_ = mesh;
    if (this.unsubscribe === undefined) return;
    this.o.metrics?.inboundUpdates.inc({ type: 'mesh' });
    const first = this.pending.length === 0 && !this.meshConfigPending;
    this.meshConfigPending = true;
    this.schedule(first);
  }

  /** Builds the first snapshot from what the store holds and starts listening for changes. */
  start(): MeshSnapshot {
    const delta = buildSnapshot(this.o.store, this.o.domain, undefined, this.meshConfig_);
    this.o.generator.update(delta, this.clock.now(), 'initial');
    this.applied(delta.snapshot);
    this.o.metrics?.services.set(delta.snapshot.services.length);
    this.stats.full++;
    this.unsubscribe = this.o.store.onChange((changes) => this.onChanges(changes));
    return delta.snapshot;
  }

  stop(): void {
    this.unsubscribe?.();
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sweepTimer !== undefined) this.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private onChanges(changes: ConfigChange[]): void {
    for (const c of changes) this.o.metrics?.inboundUpdates.inc({ type: updateType(c) });
    changes = changes.filter((c) => c.op === 'refusal' || !NOT_PUSHED.has(c.kind));
    if (changes.length === 0) return;
    const first = this.pending.length === 0 && !this.meshConfigPending;
    this.pending.push(...changes);
    this.schedule(first);
  }

  private schedule(first: boolean): void {
    if (first) this.firstAt = this.clock.now();
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    const waited = this.clock.now() - this.firstAt;
    const endpointsOnly = !this.meshConfigPending && this.pending.every((c) => c.kind === 'EndpointSlice' && c.op !== 'refusal');
    const quiet = endpointsOnly ? (this.o.debounceEndpointsMs ?? this.o.debounceMs) : this.o.debounceMs;
    const delay = Math.max(0, Math.min(quiet, this.o.debounceMaxMs - waited));
    this.timer = this.clock.setTimeout(() => this.flush(), delay);
  }

  /** Builds and pushes now whatever is pending. */
  flush(): void {
    this.timer = undefined;
    const changes = this.pending;
    const meshChanged = this.meshConfigPending;
    if (changes.length === 0 && !meshChanged) return;
    this.pending = [];
    this.meshConfigPending = false;
    const now = this.clock.now();
    const started = performance.now();
    this.o.metrics?.debounceTime.observe((now - this.firstAt) / 1000);
    const prev = this.o.generator.snapshot;
    // Refusals change findings only: they ride along with endpoint changes, or make a findings-only snapshot.
    const served = changes.filter((c) => c.op !== 'refusal');
    const findingsOnly = prev !== undefined && !meshChanged && served.length === 0;
    const endpointsOnly = prev !== undefined && !meshChanged && !findingsOnly && served.every((c) => c.kind === 'EndpointSlice');
    const delta = findingsOnly
      ? updateFindings(this.o.store, prev)
      : endpointsOnly
        ? updateEndpoints(this.o.store, prev, served.map((c) => c.service!))
        : buildSnapshot(this.o.store, this.o.domain, prev, this.meshConfig_, meshChanged ? undefined : new Set(served.map((c) => c.kind)));
    if (findingsOnly) this.stats.findingsOnly++;
    else if (endpointsOnly) this.stats.endpointsOnly++;
    else this.stats.full++;
    const reason = [...new Set([...changes.map(updateType), ...(meshChanged ? ['mesh'] : [])])].sort().join(',');
    const req = this.o.generator.update(delta, this.firstAt, reason);
    this.applied(delta.snapshot);
    this.o.metrics?.services.set(delta.snapshot.services.length);
    if (!findingsOnly) this.o.metrics?.pushTriggers.inc({ type: endpointsOnly ? 'endpoint' : 'config' });
    this.o.log.debug({ changes: changes.length, full: req.full, eds: req.edsNames.size, version: delta.snapshot.version, waitedMs: now - this.firstAt, buildMs: Math.round(performance.now() - started) }, 'pushing');
    if (req.full || req.edsNames.size > 0) this.o.push(req);
    if (req.full) this.scheduleSweep();
  }

  /**
   * Drops encoded resources no view uses any more, a moment after a full push: not before
   * the push's first response (it walks every resource), and once for a burst of pushes.
   */
  private scheduleSweep(): void {
    if (this.sweepTimer !== undefined) return;
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweepTimer = undefined;
      this.o.generator.sweep();
    }, SWEEP_DELAY_MS);
  }
}
