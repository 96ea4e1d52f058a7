// Applying plain manifests to the test apiserver: each object's REST path from its
// apiVersion and kind, server-side apply, and waiting for CRDs to be established.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeCluster } from './kube.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** Plural resource names of the kinds tests apply, and whether they are cluster-scoped. */
const RESOURCES: Record<string, { plural: string; cluster?: boolean }> = {
  Namespace: { plural: 'namespaces', cluster: true },
  Service: { plural: 'services' },
  EndpointSlice: { plural: 'endpointslices' },
  Pod: { plural: 'pods' },
  Secret: { plural: 'secrets' },
  ConfigMap: { plural: 'configmaps' },
  ServiceAccount: { plural: 'serviceaccounts' },
  Deployment: { plural: 'deployments' },
  PodDisruptionBudget: { plural: 'poddisruptionbudgets' },
  ClusterRole: { plural: 'clusterroles', cluster: true },
  ClusterRoleBinding: { plural: 'clusterrolebindings', cluster: true },
  Role: { plural: 'roles' },
  RoleBinding: { plural: 'rolebindings' },
  CustomResourceDefinition: { plural: 'customresourcedefinitions', cluster: true },
  Gateway: { plural: 'gateways' },
  VirtualService: { plural: 'virtualservices' },
  DestinationRule: { plural: 'destinationrules' },
  PeerAuthentication: { plural: 'peerauthentications' },
  AuthorizationPolicy: { plural: 'authorizationpolicies' },
  RequestAuthentication: { plural: 'requestauthentications' },
  Sidecar: { plural: 'sidecars' },
  ServiceEntry: { plural: 'serviceentries' },
  WorkloadEntry: { plural: 'workloadentries' },
  Telemetry: { plural: 'telemetries' },
};

export function collectionPath(apiVersion: string, kind: string, namespace?: string): string {
  const r = RESOURCES[kind];
  if (!r) throw new Error(`no REST path known for kind ${kind}`);
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return r.cluster ? `${base}/${r.plural}` : `${base}/namespaces/${namespace ?? 'default'}/${r.plural}`;
}

export function objectPath(o: KubeObject): string {
  return `${collectionPath(o.apiVersion, o.kind, o.metadata.namespace)}/${o.metadata.name}`;
}

export function readManifests(...files: string[]): KubeObject[] {
  return files.flatMap((f) =>
    parseAllDocuments(readFileSync(f, 'utf8'))
      .map((d) => d.toJS() as KubeObject | null)
      .filter((o): o is KubeObject => o !== null && typeof o === 'object' && typeof o.kind === 'string'),
  );
}

/** Server-side applies each object (as admin unless a token is given). */
export async function applyAll(kube: KubeCluster, objects: KubeObject[], token?: string): Promise<void> {
  for (const o of objects) await kube.apply(objectPath(o), o, token ? { token } : {});
}

export async function waitForCrds(kube: KubeCluster, names: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const crd = await kube.request<{ status?: { conditions?: { type: string; status: string }[] } }>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** An EndpointSlice of `service` with ready endpoints, each the Pod `name` at `ip`, as the EndpointSlice controller writes it. */
export function readyEndpointSlice(o: { name: string; service: string; ports: { name: string; port: number }[]; pods: { ip: string; name: string; namespace: string }[] }): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: o.name, labels: { 'kubernetes.io/service-name': o.service } },
    addressType: 'IPv4',
    ports: o.ports.map((p) => ({ ...p, protocol: 'TCP' })),
    endpoints: o.pods.map((p) => ({ addresses: [p.ip], conditions: { ready: true }, targetRef: { kind: 'Pod', name: p.name, namespace: p.namespace } })),
  };
}
