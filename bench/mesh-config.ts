// The benchmark mesh as Kubernetes YAML: N HTTP services in `default`, each with one
// EndpointSlice of M endpoints, one file per service (as `kubectl get -o yaml` per object
// would leave them). Addresses are unique and chosen so that one can be searched for
// as a byte string without matching another.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serviceYaml } from '../test/support/meshd.js';

export const DOMAIN = 'cluster.local';
export const HTTP_PORT = 80;
export const TARGET_PORT = 8080;

export function serviceName(i: number): string {
  return `svc-${String(i).padStart(4, '0')}`;
}

export function newServiceName(k: number): string {
  return `svc-new-${k}`;
}

export function hostname(name: string): string {
  return `${name}.default.svc.${DOMAIN}`;
}

export function clusterName(name: string): string {
  return `outbound|${HTTP_PORT}||${hostname(name)}`;
}

/** 10.96.x.y, unique for i < 62500. */
function clusterIP(i: number): string {
  return `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** Endpoint j of service i: 10.(100+i/100).(i%100).(j+1), unique for i < 15600 and j < 250. */
export function endpointIP(i: number, j: number): string {
  return `10.${100 + Math.floor(i / 100)}.${i % 100}.${j + 1}`;
}

/** The address that replaces endpoint 0 in endpoint change k: nothing else starts with it. */
export function changedEndpointIP(k: number): string {
  return `10.250.${k % 250}.${250 - Math.floor(k / 250)}`;
}

export interface ServiceSpec {
  name: string;
  clusterIP: string;
  endpoints: string[];
}

export function serviceSpec(i: number, endpoints: number): ServiceSpec {
  return { name: serviceName(i), clusterIP: clusterIP(i), endpoints: Array.from({ length: endpoints }, (_, j) => endpointIP(i, j)) };
}

export function newServiceSpec(k: number, endpoints: number): ServiceSpec {
  return { name: newServiceName(k), clusterIP: `10.97.${Math.floor(k / 250)}.${(k % 250) + 1}`, endpoints: Array.from({ length: endpoints }, (_, j) => `10.251.${k % 250}.${j + 1}`) };
}

export function renderService(s: ServiceSpec): string {
  return serviceYaml({
    name: s.name,
    clusterIP: s.clusterIP,
    ports: [{ name: 'http', port: HTTP_PORT, targetPort: TARGET_PORT }],
    endpoints: s.endpoints.map((ip) => ({ ip })),
  });
}

export function serviceFile(name: string): string {
  return `${name}.yaml`;
}

/** Writes a file atomically (temp name, then rename), as kubectl-style tools and editors do. */
export function writeAtomic(dir: string, file: string, text: string): void {
  const tmp = join(dir, `.${file}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, file));
}

/** Writes the whole mesh into `dir` (created if needed). */
export function writeMesh(dir: string, services: number, endpoints: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < services; i++) writeFileSync(join(dir, serviceFile(serviceName(i))), renderService(serviceSpec(i, endpoints)));
}

// ---- traffic management (the `istio` case) ---------------------------------------------------

/** The file holding service i's DestinationRule and VirtualService. */
export function istioFile(i: number): string {
  return `istio-${serviceName(i)}.yaml`;
}

/** DestinationRule for service i: subsets v1/v2 by `version`; every other one has a trafficPolicy. */
export function renderDestinationRule(i: number): string {
  const name = serviceName(i);
  const policy =
    i % 2 === 0
      ? [
          '  trafficPolicy:',
          '    connectionPool:',
          '      tcp: {maxConnections: 100, connectTimeout: 2s}',
          '      http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 5}',
          '    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 30s}',
        ]
      : [];
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: DestinationRule',
    `metadata: {name: ${name}, namespace: default}`,
    'spec:',
    `  host: ${name}`,
    ...policy,
    '  subsets:',
    '  - name: v1',
    '    labels: {version: v1}',
    '  - name: v2',
    '    labels: {version: v2}',
  ].join('\n');
}

/** VirtualService for service i: header match -> v2, else v1/v2 weighted `v1Weight`/(100 - v1Weight). */
export function renderVirtualService(i: number, v1Weight = 90): string {
  const name = serviceName(i);
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: VirtualService',
    `metadata: {name: ${name}, namespace: default}`,
    'spec:',
    `  hosts: [${name}]`,
    '  http:',
    '  - name: canary-header',
    '    match:',
    '    - headers:',
    '        x-canary: {exact: "true"}',
    '    route:',
    `    - destination: {host: ${name}, subset: v2}`,
    '  - name: default',
    '    route:',
    `    - destination: {host: ${name}, subset: v1}`,
    `      weight: ${v1Weight}`,
    `    - destination: {host: ${name}, subset: v2}`,
    `      weight: ${100 - v1Weight}`,
  ].join('\n');
}

export function renderIstio(i: number, v1Weight = 90): string {
  return `${renderDestinationRule(i)}\n---\n${renderVirtualService(i, v1Weight)}\n`;
}

/** Writes a DestinationRule and a VirtualService for services 0..count-1, one file per service. */
export function writeIstio(dir: string, count: number): void {
  for (let i = 0; i < count; i++) writeFileSync(join(dir, istioFile(i)), renderIstio(i));
}
