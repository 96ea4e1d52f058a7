// Which meshd this is: its version, and this replica's name (the pod's, in a cluster).
import { hostname } from 'node:os';

/** meshd's version (package.json's; a unit test keeps the two equal). */
export const MESHD_VERSION = '0.1.0';

/** This replica's name: $POD_NAME, else the host name (in a pod, the pod's name). */
export function replicaName(): string {
  return process.env.POD_NAME || hostname();
}

/**
 * The identifier meshd puts in a response's `control_plane`, in istiod's JSON shape
 * (`{"Component":"istiod","ID":<pod>,"Info":{"version":...}}`), which istioctl reads
 * for its ISTIOD column.
 */
export function controlPlaneIdentifier(id = replicaName()): string {
  return JSON.stringify({ Component: 'istiod', ID: id, Info: { version: MESHD_VERSION, revision: 'meshd', golang_version: '', status: 'Clean', tag: MESHD_VERSION } });
}
