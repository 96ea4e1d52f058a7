// The parts of an installation, named as istioctl names them in its progress lines: "Istio
// core" (CRDs and the namespace), "Istiod" (the control plane and what it reads), and the
// gateways, each from its own directory under manifests/gateways/.
import type { KubeObject } from './objects.js';

export interface GatewayComponent {
  /** The Deployment, Service and ServiceAccount name, and the pods' `app` label. */
  name: string;
  /** Under manifests/. */
  dir: string;
  /** The IstioOperator list it belongs to. */
  list: 'ingressGateways' | 'egressGateways';
  title: string;
}

export const GATEWAYS: readonly GatewayComponent[] = [
  { name: 'istio-ingressgateway', dir: 'gateways/ingress', list: 'ingressGateways', title: 'Ingress gateways' },
  { name: 'istio-egressgateway', dir: 'gateways/egress', list: 'egressGateways', title: 'Egress gateways' },
];

export const CORE = 'Istio core';
export const ISTIOD = 'Istiod';

/** The components in the order istioctl installs and reports them. */
export const COMPONENT_ORDER: readonly string[] = [CORE, ISTIOD, ...GATEWAYS.map((g) => g.title)];

/** The component an object belongs to. */
export function componentOf(o: KubeObject): string {
  if (o.kind === 'CustomResourceDefinition' || o.kind === 'Namespace') return CORE;
  const app = o.metadata.labels?.app;
  return GATEWAYS.find((g) => g.name === app)?.title ?? ISTIOD;
}

/** The components present among `objects`, in install order. */
export function componentsOf(objects: readonly KubeObject[]): string[] {
  const present = new Set(objects.map(componentOf));
  return COMPONENT_ORDER.filter((c) => present.has(c));
}

/** "A, B, and C", as istioctl lists components. */
export function listInWords(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  if (items.length === 2) return `${items[0]} and ${items[1]}`;
  return `${items.slice(0, -1).join(', ')}, and ${items[items.length - 1]}`;
}
