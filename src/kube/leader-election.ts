// Leader election on a Kubernetes Lease (coordination.k8s.io/v1), for the work that must
// have one writer when meshd runs as several replicas (as istiod does): publishing the root
// certificate ConfigMaps, for one.
//
// The rules:
// - The Lease is free when it has no holder, or when it has expired: its holder has not
//   renewed it for leaseDurationSeconds (by its renewTime against this replica's clock, or,
//   should the clocks disagree, by how long this replica has seen it unchanged).
// - A candidate takes a free Lease with a write conditioned on the resourceVersion it read
//   (a create when there is none): of two candidates one wins, the other gets 409 Conflict.
// - The leader renews every retry period. When it cannot renew within the renew deadline
//   (shorter than the lease duration, so it stops before anyone else may start), or when it
//   finds another holder, it stops leading and goes back to trying to acquire.
// - On stop (SIGTERM), after its leader work has stopped, it releases the Lease (no holder,
//   duration 1 s) so another replica takes it at its next try rather than after the lease
//   duration.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Gauge, type Registry } from 'prom-client';
import { KubeApiError, kubeRequest, type KubeConnection } from './client.js';
import type { Logger } from '../util/log.js';
import { systemClock, type Clock } from '../util/clock.js';


export const DEFAULT_LEASE_NAME = 'meshd-leader';
export const DEFAULT_LEASE_DURATION_MS = 15_000;

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; [k: string]: unknown };
  spec?: LeaseSpec;
}

/** The three calls the elector makes; a replace with a stale resourceVersion fails with KubeApiError 409. */
export interface LeaseApi {
  get(namespace: string, name: string, timeoutMs: number): Promise<Lease | undefined>;
  create(namespace: string, lease: Lease, timeoutMs: number): Promise<Lease>;
  replace(namespace: string, lease: Lease, timeoutMs: number): Promise<Lease>;
}

/** The Lease API of a cluster. */
export function kubeLeaseApi(conn: KubeConnection): LeaseApi {
  const base = (ns: string): string => `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases`;
  return {
    async get(ns, name, timeoutMs) {
      try {
        return await kubeRequest<Lease>(conn, 'GET', `${base(ns)}/${encodeURIComponent(name)}`, undefined, 'application/json', timeoutMs);
      } catch (err) {
        if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
        throw err;
      }
    },
    create: (ns, lease, timeoutMs) => kubeRequest<Lease>(conn, 'POST', base(ns), lease, 'application/json', timeoutMs),
    replace: (ns, lease, timeoutMs) => kubeRequest<Lease>(conn, 'PUT', `${base(ns)}/${encodeURIComponent(lease.metadata.name)}`, lease, 'application/json', timeoutMs),
  };
}

export type LeaderState = 'starting' | 'following' | 'leading' | 'stopped';

export interface LeaderElectorOptions {
  leases: LeaseApi;
  namespace: string;
  /** Default meshd-leader. */
  name?: string;
  /** Default: $POD_NAME or the host name, then "_" and 8 random hex digits. */
  identity?: string;
  /** How long a Lease not renewed stays its holder's; default 15 s. Written in whole seconds. */
  leaseDurationMs?: number;
  /** The leader stops leading when it has not renewed for this long; default 2/3 of the lease duration (10 s). */
  renewDeadlineMs?: number;
  /** Between tries to acquire, and between renewals; default 2/15 of the lease duration (2 s). */
  retryPeriodMs?: number;
  /** Waits between tries to acquire are stretched by up to this fraction, at random; default 0.2. */
  jitter?: number;
  log: Logger;
  /** Gauge meshd_leader is registered here when given. */
  registry?: Registry;
  /** Leader work starts; called once per term. */
  onStartedLeading?: () => void | Promise<void>;
  /** Leader work must stop; awaited before the Lease is released. */
  onStoppedLeading?: () => void | Promise<void>;
  /** Another holder was seen (or none: ""). */
  onNewLeader?: (identity: string) => void;
  clock?: Clock;
  random?: () => number;
}

