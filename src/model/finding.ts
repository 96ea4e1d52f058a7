// What validation and analysis report: typed findings about one object each, with Istio's analysis
// message codes (IST0101...) where Istio has one, so `meshd analyze` reads as `istioctl
// analyze` does. Severities and their order are Istio's (Error, Warning, Info).
import type { MeshObject, ObjectError } from './objects.js';

export const SEVERITIES = ['Error', 'Warning', 'Info'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Where an object came from when it was read from a file: the path and the line of its document. */
export interface FindingOrigin {
  file: string;
  line: number;
}

export interface Finding {
  /** The object the finding is about (`Namespace` for namespaces, whose `namespace` is ""). */
  kind: string;
  namespace: string;
  name: string;
  /** The field at fault (`spec.http[0].route[0].destination.host`), or "" for the whole object. */
  field: string;
  /** Istio's analysis code (`IST0101`). */
  code: string;
  severity: Severity;
  /** The message after the code and object, as istioctl prints it. */
  message: string;
  origin?: FindingOrigin;
  /** The generation (metadata.generation) of the object the finding was made of, when known. */
  generation?: number;
}

/** The codes analysis reports: Istio's names and default severities (pkg/config/analysis/msg/messages.yaml). */
export const CODES = {
  ReferencedResourceNotFound: { code: 'IST0101', severity: 'Error' },
  NamespaceNotInjected: { code: 'IST0102', severity: 'Info' },
  PodMissingProxy: { code: 'IST0103', severity: 'Warning' },
  SchemaValidationError: { code: 'IST0106', severity: 'Error' },
  ConflictingMeshGatewayVirtualServiceHosts: { code: 'IST0109', severity: 'Error' },
  MultipleSidecarsWithoutWorkloadSelectors: { code: 'IST0111', severity: 'Error' },
  VirtualServiceDestinationPortSelectorRequired: { code: 'IST0112', severity: 'Error' },
  VirtualServiceHostNotFoundInGateway: { code: 'IST0132', severity: 'Warning' },
  ServiceEntryAddressesRequired: { code: 'IST0134', severity: 'Warning' },
  ConflictingGateways: { code: 'IST0145', severity: 'Error' },
  InvalidTelemetryProvider: { code: 'IST0157', severity: 'Warning' },
  ConflictingTelemetryWorkloadSelectors: { code: 'IST0159', severity: 'Error' },
  MultipleTelemetriesWithoutWorkloadSelectors: { code: 'IST0160', severity: 'Error' },
  GatewayPortNotDefinedOnService: { code: 'IST0162', severity: 'Warning' },
  IneffectivePolicy: { code: 'IST0167', severity: 'Warning' },
  DestinationRuleSubsetNotSelectPods: { code: 'IST0173', severity: 'Error' },
  UnknownDestinationRuleHost: { code: 'IST0174', severity: 'Warning' },
} as const satisfies Record<string, { code: string; severity: Severity }>;

export type CodeName = keyof typeof CODES;

/** The object a finding is about: kind, namespace and name. */
export type Subject = Pick<MeshObject, 'kind' | 'metadata'> | { kind: string; metadata: { namespace: string; name: string } };

/**
 * A finding of `code` about `subject`, at `field`, with the code's severity unless `severity`
 * is given; with the subject's generation (metadata.generation) when it has one.
 */
export function finding(code: CodeName, subject: Subject, field: string, message: string, severity?: Severity): Finding {
  const c = CODES[code];
  const f: Finding = { kind: subject.kind, namespace: subject.metadata.namespace, name: subject.metadata.name, field, code: c.code, severity: severity ?? c.severity, message };
  const generation = (subject.metadata as { generation?: unknown }).generation;
  if (typeof generation === 'number') f.generation = generation;
  return f;
}

/**
 * An object's own validation error (model/objects.ts, istio.ts, security.ts) as Istio reports
 * one: IST0106 SchemaValidationError (istioctl analyze and istiod's webhook use it for config
 * that fails validation), an Error: meshd does not serve the object.
 */
export function schemaFinding(e: ObjectError, generation?: number): Finding {
  const f = finding('SchemaValidationError', { kind: e.kind, metadata: { namespace: e.namespace, name: e.name } }, e.field, `Schema validation error: ${e.field ? `${e.field}: ` : ''}${e.message}`);
  if (generation !== undefined) f.generation = generation;
  return f;
}

/** Istio's message for a reference to something that does not exist: `Referenced host not found: "reviews2"`. */
export function notFound(subject: Subject, field: string, what: string, value: string): Finding {
  return finding('ReferencedResourceNotFound', subject, field, `Referenced ${what} not found: ${JSON.stringify(value)}`);
}

const RANK: Record<Severity, number> = { Error: 0, Warning: 1, Info: 2 };

/** True when `s` is as severe as `threshold` or more (Error ≥ Warning ≥ Info). */
export function atLeast(s: Severity, threshold: Severity): boolean {
  return RANK[s] <= RANK[threshold];
}

/** The severity named by `text`, case-insensitively; undefined when it names none. */
export function parseSeverity(text: string): Severity | undefined {
  return SEVERITIES.find((s) => s.toLowerCase() === text.trim().toLowerCase());
}

/** `Kind namespace/name`, or `Kind name` for cluster-scoped objects: how findings name their object. */
export function subjectName(f: Pick<Finding, 'kind' | 'namespace' | 'name'>): string {
  return f.namespace ? `${f.kind} ${f.namespace}/${f.name}` : `${f.kind} ${f.name}`;
}

/** One line, as `meshd analyze`, `meshd validate`, the log and the webhook print a finding: `Error [IST0106] (VirtualService default/x) ...`. */
export function findingLine(f: Finding): string {
  return `${f.severity} [${f.code}] (${f.origin ? `${subjectName(f)} ${f.origin.file}:${f.origin.line}` : subjectName(f)}) ${f.message}`;
}

/** istioctl's order: severity, code, object, then message; equal findings once. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  const key = (f: Finding): string => `${subjectName(f)}\u0000${f.message}\u0000${f.field}`;
  const sorted = [...findings].sort((a, b) => RANK[a.severity] - RANK[b.severity] || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return sorted.filter((f, i) => i === 0 || key(f) !== key(sorted[i - 1]!) || f.code !== sorted[i - 1]!.code);
}
