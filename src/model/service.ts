// A service of the mesh's registry as the snapshot holds it (model/mesh.ts builds them from
// Services, model/service-entries.ts from ServiceEntry hosts).
import type { Protocol } from './protocol.js';
import type { Labels } from './labels.js';
import { visibleTo } from './istio-scope.js';

export interface MeshEndpoint {
  address: string;
  port: number;
  labels: Labels;
  podName?: string;
  /** The service account of the endpoint's Pod, when known: the identity mTLS expects. */
  serviceAccount?: string;
  zone?: string;
  /** Region and sub-zone of the locality (ServiceEntry endpoints and WorkloadEntries). */
  region?: string;
  subZone?: string;
  /** Load-balancing weight (1 when unset). */
  weight?: number;
  /** The endpoint's network, when given (recorded only: meshd has one network). */
  network?: string;
}

export interface MeshServicePort {
  name: string;
  port: number;
  targetPort: number | string;
  protocol: Protocol;
}

/** Where a service of the registry came from when it is a ServiceEntry's host (model/service-entries.ts). */
export interface ServiceEntryOrigin {
  /** The ServiceEntry, for its metadata. */
  readonly namespace: string;
  readonly name: string;
  readonly location: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  readonly resolution: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
  /** Its `addresses`: IPs and CIDR blocks (TCP listeners match them). */
  readonly addresses: readonly string[];
  /** Its `exportTo` (every namespace when unset). */
  readonly exportTo: readonly string[] | undefined;
  /** Its `subjectAltNames`: the identities mTLS to it accepts, when given. */
  readonly subjectAltNames: readonly string[] | undefined;
}

export interface MeshService {
  /** `<name>.<namespace>.svc.<domain>` */
  hostname: string;
  name: string;
  namespace: string;
  /** Undefined for headless services. */
  clusterIP: string | undefined;
  ports: MeshServicePort[];
  selector: Labels | undefined;
  labels: Labels;
  /** Set for a ServiceEntry's host: `name` is the host, `namespace` the ServiceEntry's. */
  entry?: ServiceEntryOrigin;
}

/** Whether clients in `clientNamespace` see `svc`: a ServiceEntry's host by its exportTo; Services everywhere. */
export function visibleFrom(svc: MeshService, clientNamespace: string): boolean {
  return svc.entry === undefined || visibleTo(svc.entry.exportTo, svc.entry.namespace, clientNamespace);
}
