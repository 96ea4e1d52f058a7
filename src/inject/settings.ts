// The injector's settings, with Istio's defaults, and how they are read from a ConfigMap
// shaped like Istio's `istio-sidecar-injector`:
//
//   data.values  JSON (or YAML) in the shape of Istio's Helm values: `global.hub`, `global.tag`,
//                `global.proxy.*`, `global.meshID`, `meshConfig.defaultConfig`, `revision`...
//   data.config  YAML: `policy`, `neverInjectSelector`, `alwaysInjectSelector`,
//                `injectedAnnotations` (Istio's Go templates, `templates`, are not read).
//   data.meshd   YAML, meshd's own: `mode` (agent | agentless), `envoyImage`, `meshdImage`,
//                `nativeSidecars`, and any of the settings below by their names here.
//
// A value of the wrong type fails the whole parse with an error naming the key.
import { parse as parseYaml } from 'yaml';
import { isRecord, type Labels } from './k8s.js';

export type ProxyMode = 'agent' | 'agentless';
export type InterceptionMode = 'REDIRECT' | 'TPROXY' | 'NONE';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface InjectorSettings {
  /** Registry of Istio's images (`<hub>/proxyv2:<tag>`). */
  hub: string;
  tag: string;
  /** The proxy image's name under the hub, or a full image reference when it contains a `/`. */
  proxyImageName: string;
  /** Omitted from the containers when unset, as in Istio. */
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets: string[];
  /** Requests and limits of the proxy (and of istio-init), unless the pod's annotations say otherwise. */
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  /** Istio's `meshConfig.defaultConfig`: the ProxyConfig every pod starts from (PROXY_CONFIG). */
  proxyConfig: Record<string, unknown>;
  /** The audience of the projected service-account token the proxy proves its identity with. */
  tokenAudience: string;
  /** Where istiod (meshd) runs: CA_ADDR is `istiod[-<revision>].<ns>.svc:15012`. */
  istioNamespace: string;
  /** Overrides CA_ADDR. */
  caAddress?: string;
  clusterId: string;
  /** ISTIO_META_MESH_ID; the trust domain when unset. */
  meshId?: string;
  trustDomain: string;
  network?: string;
  clusterDomain: string;
  /** The control plane revision: which `istio.io/rev` labels select this injector. */
  revision: string;
  policy: 'enabled' | 'disabled';
  neverInjectSelector: LabelSelector[];
  alwaysInjectSelector: LabelSelector[];
  injectedAnnotations: Record<string, string>;
  logLevel: string;
  componentLogLevel: string;
  /** pilot-agent's own log level (`--log_output_level`). */
  agentLogLevel: string;
  includeIPRanges: string;
  excludeIPRanges: string;
  includeInboundPorts: string;
  excludeInboundPorts: string;
  includeOutboundPorts: string;
  excludeOutboundPorts: string;
  /** The agent's status port (health, merged metrics, app probes). */
  statusPort: number;
  readinessInitialDelaySeconds: number;
  readinessPeriodSeconds: number;
  readinessFailureThreshold: number;
  startupProbe: { enabled: boolean; failureThreshold: number };
  holdApplicationUntilProxyStarts: boolean;
  rewriteAppHTTPProbe: boolean;
  enablePrometheusMerge: boolean;
  /** `agent`: Istio's pilot-agent and Envoy (proxyv2); `agentless`: a stock Envoy bootstrapped by `meshd bootstrap`. */
  mode: ProxyMode;
  /** The Envoy image of the agentless proxy. */
  envoyImage: string;
  /** meshd's image, which writes the agentless proxy's bootstrap in an init container. */
  meshdImage: string;
  /** Kubernetes native sidecars (an init container with `restartPolicy: Always`), Istio's ENABLE_NATIVE_SIDECARS. */
  nativeSidecars: boolean;
}

/** Istio's defaults (its Helm values and mesh config), plus meshd's for the agentless proxy. */
export function defaultInjectorSettings(): InjectorSettings {
  return {
    hub: 'docker.io/istio',
    tag: '1.31.1',
    proxyImageName: 'proxyv2',
    imagePullSecrets: [],
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '1Gi' } },
    proxyConfig: {},
    tokenAudience: 'istio-ca',
    istioNamespace: 'istio-system',
    clusterId: 'Kubernetes',
    trustDomain: 'cluster.local',
    clusterDomain: 'cluster.local',
    revision: 'default',
    policy: 'enabled',
    neverInjectSelector: [],
    alwaysInjectSelector: [],
    injectedAnnotations: {},
    logLevel: 'warning',
    componentLogLevel: 'misc:error',
    agentLogLevel: 'default:info',
    includeIPRanges: '*',
    excludeIPRanges: '',
    includeInboundPorts: '*',
    excludeInboundPorts: '',
    includeOutboundPorts: '',
    excludeOutboundPorts: '',
    statusPort: 15020,
    readinessInitialDelaySeconds: 0,
    readinessPeriodSeconds: 15,
    readinessFailureThreshold: 4,
    startupProbe: { enabled: true, failureThreshold: 600 },
    holdApplicationUntilProxyStarts: false,
    rewriteAppHTTPProbe: true,
    enablePrometheusMerge: true,
    mode: 'agent',
    envoyImage: 'envoyproxy/envoy:v1.40.0',
    meshdImage: 'meshd:dev',
    nativeSidecars: false,
  };
}

