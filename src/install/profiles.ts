// Profiles: the directories under manifests/profiles/, each a kustomization, rendered with
// the `--set` overrides on top; and a profile's effective settings in IstioOperator's shape
// (`meshd profile dump`), read back from the rendered objects so they cannot disagree.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { GATEWAYS } from './components.js';
import { renderKustomization } from './kustomize.js';
import { field, isJsonObject, sortForApply, type Json, type JsonObject, type KubeObject } from './objects.js';
import { applyOverrides, type InstallSettings } from './settings.js';

/** The profile names, sorted (the directories of manifests/profiles/). */
export function listProfiles(manifests: string): string[] {
  const dir = join(manifests, 'profiles');
  return readdirSync(dir)
    .filter((n) => statSync(join(dir, n)).isDirectory())
    .sort();
}

/** The objects `meshd install` applies for these settings, in apply order. */
export function renderInstall(manifests: string, settings: InstallSettings): KubeObject[] {
  const profiles = listProfiles(manifests);
  if (!profiles.includes(settings.profile)) throw new Error(`unknown profile "${settings.profile}"; the profiles are ${profiles.join(', ')} (meshd profile list)`);
  const base = renderKustomization(join(manifests, 'profiles', settings.profile)).objects;
  return sortForApply(applyOverrides(base, settings.overrides, { renderDir: (dir) => renderKustomization(join(manifests, dir)).objects }));
}

/** Every object any profile or component can install: what uninstall and precheck look for. */
export function everyInstallableObject(manifests: string): KubeObject[] {
  const seen = new Map<string, KubeObject>();
  const add = (objs: KubeObject[]) => objs.forEach((o) => seen.set(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o));
  for (const p of listProfiles(manifests)) add(renderKustomization(join(manifests, 'profiles', p)).objects);
  for (const g of GATEWAYS) add(renderKustomization(join(manifests, g.dir)).objects);
  return sortForApply([...seen.values()]);
}

/** The effective settings of rendered objects, as IstioOperator YAML would hold them. */
export function effectiveSettings(objects: readonly KubeObject[], profile: string): JsonObject {
  const get = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const istiod = get('Deployment', 'istiod');
  const containers = field(istiod, 'spec', 'template', 'spec', 'containers');
  const discovery = Array.isArray(containers) ? containers.find((c) => isJsonObject(c) && c.name === 'discovery') : undefined;
  const parseData = (name: string, key: string, json: boolean): JsonObject => {
    const text = field(get('ConfigMap', name), 'data', key);
    if (typeof text !== 'string' || text.trim() === '') return {};
    const v: unknown = json ? JSON.parse(text) : parseYaml(text);
    return isJsonObject(v) ? v : {};
  };
  const injectorValues = parseData('istio-sidecar-injector', 'values', true);
  const components: JsonObject = {
    pilot: { enabled: istiod !== undefined, ...(istiod !== undefined ? { k8s: { replicaCount: (field(istiod, 'spec', 'replicas') as Json) ?? 1 } } : {}) },
  };
  for (const g of GATEWAYS) components[g.list] = [{ name: g.name, enabled: get('Deployment', g.name) !== undefined }];
  const global = isJsonObject(injectorValues.global) ? injectorValues.global : {};
  return {
    apiVersion: 'install.istio.io/v1alpha1',
    kind: 'IstioOperator',
    spec: {
      profile,
      components,
      meshConfig: parseData('istio', 'mesh', false),
      values: {
        global: { hub: global.hub ?? null, tag: global.tag ?? null },
        pilot: { image: (field(discovery, 'image') as Json) ?? null },
      },
    },
  };
}

/** The value at a dotted path under spec ("components.pilot", "meshConfig.accessLogFile", "components.ingressGateways[0]"). */
export function atConfigPath(settings: JsonObject, path: string): Json {
  let cur: Json = settings.spec ?? null;
  const tokens = path.replace(/^spec\./, '').split('.').filter((t) => t !== '');
  for (const token of tokens) {
    const m = /^([^[\]]+)((?:\[\d+\])*)$/.exec(token);
    if (!m) throw new Error(`--config-path ${path}: "${token}" is not a field name (with optional [index])`);
    if (!isJsonObject(cur) || !(m[1]! in cur)) throw new Error(`--config-path ${path}: no field "${m[1]}"${isJsonObject(cur) ? ` (fields here: ${Object.keys(cur).join(', ')})` : ''}`);
    cur = cur[m[1]!]!;
    for (const idx of m[2]!.match(/\d+/g) ?? []) {
      if (!Array.isArray(cur) || Number(idx) >= cur.length) throw new Error(`--config-path ${path}: no item [${idx}] in "${m[1]}"`);
      cur = cur[Number(idx)]!;
    }
  }
  return cur;
}