export interface LeaderStatus {
  lease: string;
  identity: string;
  state: LeaderState;
  isLeader: boolean;
  /** The holder last seen in the Lease ("" when free). */
  holder: string | undefined;
  /** When this replica last renewed the Lease (ISO time). */
  lastRenewed: string | undefined;
  transitions: number | undefined;
}

/** The Lease's MicroTime format: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The default identity: the pod name (or host name) and a random suffix, so a restarted pod is a new candidate. */
export function defaultIdentity(random?: () => number): string {
  const base = process.env.POD_NAME || hostname();
  const suffix = random ? Math.floor(random() * 0xffffffff).toString(16).padStart(8, '0') : randomBytes(4).toString('hex');
  return `${base}_${suffix}`;
}

type Outcome = 'held' | 'other' | 'error';

export class LeaderElector {
  readonly identity: string;
  readonly name: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly gauge: Gauge | undefined;
  private stateValue: LeaderState = 'starting';
  private leading = false;
  private stopping = false;
  /** The Lease as last read or written. */
  private last: Lease | undefined;
  /** When this replica first saw the Lease's current record, by its own clock. */
  private observed: { key: string; at: number } | undefined;
  private lastRenewAt: number | undefined;
  private watchdog: unknown;
  private sleeper: { handle: unknown; wake: () => void } | undefined;
  private loopDone: Promise<void> | undefined;
  private stopDone: Promise<void> | undefined;
  /** Callbacks run one after another, in the order of the transitions. */
  private transitions: Promise<void> = Promise.resolve();
  private lastHolder: string | undefined;
  /** The last failure while following, logged at warn once (a missing RBAC rule, say), then at debug. */
  private lastError: string | undefined;