export class SettingsError extends Error {
  constructor(
    /** The key at fault, e.g. `data.values: global.proxy.statusPort`. */
    readonly key: string,
    detail: string,
  ) {
    super(`${key}: ${detail}`);
    this.name = 'SettingsError';
  }
}

/** Reads one value at a dotted path, checking its type. */
class Reader {
  constructor(
    private readonly root: Record<string, unknown>,
    private readonly where: string,
  ) {}

  private at(path: string): unknown {
    let cur: unknown = this.root;
    for (const part of path.split('.')) {
      if (!isRecord(cur)) return undefined;
      cur = cur[part];
    }
    return cur;
  }

  private fail(path: string, expected: string, got: unknown): never {
    throw new SettingsError(`${this.where}: ${path}`, `expected ${expected}, got ${JSON.stringify(got)}`);
  }

  string(path: string): string | undefined {
    const v = this.at(path);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return String(v);
    return this.fail(path, 'a string', v);
  }

  nonEmpty(path: string): string | undefined {
    const v = this.string(path);
    if (v === '') return this.fail(path, 'a non-empty string', v);
    return v;
  }

  bool(path: string): boolean | undefined {
    const v = this.at(path);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'false') return v === 'true';
    return this.fail(path, 'true or false', v);
  }

  int(path: string, min: number, max: number): number | undefined {
    const v = this.at(path);
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return this.fail(path, `an integer from ${min} to ${max}`, v);
    return n;
  }

  oneOf<T extends string>(path: string, choices: readonly T[]): T | undefined {
    const v = this.string(path);
    if (v === undefined) return undefined;
    if (!(choices as readonly string[]).includes(v)) return this.fail(path, `one of ${choices.join(', ')}`, v);
    return v as T;
  }

  object(path: string): Record<string, unknown> | undefined {
    const v = this.at(path);
    if (v === undefined || v === null) return undefined;
    if (!isRecord(v)) return this.fail(path, 'an object', v);
    return v;
  }

  stringMap(path: string): Record<string, string> | undefined {
    const v = this.object(path);
    if (!v) return undefined;
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (typeof val === 'string') out[k] = val;
      else if (typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
      else this.fail(`${path}.${k}`, 'a string', val);
    }
    return out;
  }

  stringList(path: string): string[] | undefined {
    const v = this.at(path);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) return this.fail(path, 'a list', v);
    return v.map((item, i) => {
      // Istio's values list pull secrets by name, or (in newer charts) as {name: ...}.
      if (typeof item === 'string') return item;
      if (isRecord(item) && typeof item.name === 'string') return item.name;
      return this.fail(`${path}[${i}]`, 'a name', item);
    });
  }

  selectors(path: string): LabelSelector[] | undefined {
    const v = this.at(path);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) return this.fail(path, 'a list of label selectors', v);
    return v.map((sel, i) => {
      const p = `${path}[${i}]`;
      if (!isRecord(sel)) return this.fail(p, 'a label selector', sel);
      const out: LabelSelector = {};
      const sub = new Reader(sel, `${this.where}: ${p}`);
      const ml = sub.stringMap('matchLabels');
      if (ml) out.matchLabels = ml;
      const me = sel.matchExpressions;
      if (me !== undefined && me !== null) {
        if (!Array.isArray(me)) return this.fail(`${p}.matchExpressions`, 'a list', me);
        out.matchExpressions = me.map((e, j) => {
          const ep = `${p}.matchExpressions[${j}]`;
          if (!isRecord(e) || typeof e.key !== 'string') return this.fail(ep, 'a requirement with a key', e);
          const op = e.operator;
          if (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist') return this.fail(`${ep}.operator`, 'one of In, NotIn, Exists, DoesNotExist', op);
          const values = e.values ?? [];
          if (!Array.isArray(values) || !values.every((x) => typeof x === 'string')) return this.fail(`${ep}.values`, 'a list of strings', values);
          return { key: e.key, operator: op, values: values as string[] };
        });
      }
      return out;
    });
  }
}

