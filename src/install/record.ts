// What `meshd install` installed, kept in the cluster as ConfigMap `meshd-install` in
// istio-system: the profile, the --set flags and every object, so verify-install checks what
// was installed (not what this meshd would install) and uninstall knows the profile.
import { MESHD_LABEL, MESHD_LABEL_VALUE, type InstallCluster, type ObjectRef } from './cluster.js';
import { field, type KubeObject } from './objects.js';

export const RECORD_NAME = 'meshd-install';
export const INSTALL_NAMESPACE = 'istio-system';

export interface InstallRecord {
  profile: string;
  /** The --set flags, "key=value". */
  flags: string[];
  version: string;
  objects: ObjectRef[];
}

const refLine = (o: ObjectRef): string => `${o.apiVersion} ${o.kind} ${o.metadata.namespace ?? ''} ${o.metadata.name}`;

export function recordObject(r: InstallRecord): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: RECORD_NAME, namespace: INSTALL_NAMESPACE, labels: { [MESHD_LABEL]: MESHD_LABEL_VALUE, 'app.kubernetes.io/managed-by': 'meshd-install' } },
    data: {
      profile: r.profile,
      set: r.flags.join('\n'),
      version: r.version,
      objects: r.objects.map(refLine).join('\n'),
    },
  };
}

/** The record in the cluster, or undefined when there is none; throws when it cannot be read as one. */
export async function readRecord(cluster: InstallCluster): Promise<InstallRecord | undefined> {
  const cm = await cluster.get({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: RECORD_NAME, namespace: INSTALL_NAMESPACE } });
  if (cm === undefined) return undefined;
  const where = `ConfigMap ${INSTALL_NAMESPACE}/${RECORD_NAME}`;
  const text = (key: string): string => {
    const v = field(cm, 'data', key);
    if (typeof v !== 'string') throw new Error(`${where}: data.${key} is missing; reinstall with meshd install, or pass --set profile=<name>`);
    return v;
  };
  const objects = text('objects')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, 10_000)
    .map((line, i): ObjectRef => {
      const parts = line.split(' ');
      if (parts.length !== 4) throw new Error(`${where}: data.objects line ${i + 1} is not "apiVersion kind namespace name": ${line.slice(0, 200)}`);
      const [apiVersion, kind, namespace, name] = parts as [string, string, string, string];
      return { apiVersion, kind, metadata: { name, ...(namespace !== '' ? { namespace } : {}) } };
    });
  return {
    profile: text('profile'),
    flags: text('set')
      .split('\n')
      .filter((l) => l !== ''),
    version: text('version'),
    objects,
  };
}
