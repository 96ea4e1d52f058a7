// `--set key=value`, as istioctl takes it, for the keys meshd knows: each key says how its
// value is checked, where it lands in the rendered objects, and how it is read back (for
// `meshd profile dump`). An unknown key or a bad value is refused with what would be valid.
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { GATEWAYS } from './components.js';
import { describeObject, field, isJsonObject, type Json, type JsonObject, type KubeObject } from './objects.js';
import { parseDurationMs } from '../util/duration.js';

export const DEFAULT_PROFILE = 'default';

export interface Override {
  key: string;
  value: Json;
}

export interface InstallSettings {
  profile: string;
  /** In the order given; a key given twice keeps its last value. */
  overrides: Override[];
}

/** What applying a setting may need besides the objects: the objects of a component's directory. */
export interface SettingContext {
  renderDir(dir: string): KubeObject[];
}

interface SettingDef {
  key: string;
  help: string;
  parse(text: string): Json;
  apply(objects: KubeObject[], value: Json, ctx: SettingContext): KubeObject[];
}

class SettingError extends Error {
  override readonly name = 'SettingError';
}

// ---------------------------------------------------------------------------------------------
// Values

const parseBool = (text: string): boolean => {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new SettingError(`"${text}" is not a boolean; use true or false`);
};
const parseEnum =
  (...allowed: string[]) =>
  (text: string): string => {
    if (!allowed.includes(text)) throw new SettingError(`"${text}" is not one of ${allowed.join(', ')}`);
    return text;
  };
const parseString = (text: string): string => text;
const parseNonEmpty = (text: string): string => {
  if (text.trim() === '') throw new SettingError('must not be empty');
  return text;
};
const parseReplicas = (text: string): number => {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 100) throw new SettingError(`"${text}" is not a whole number from 1 to 100`);
  return Number(text);
};
const parseDuration = (text: string): string => {
  if (parseDurationMs(text) === undefined) throw new SettingError(`"${text}" is not a duration such as 10s or 250ms`);
  return text;
};
const parseImage = (text: string): string => {
  if (!/^[a-z0-9][a-zA-Z0-9._\-/:@]*$/.test(text)) throw new SettingError(`"${text}" is not an image reference such as ghcr.io/example/meshd:0.1.0`);
  return text;
};

// ---------------------------------------------------------------------------------------------
// Where values land

function find(objects: KubeObject[], kind: string, name: string, forKey: string): KubeObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (o === undefined) throw new SettingError(`${forKey}: the profile has no ${kind} ${name} to set it on`);
  return o;
}

function setPath(root: JsonObject, path: readonly string[], value: Json): void {
  let cur = root;
  for (const p of path.slice(0, -1)) {
    if (!isJsonObject(cur[p])) cur[p] = {};
    cur = cur[p] as JsonObject;
  }
  cur[path[path.length - 1]!] = value;
}

/** Edits a YAML or JSON document held in a ConfigMap key. */
function editConfigMapDoc(objects: KubeObject[], name: string, dataKey: string, format: 'yaml' | 'json', forKey: string, edit: (doc: JsonObject) => void): KubeObject[] {
  const cm = find(objects, 'ConfigMap', name, forKey);
  const data = isJsonObject(cm.data) ? cm.data : {};
  const text = typeof data[dataKey] === 'string' ? data[dataKey] : '';
  const doc: unknown = text.trim() === '' ? {} : format === 'json' ? JSON.parse(text) : parseYaml(text);
  if (!isJsonObject(doc)) throw new SettingError(`${forKey}: ${describeObject(cm)} data.${dataKey} is not a map`);
  edit(doc);
  const out = format === 'json' ? JSON.stringify(doc) : stringifyYaml(doc, { lineWidth: 0 }).trimEnd();
  return objects.map((o) => (o === cm ? { ...cm, data: { ...data, [dataKey]: out } } : o));
}

function editIstiodContainer(objects: KubeObject[], forKey: string, edit: (d: JsonObject, c: JsonObject) => void): KubeObject[] {
  const d = structuredClone(find(objects, 'Deployment', 'istiod', forKey));
  const containers = field(d, 'spec', 'template', 'spec', 'containers');
  const c = Array.isArray(containers) ? containers.find((x) => isJsonObject(x) && x.name === 'discovery') : undefined;
  if (!isJsonObject(c)) throw new SettingError(`${forKey}: Deployment istio-system/istiod has no container "discovery"`);
  edit(d, c);
  return objects.map((o) => (o.kind === 'Deployment' && o.metadata.name === 'istiod' ? d : o));
}

const MESH_CONFIG = 'istio';

const meshSetting = (path: string, help: string, parse: (t: string) => Json): SettingDef => ({
  key: `meshConfig.${path}`,
  help,
  parse,
  apply: (objects, value) => editConfigMapDoc(objects, MESH_CONFIG, 'mesh', 'yaml', `meshConfig.${path}`, (doc) => setPath(doc, path.split('.'), value)),
});