/** A ProxyConfig `over` on top of `base`, objects merged key by key (proxyMetadata...), as Istio merges them. */
export function mergeProxyConfig(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isRecord(b) && isRecord(v) ? mergeProxyConfig(b, v) : v;
  }
  return out;
}

function parseDocument(text: string, key: string): Record<string, unknown> {
  let v: unknown;
  try {
    // JSON is YAML, so one parser reads both (Istio stores `values` as JSON, `config` as YAML).
    v = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new SettingsError(key, `not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (v === null || v === undefined) return {};
  if (!isRecord(v)) throw new SettingsError(key, `expected an object, got ${JSON.stringify(v)}`);
  return v;
}

function resourceMap(r: Reader, path: string): Record<string, string> | undefined {
  return r.stringMap(path);
}

/** The values of Istio's Helm chart that shape the sidecar (data.values). */
function applyValues(s: InjectorSettings, values: Record<string, unknown>): void {
  const r = new Reader(values, 'data.values');
  s.hub = r.nonEmpty('global.hub') ?? s.hub;
  s.tag = r.nonEmpty('global.tag') ?? s.tag;
  s.proxyImageName = r.nonEmpty('global.proxy.image') ?? s.proxyImageName;
  const pull = r.string('global.imagePullPolicy');
  if (pull) s.imagePullPolicy = r.oneOf('global.imagePullPolicy', ['Always', 'IfNotPresent', 'Never'] as const);
  s.imagePullSecrets = r.stringList('global.imagePullSecrets') ?? s.imagePullSecrets;
  const requests = resourceMap(r, 'global.proxy.resources.requests');
  const limits = resourceMap(r, 'global.proxy.resources.limits');
  if (r.object('global.proxy.resources')) s.resources = { requests: requests ?? {}, limits: limits ?? {} };
  s.istioNamespace = r.nonEmpty('global.istioNamespace') ?? s.istioNamespace;
  s.tokenAudience = r.nonEmpty('global.sds.token.aud') ?? s.tokenAudience;
  s.caAddress = r.string('global.caAddress') || s.caAddress;
  s.clusterId = r.string('global.multiCluster.clusterName') || s.clusterId;
  s.meshId = r.string('global.meshID') || s.meshId;
  s.network = r.string('global.network') || s.network;
  s.trustDomain = r.string('meshConfig.trustDomain') || r.string('global.trustDomain') || s.trustDomain;
  s.clusterDomain = r.nonEmpty('global.proxy.clusterDomain') ?? s.clusterDomain;
  const rev = r.string('revision');
  if (rev !== undefined) s.revision = rev === '' ? 'default' : rev;
  s.logLevel = r.nonEmpty('global.proxy.logLevel') ?? s.logLevel;
  s.componentLogLevel = r.string('global.proxy.componentLogLevel') ?? s.componentLogLevel;
  s.agentLogLevel = r.nonEmpty('global.logging.level') ?? s.agentLogLevel;
  s.includeIPRanges = r.string('global.proxy.includeIPRanges') ?? s.includeIPRanges;
  s.excludeIPRanges = r.string('global.proxy.excludeIPRanges') ?? s.excludeIPRanges;
  s.includeInboundPorts = r.string('global.proxy.includeInboundPorts') ?? s.includeInboundPorts;
  s.excludeInboundPorts = r.string('global.proxy.excludeInboundPorts') ?? s.excludeInboundPorts;
  s.includeOutboundPorts = r.string('global.proxy.includeOutboundPorts') ?? s.includeOutboundPorts;
  s.excludeOutboundPorts = r.string('global.proxy.excludeOutboundPorts') ?? s.excludeOutboundPorts;
  s.statusPort = r.int('global.proxy.statusPort', 0, 65535) ?? s.statusPort;
  s.readinessInitialDelaySeconds = r.int('global.proxy.readinessInitialDelaySeconds', 0, 86400) ?? s.readinessInitialDelaySeconds;
  s.readinessPeriodSeconds = r.int('global.proxy.readinessPeriodSeconds', 1, 86400) ?? s.readinessPeriodSeconds;
  s.readinessFailureThreshold = r.int('global.proxy.readinessFailureThreshold', 1, 100000) ?? s.readinessFailureThreshold;
  s.startupProbe = {
    enabled: r.bool('global.proxy.startupProbe.enabled') ?? s.startupProbe.enabled,
    failureThreshold: r.int('global.proxy.startupProbe.failureThreshold', 1, 100000) ?? s.startupProbe.failureThreshold,
  };
  s.holdApplicationUntilProxyStarts = r.bool('global.proxy.holdApplicationUntilProxyStarts') ?? s.holdApplicationUntilProxyStarts;
  s.rewriteAppHTTPProbe = r.bool('sidecarInjectorWebhook.rewriteAppHTTPProbe') ?? s.rewriteAppHTTPProbe;
  s.enablePrometheusMerge = r.bool('meshConfig.enablePrometheusMerge') ?? s.enablePrometheusMerge;
  // On top of the mesh config's defaultConfig (the base), as istiod merges them.
  const dc = r.object('meshConfig.defaultConfig');
  if (dc) s.proxyConfig = mergeProxyConfig(s.proxyConfig, dc);
  s.nativeSidecars = r.bool('global.nativeSidecars') ?? s.nativeSidecars;
}

/** Istio's injector config (data.config): the policy, selectors and extra annotations. */
function applyConfig(s: InjectorSettings, config: Record<string, unknown>): void {
  const r = new Reader(config, 'data.config');
  s.policy = r.oneOf('policy', ['enabled', 'disabled'] as const) ?? s.policy;
  s.neverInjectSelector = r.selectors('neverInjectSelector') ?? s.neverInjectSelector;
  s.alwaysInjectSelector = r.selectors('alwaysInjectSelector') ?? s.alwaysInjectSelector;
  s.injectedAnnotations = r.stringMap('injectedAnnotations') ?? s.injectedAnnotations;
}

/**
 * meshd's own keys (data.meshd), which win over the Istio-shaped ones. One line per key,
 * alike on purpose: each names its key, its type and what it sets.
 */
function applyMeshd(s: InjectorSettings, m: Record<string, unknown>): void {
  const r = new Reader(m, 'data.meshd');
  s.mode = r.oneOf('mode', ['agent', 'agentless'] as const) ?? s.mode;
  s.envoyImage = r.nonEmpty('envoyImage') ?? s.envoyImage;
  s.meshdImage = r.nonEmpty('meshdImage') ?? s.meshdImage;
  s.nativeSidecars = r.bool('nativeSidecars') ?? s.nativeSidecars;
  s.hub = r.nonEmpty('hub') ?? s.hub;
  s.tag = r.nonEmpty('tag') ?? s.tag;
  s.proxyImageName = r.nonEmpty('proxyImage') ?? s.proxyImageName;
  if (r.string('imagePullPolicy') !== undefined) s.imagePullPolicy = r.oneOf('imagePullPolicy', ['Always', 'IfNotPresent', 'Never'] as const);
  s.istioNamespace = r.nonEmpty('istioNamespace') ?? s.istioNamespace;
  s.clusterId = r.nonEmpty('clusterId') ?? s.clusterId;
  s.meshId = r.nonEmpty('meshId') ?? s.meshId;
  s.trustDomain = r.nonEmpty('trustDomain') ?? s.trustDomain;
  s.revision = r.nonEmpty('revision') ?? s.revision;
  if (r.object('resources')) s.resources = { requests: r.stringMap('resources.requests') ?? {}, limits: r.stringMap('resources.limits') ?? {} };
  const pc = r.object('proxyConfig');
  if (pc) s.proxyConfig = mergeProxyConfig(s.proxyConfig, pc);
}

export interface ConfigMapLike {
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, unknown>;
}

/**
 * The injector settings a ConfigMap describes, on top of `base` (Istio's defaults). Throws a
 * SettingsError naming the key (`data.values: global.proxy.statusPort: expected ...`).
 */
export function parseInjectorSettings(configMap: ConfigMapLike, base: InjectorSettings = defaultInjectorSettings()): InjectorSettings {
  const s: InjectorSettings = structuredClone(base);
  const data = configMap.data ?? {};
  if (!isRecord(data)) throw new SettingsError('data', 'expected a map of strings');
  for (const key of ['values', 'config', 'meshd'] as const) {
    const raw = data[key];
    if (raw === undefined || raw === null) continue;
    if (typeof raw !== 'string') throw new SettingsError(`data.${key}`, `expected a string (a ConfigMap's data are strings), got ${JSON.stringify(raw)}`);
    const doc = parseDocument(raw, `data.${key}`);
    if (key === 'values') applyValues(s, doc);
    else if (key === 'config') applyConfig(s, doc);
    else applyMeshd(s, doc);
  }
  return s;
}

/** `<hub>/<name>:<tag>`, or the name itself when it is a full image reference (contains `/`). */
export function proxyImage(s: InjectorSettings): string {
  return s.proxyImageName.includes('/') ? s.proxyImageName : `${s.hub}/${s.proxyImageName}:${s.tag}`;
}

/** istiod's address for certificates and xDS: `istiod[-<rev>].<ns>.svc:15012`. */
export function istiodAddress(s: InjectorSettings): string {
  if (s.caAddress) return s.caAddress;
  const svc = s.revision && s.revision !== 'default' ? `istiod-${s.revision}` : 'istiod';
  return `${svc}.${s.istioNamespace}.svc:15012`;
}
