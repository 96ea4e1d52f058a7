// Where the mesh config comes from, as istiod reads it: `--mesh-config FILE` when given
// (watched), else in a cluster ConfigMap `istio` in meshd's namespace, key `mesh` (watched).
// A mesh config that does not parse is refused, naming the field: logged once, counted in
// meshd_config_errors_total{kind="MeshConfig"}, and the last good one keeps serving. A deleted
// file or ConfigMap (or one without the key) means Istio's defaults.
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ConfigMapWatch } from '../kube/configmap-watch.js';
import { defaultMeshConfig, parseMeshConfig, MeshConfigError, type MeshConfig } from '../model/mesh-config.js';
import type { Logger } from '../util/log.js';
import type { Core } from './core.js';
import type { ConfigSource } from './config-source.js';
import type { ControlPlaneOptions } from './options.js';

export const MESH_CONFIGMAP = 'istio';
export const MESH_CONFIGMAP_KEY = 'mesh';
/** A mesh config file larger than this is refused before it is read. */
const MAX_MESH_CONFIG_BYTES = 1024 * 1024;
/** How long start-up waits for the ConfigMap to be listed before going on with the defaults. */
const FIRST_READ_TIMEOUT_MS = 5000;

export interface MeshConfigWatcher {
  /** The mesh config now (the last good one). */
  current(): MeshConfig;
  /** Where it is read from, for logs and errors. */
  readonly where: string;
  onChange(listener: (mesh: MeshConfig) => void): void;
  stop(): Promise<void>;
}

class MeshConfigState {
  private mesh = defaultMeshConfig();
  private lastProblem: string | undefined;
  private lastUnknown = '';
  private readonly listeners: ((mesh: MeshConfig) => void)[] = [];

  constructor(
    readonly where: string,
    private readonly core: Core,
    private readonly log: Logger,
  ) {}

  current(): MeshConfig {
    return this.mesh;
  }

  onChange(listener: (mesh: MeshConfig) => void): void {
    this.listeners.push(listener);
  }

  /** A new text of the mesh config; undefined: there is none (deleted), so Istio's defaults. */
  update(text: string | undefined, missing = 'not found'): void {
    let next: MeshConfig;
    if (text === undefined) {
      next = defaultMeshConfig();
      if (!isDeepStrictEqual(next, this.mesh)) this.log.info({ meshConfig: this.where }, `mesh config ${missing}: Istio's defaults apply`);
    } else {
      try {
        const parsed = parseMeshConfig(text, this.where);
        next = parsed.config;
        const unknown = parsed.unknownFields.join(', ');
        if (unknown && unknown !== this.lastUnknown) {
          this.log.warn({ meshConfig: this.where, fields: parsed.unknownFields }, `mesh config (${this.where}): unknown fields ignored: ${unknown}`);
        }
        this.lastUnknown = unknown;
        if (parsed.ignoredFields.length) this.log.debug({ meshConfig: this.where, fields: parsed.ignoredFields }, 'mesh config fields meshd does not use');
      } catch (err) {
        this.refuse(err instanceof MeshConfigError ? err.message : `mesh config (${this.where}): ${String(err)}`);
        return;
      }
    }
    this.lastProblem = undefined;
    if (isDeepStrictEqual(next, this.mesh)) return;
    if (next.trustDomain !== this.mesh.trustDomain && this.started) {
      this.log.warn({ meshConfig: this.where, trustDomain: next.trustDomain, serving: this.mesh.trustDomain }, 'mesh config: trustDomain is read at start only (the CA and workload certificates keep the one meshd started with); restart meshd to change it');
    }
    this.mesh = next;
    if (this.started) this.log.info({ meshConfig: this.where }, 'mesh config applied');
    for (const l of this.listeners) l(next);
  }

  /** A mesh config that cannot be used: logged and counted once per distinct problem, not on every re-read. */
  refuse(message: string): void {
    if (message === this.lastProblem) return;
    this.lastProblem = message;
    this.log.error({ meshConfig: this.where, kind: 'MeshConfig' }, `${message}; the last good mesh config keeps serving`);
    this.core.metrics.configErrors.inc({ kind: 'MeshConfig' });
  }

  /** Set once start-up has read the first mesh config: later changes are logged as changes. */
  started = false;
}

/** Follows one file by watching its directory (editors and tools replace files by renaming). */
function watchFile(path: string, state: MeshConfigState, log: Logger): { stop(): void } {
  const dir = dirname(path);
  const name = basename(path);
  const read = (): void => {
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      state.update(undefined, 'file not found');
      return;
    }
    if (size > MAX_MESH_CONFIG_BYTES) {
      state.refuse(`mesh config (${state.where}): the file has ${size} bytes, more than the ${MAX_MESH_CONFIG_BYTES} a mesh config may have; it is not read`);
      return;
    }
    try {
      state.update(readFileSync(path, 'utf8'));
    } catch (err) {
      // Unreadable for a moment (being replaced): the next event re-reads it.
      log.warn({ file: path, err: String(err) }, 'cannot read the mesh config file');
    }
  };
  read();
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, (_event, filename) => {
      if (filename !== null && String(filename) !== name) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(read, 10);
    });
    watcher.on('error', (err) => log.error({ file: path, err: String(err) }, 'watching the mesh config file failed'));
  } catch (err) {
    throw new Error(`--mesh-config ${path}: cannot watch its directory: ${String(err)}`, { cause: err });
  }
  return {
    stop() {
      watcher?.close();
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * Reads the first mesh config (so the CA starts with its trustDomain) and follows it.
 * `namespace` is meshd's, where ConfigMap `istio` lives.
 */
export async function startMeshConfig(o: ControlPlaneOptions, core: Core, source: ConfigSource, namespace: string): Promise<MeshConfigWatcher> {
  const log = o.log.child({ component: 'mesh-config' });
  let stop: () => Promise<void> = async () => undefined;
  let state: MeshConfigState;
  if (o.meshConfigFile !== undefined) {
    const path = resolve(o.meshConfigFile);
    state = new MeshConfigState(`file ${path}`, core, log);
    const w = watchFile(path, state, log);
    stop = async () => w.stop();
  } else if (source.conn) {
    state = new MeshConfigState(`ConfigMap ${namespace}/${MESH_CONFIGMAP}, key ${MESH_CONFIGMAP_KEY}`, core, log);
    const s = state;
    const cm = new ConfigMapWatch(
      source.conn,
      namespace,
      MESH_CONFIGMAP,
      (data) => {
        if (data === undefined) s.update(undefined, 'ConfigMap not found (or deleted)');
        else if (data[MESH_CONFIGMAP_KEY] === undefined) s.update(undefined, `ConfigMap has no key ${MESH_CONFIGMAP_KEY}`);
        else s.update(data[MESH_CONFIGMAP_KEY]);
      },
      log,
    );
    cm.start();
    const first = await Promise.race([cm.synced().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), FIRST_READ_TIMEOUT_MS).unref())]);
    if (!first) log.warn({ meshConfig: state.where }, `mesh config not read within ${FIRST_READ_TIMEOUT_MS / 1000}s (can meshd read that ConfigMap?); starting with Istio's defaults, and it is applied once read`);
    stop = () => cm.stop();
  } else {
    state = new MeshConfigState('defaults (no --mesh-config, no cluster)', core, log);
  }
  state.started = true;
  const s = state;
  core.pushes.setMeshConfig(s.current());
  s.onChange((mesh) => core.pushes.setMeshConfig(mesh));
  return {
    where: s.where,
    current: () => s.current(),
    onChange: (l) => s.onChange(l),
    stop: () => stop(),
  };
}
