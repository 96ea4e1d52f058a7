// A Service of the mesh as the snapshot holds it (model/mesh.ts builds them).
import type { Protocol } from './protocol.js';
import type { Labels } from './labels.js';

export interface MeshServicePort {
  name: string;
  port: number;
  targetPort: number | string;
  protocol: Protocol;
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
}