  constructor(private readonly o: LeaderElectorOptions) {
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
    this.name = o.name ?? DEFAULT_LEASE_NAME;
    this.identity = o.identity ?? defaultIdentity(o.random);
    this.leaseDurationMs = Math.max(1000, o.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS);
    this.renewDeadlineMs = o.renewDeadlineMs ?? Math.round((this.leaseDurationMs * 2) / 3);
    this.retryPeriodMs = o.retryPeriodMs ?? Math.round((this.leaseDurationMs * 2) / 15);
    if (!(this.renewDeadlineMs < this.leaseDurationMs)) throw new Error(`leader election: the renew deadline (${this.renewDeadlineMs} ms) must be shorter than the lease duration (${this.leaseDurationMs} ms)`);
    if (!(this.retryPeriodMs > 0 && this.retryPeriodMs < this.renewDeadlineMs)) throw new Error(`leader election: the retry period (${this.retryPeriodMs} ms) must be positive and shorter than the renew deadline (${this.renewDeadlineMs} ms)`);
    this.log = o.log.child({ lease: `${o.namespace}/${this.name}`, identity: this.identity });
    if (o.registry) {
      this.gauge = new Gauge({ name: 'meshd_leader', help: 'Whether this replica holds the leader Lease (1) or not (0).', registers: [o.registry] });
      this.gauge.set(0);
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get state(): LeaderState {
    return this.stateValue;
  }

  status(): LeaderStatus {
    return {
      lease: `${this.o.namespace}/${this.name}`,
      identity: this.identity,
      state: this.stateValue,
      isLeader: this.leading,
      holder: this.lastHolder,
      lastRenewed: this.lastRenewAt !== undefined ? new Date(this.lastRenewAt).toISOString() : undefined,
      transitions: this.last?.spec?.leaseTransitions,
    };
  }

  start(): void {
    if (this.loopDone || this.stopping) return;
    this.stateValue = 'following';
    this.log.info({ leaseDurationMs: this.leaseDurationMs, renewDeadlineMs: this.renewDeadlineMs, retryPeriodMs: this.retryPeriodMs }, 'leader election: trying to acquire the lease');
    this.loopDone = this.loop();
  }

  /** Stops trying; when leading, stops the leader work, then releases the Lease. */
  stop(): Promise<void> {
    this.stopDone ??= this.doStop();
    return this.stopDone;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    this.sleeper?.wake();
    this.disarmWatchdog();
    if (this.leading) this.stepDown('stopping');
    // The attempt in flight (one request at most once stopping) and the leader work's end.
    await this.loopDone;
    await this.transitions;
    if (this.last?.spec?.holderIdentity === this.identity) await this.release();
    this.stateValue = 'stopped';
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const at = this.clock.now();
      const outcome = await this.tryAcquireOrRenew(at);
      if (this.stopping) break;
      if (outcome === 'held') {
        this.lastRenewAt = at;
        this.armWatchdog(at + this.renewDeadlineMs);
        if (!this.leading) this.startLeading();
      } else if (outcome === 'other' && this.leading) {
        this.stepDown(`the lease is held by ${this.lastHolder ?? 'another replica'}`);
      }
      // While leading, a failed renewal is retried until the renew deadline (the watchdog).
      const wait = this.leading ? this.retryPeriodMs : this.retryPeriodMs * (1 + (this.o.jitter ?? 0.2) * this.random());
      await this.sleep(wait);
    }
  }

  private timeoutMs(): number {
    return Math.max(500, Math.min(this.renewDeadlineMs / 2, 5000));
  }

  private spec(now: number, previous: LeaseSpec | undefined): LeaseSpec {
    const ours = previous?.holderIdentity === this.identity;
    return {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: ours && previous?.acquireTime ? previous.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (ours || previous === undefined ? 0 : 1),
    };
  }

  /** Whether the Lease may be taken: no holder, or not renewed for its duration. */
  private expired(spec: LeaseSpec | undefined, now: number): boolean {
    if (!spec?.holderIdentity) return true;
    const durationMs = (spec.leaseDurationSeconds ?? 0) * 1000;
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : NaN;
    if (Number.isFinite(renewed) && renewed + durationMs < now) return true;
    // Clocks that disagree: seen unchanged here for the whole duration.
    return this.observed !== undefined && this.observed.at + durationMs < now;
  }

  private observe(lease: Lease, now: number): void {
    this.lastError = undefined;
    const s = lease.spec ?? {};
    const key = `${s.holderIdentity ?? ''}|${s.renewTime ?? ''}|${lease.metadata.resourceVersion ?? ''}`;
    if (this.observed?.key !== key) this.observed = { key, at: now };
    const holder = s.holderIdentity ?? '';
    if (holder !== this.lastHolder) {
      this.lastHolder = holder;
      if (holder !== this.identity) {
        this.log.info({ holder: holder || undefined }, holder ? 'leader election: the lease is held by another replica' : 'leader election: the lease is free');
        this.o.onNewLeader?.(holder);
      }
    }
  }

  private async tryAcquireOrRenew(now: number): Promise<Outcome> {
    const api = this.o.leases;
    const ns = this.o.namespace;
    const timeout = this.timeoutMs();
    try {
      // The leader renews on the Lease it last wrote: one request, unless someone changed it.
      if (this.leading && this.last?.spec?.holderIdentity === this.identity) {
        try {
          this.last = await api.replace(ns, { ...this.last, spec: this.spec(now, this.last.spec) }, timeout);
          this.observe(this.last, now);
          return 'held';
        } catch (err) {
          if (!(err instanceof KubeApiError && err.statusCode === 409)) throw err;
        }
        if (this.stopping) return 'error';
      }
      const current = await api.get(ns, this.name, timeout);
      if (this.stopping) return 'error';
      if (!current) {
        try {
          this.last = await api.create(
            ns,
            { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: ns, labels: { 'app.kubernetes.io/managed-by': 'meshd' } }, spec: this.spec(now, undefined) },
            timeout,
          );
          this.observe(this.last, now);
          return 'held';
        } catch (err) {
          if (err instanceof KubeApiError && err.statusCode === 409) return 'other'; // another replica created it first
          throw err;
        }
      }
      this.last = current;
      this.observe(current, now);
      const holder = current.spec?.holderIdentity;
      if (holder !== this.identity && !this.expired(current.spec, now)) return 'other';
      try {
        this.last = await api.replace(ns, { ...current, spec: this.spec(now, current.spec) }, timeout);
        this.observe(this.last, now);
        return 'held';
      } catch (err) {
        if (err instanceof KubeApiError && err.statusCode === 409) return 'other'; // someone else wrote it first
        throw err;
      }
    } catch (err) {
      const e = String(err);
      if (this.leading) this.log.warn({ err: e }, 'leader election: renewing the lease failed');
      else if (e !== this.lastError) this.log.warn({ err: e }, 'leader election: trying to acquire the lease failed; retrying');
      else this.log.debug({ err: e }, 'leader election: trying to acquire the lease failed');
      this.lastError = e;
      return 'error';
    }
  }

