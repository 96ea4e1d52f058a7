// The parts of Kubernetes pod objects the injector reads and writes, as plain JSON shapes.
// Fields the injector does not know are kept as they are (the index signatures), so an
// injected object round-trips everything else unchanged.

export type Labels = Record<string, string>;

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  [key: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  controller?: boolean;
  [key: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

export interface ContainerPort {
  name?: string;
  hostPort?: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
  [key: string]: unknown;
}

export interface HTTPGetAction {
  path?: string;
  port: number | string;
  host?: string;
  scheme?: string;
  httpHeaders?: { name: string; value: string }[];
  [key: string]: unknown;
}

export interface TCPSocketAction {
  port: number | string;
  host?: string;
  [key: string]: unknown;
}

export interface GRPCAction {
  port: number;
  service?: string;
  [key: string]: unknown;
}

export interface Probe {
  httpGet?: HTTPGetAction;
  tcpSocket?: TCPSocketAction;
  grpc?: GRPCAction;
  exec?: { command?: string[] };
  initialDelaySeconds?: number;
  timeoutSeconds?: number;
  periodSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
  [key: string]: unknown;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  [key: string]: unknown;
}

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
  [key: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: Record<string, unknown>;
  resources?: ResourceRequirements;
  securityContext?: Record<string, unknown>;
  volumeMounts?: VolumeMount[];
  restartPolicy?: string;
  [key: string]: unknown;
}

export interface Volume {
  name: string;
  [key: string]: unknown;
}

export interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  imagePullSecrets?: { name: string }[];
  hostNetwork?: boolean;
  serviceAccountName?: string;
  [key: string]: unknown;
}

/** A Pod, or the `template` of a workload: metadata and a pod spec. */
export interface PodTemplate {
  metadata?: ObjectMeta;
  spec?: PodSpec;
  [key: string]: unknown;
}

export interface Pod extends PodTemplate {
  apiVersion?: string;
  kind?: string;
}

/** The workload a pod belongs to, as Istio names it (its `DeploymentMeta` and `TypeMeta`). */
export interface WorkloadMeta {
  /** Empty when unknown (a pod with only a generated name and no controller). */
  name: string;
  namespace: string;
  kind: string;
  apiVersion: string;
}

export { isRecord } from '../util/is-record.js';
