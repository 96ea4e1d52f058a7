// `version`: client, control plane (each replica) and data plane versions, printed as
// `istioctl version` prints them.
import type { ReplicaSyncz } from './status-table.js';
import { proxyName } from './status-table.js';

export interface ReplicaVersion {
  /** The replica's name (its pod). */
  id: string;
  version: string;
  revision?: string;
}

export interface VersionReport {
  clientVersion: { version: string; revision: string };
  meshVersion: { Component: string; Revision: string; Info: { version: string; revision: string; id: string } }[];
  dataPlaneVersion: { ID: string; IstioVersion: string }[];
}

export function versionReport(client: string, replicas: readonly ReplicaVersion[], syncz: readonly ReplicaSyncz[]): VersionReport {
  const proxies = new Map<string, string>();
  for (const r of syncz) for (const e of r.entries) proxies.set(proxyName(e.proxy), e.istio_version ?? '');
  return {
    clientVersion: { version: client, revision: 'meshd' },
    meshVersion: replicas.map((r) => ({ Component: 'istiod', Revision: 'default', Info: { version: r.version, revision: r.revision ?? 'meshd', id: r.id } })),
    dataPlaneVersion: [...proxies].sort(([a], [b]) => (a < b ? -1 : 1)).map(([ID, IstioVersion]) => ({ ID, IstioVersion })),
  };
}

/** `1.2.3 (4 proxies), 1.2.4 (1 proxies)`, or `none`, as istioctl writes it. */
export function renderProxyVersions(dp: VersionReport['dataPlaneVersion']): string {
  if (dp.length === 0) return 'none';
  const counts = new Map<string, number>();
  for (const p of dp) counts.set(p.IstioVersion, (counts.get(p.IstioVersion) ?? 0) + 1);
  return [...counts.keys()]
    .sort()
    .map((v) => `${v} (${counts.get(v)} proxies)`)
    .join(', ');
}

/** The short form: identical replica versions fold into one `control plane version:` line. */
export function versionText(r: VersionReport, short = true): string {
  const lines: string[] = [];
  if (short) {
    lines.push(`client version: ${r.clientVersion.version}`);
    const versions = new Set(r.meshVersion.map((m) => m.Info.version));
    if (r.meshVersion.length > 0 && versions.size === 1) lines.push(`control plane version: ${r.meshVersion[0]!.Info.version}`);
    else for (const m of r.meshVersion) lines.push(`${m.Component} version: ${m.Info.version}`);
    lines.push(`data plane version: ${renderProxyVersions(r.dataPlaneVersion)}`);
  } else {
    lines.push(`client version: ${JSON.stringify(r.clientVersion)}`);
    for (const m of r.meshVersion) lines.push(`${m.Component} version: ${JSON.stringify(m.Info)}`);
    for (const p of r.dataPlaneVersion) lines.push(`data plane version: ${JSON.stringify(p)}`);
  }
  return lines.join('\n') + '\n';
}