  private startLeading(): void {
    this.leading = true;
    this.stateValue = 'leading';
    this.gauge?.set(1);
    this.log.info({ transitions: this.last?.spec?.leaseTransitions }, 'leader election: acquired the lease; leading');
    const cb = this.o.onStartedLeading;
    if (cb) this.runTransition(cb, 'onStartedLeading');
  }

  private stepDown(reason: string): void {
    this.leading = false;
    this.stateValue = this.stopping ? 'stopped' : 'following';
    this.gauge?.set(0);
    this.disarmWatchdog();
    if (this.stopping) this.log.info({ reason }, 'leader election: stopped leading');
    else this.log.warn({ reason }, 'leader election: stopped leading');
    const cb = this.o.onStoppedLeading;
    if (cb) this.runTransition(cb, 'onStoppedLeading');
  }

  private runTransition(cb: () => void | Promise<void>, what: string): void {
    this.transitions = this.transitions.then(async () => {
      try {
        await cb();
      } catch (err) {
        this.log.error({ err: String(err) }, `leader election: ${what} failed`);
      }
    });
  }

  private armWatchdog(deadline: number): void {
    this.disarmWatchdog();
    this.watchdog = this.clock.setTimeout(
      () => {
        this.watchdog = undefined;
        if (this.leading && !this.stopping) this.stepDown(`the lease was not renewed within ${this.renewDeadlineMs} ms`);
      },
      Math.max(0, deadline - this.clock.now()),
    );
  }

  private disarmWatchdog(): void {
    if (this.watchdog !== undefined) this.clock.clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        if (this.sleeper?.wake !== wake) return;
        this.clock.clearTimeout(this.sleeper.handle);
        this.sleeper = undefined;
        resolve();
      };
      this.sleeper = { handle: this.clock.setTimeout(wake, ms), wake };
    });
  }

  /** Gives the Lease up: no holder, and a 1 s duration for readers that only look at the time. */
  private async release(): Promise<void> {
    const api = this.o.leases;
    for (let attempt = 0; attempt < 3 && this.last?.spec?.holderIdentity === this.identity; attempt++) {
      try {
        const now = this.clock.now();
        await api.replace(this.o.namespace, { ...this.last, spec: { ...this.last.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) } }, 2000);
        this.last = undefined;
        this.log.info('leader election: released the lease');
        return;
      } catch (err) {
        if (err instanceof KubeApiError && err.statusCode === 409) {
          // Changed meanwhile (a renewal that was in flight): release it if it is still ours.
          this.last = await api.get(this.o.namespace, this.name, 2000).catch(() => undefined);
          continue;
        }
        this.log.warn({ err: String(err) }, 'leader election: releasing the lease failed; the other replicas take it when it expires');
        return;
      }
    }
  }
}