const gatewaySetting = (g: (typeof GATEWAYS)[number]): SettingDef => ({
  key: `components.${g.list}[0].enabled`,
  help: `install the ${g.name} Deployment and Service (true, false)`,
  parse: parseBool,
  apply: (objects, value, ctx) => {
    const own = ctx.renderDir(g.dir);
    const keys = new Set(own.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`));
    const rest = objects.filter((o) => !keys.has(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`));
    return value === true ? [...rest, ...own] : rest;
  },
});

const SETTINGS: readonly SettingDef[] = [
  {
    key: 'values.pilot.image',
    help: "istiod's (meshd's) container image, e.g. ghcr.io/example/meshd:0.1.0 (default meshd:dev)",
    parse: parseImage,
    apply: (objects, value) => editIstiodContainer(objects, 'values.pilot.image', (_d, c) => (c.image = value)),
  },
  {
    key: 'components.pilot.k8s.replicaCount',
    help: 'istiod replicas (1 to 100)',
    parse: parseReplicas,
    apply: (objects, value) => editIstiodContainer(objects, 'components.pilot.k8s.replicaCount', (d) => setPath(d, ['spec', 'replicas'], value)),
  },
  ...(['hub', 'tag'] as const).map(
    (k): SettingDef => ({
      key: `values.global.${k}`,
      help: k === 'hub' ? "the registry of the sidecar's proxyv2 image (default docker.io/istio)" : "the tag of the sidecar's proxyv2 image (default 1.31.1)",
      parse: parseNonEmpty,
      apply: (objects, value) =>
        editConfigMapDoc(objects, 'istio-sidecar-injector', 'values', 'json', `values.global.${k}`, (doc) => setPath(doc, ['global', k], value)),
    }),
  ),
  meshSetting('accessLogFile', 'where proxies write access logs: "" (off) or /dev/stdout', parseString),
  meshSetting('accessLogEncoding', 'TEXT or JSON', parseEnum('TEXT', 'JSON')),
  meshSetting('accessLogFormat', "the access log format (empty: Istio's default)", parseString),
  meshSetting('outboundTrafficPolicy.mode', 'ALLOW_ANY or REGISTRY_ONLY', parseEnum('ALLOW_ANY', 'REGISTRY_ONLY')),
  meshSetting('enableAutoMtls', 'true or false', parseBool),
  meshSetting('trustDomain', 'the SPIFFE trust domain (default cluster.local)', parseNonEmpty),
  meshSetting('connectTimeout', 'connect timeout of upstream connections, e.g. 10s', parseDuration),
  meshSetting('defaultConfig.holdApplicationUntilProxyStarts', 'true or false', parseBool),
  ...GATEWAYS.map(gatewaySetting),
];

/** Every key `--set` accepts, with what it takes. */
export const SETTING_KEYS: readonly { key: string; help: string }[] = [{ key: 'profile', help: 'minimal, default or demo' }, ...SETTINGS.map((s) => ({ key: s.key, help: s.help }))];

/** Istio's older spelling of list indexes and names that mean the same key. */
function canonicalKey(key: string): string {
  return key.replace(/^spec\./, '').replace(/\[name:istio-(ingress|egress)gateway\]/, '[0]');
}

/** Parses `--set` flags (each "key=value"); throws an error naming the flag and what is valid. */
export function parseSetFlags(flags: readonly string[]): InstallSettings {
  let profile = DEFAULT_PROFILE;
  const byKey = new Map<string, Json>();
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new Error(`--set ${flag}: expected key=value, e.g. --set profile=demo`);
    const key = canonicalKey(flag.slice(0, eq).trim());
    const text = flag.slice(eq + 1);
    if (key === 'profile') {
      if (!/^[a-z0-9-]+$/.test(text)) throw new Error(`--set ${flag}: "${text}" is not a profile name`);
      profile = text;
      continue;
    }
    const def = SETTINGS.find((s) => s.key === key);
    if (def === undefined) {
      throw new Error(`--set ${flag}: unknown key "${key}". Known keys:\n${SETTING_KEYS.map((k) => `  ${k.key.padEnd(48)} ${k.help}`).join('\n')}`);
    }
    try {
      byKey.delete(key);
      byKey.set(key, def.parse(text));
    } catch (err) {
      throw new Error(`--set ${flag}: ${(err as Error).message}`, { cause: err });
    }
  }
  return { profile, overrides: [...byKey].map(([key, value]) => ({ key, value })) };
}

/** Applies the overrides to a profile's objects, in order (components first, so later keys see their objects). */
export function applyOverrides(objects: readonly KubeObject[], overrides: readonly Override[], ctx: SettingContext): KubeObject[] {
  const ordered = [...overrides].sort((a, b) => Number(!a.key.startsWith('components.')) - Number(!b.key.startsWith('components.')));
  let out = [...objects];
  for (const o of ordered) {
    const def = SETTINGS.find((s) => s.key === o.key)!;
    try {
      out = def.apply(out, o.value, ctx);
    } catch (err) {
      throw new Error(`--set ${o.key}=${typeof o.value === 'string' ? o.value : JSON.stringify(o.value)}: ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}

/** The overrides as `--set` flags again, e.g. to record them. */
export const overridesAsFlags = (s: InstallSettings): string[] => [`profile=${s.profile}`, ...s.overrides.map((o) => `${o.key}=${typeof o.value === 'string' ? o.value : JSON.stringify(o.value)}`)];
