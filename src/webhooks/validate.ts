// The validating webhook (`/validate`), as istiod serves it: a Gateway, VirtualService,
// DestinationRule, PeerAuthentication, AuthorizationPolicy or RequestAuthentication being created or updated is read with meshd's own
// parser (the one `meshd validate` and the sources use) and refused, naming the field, when
// meshd would refuse it, with the lines `meshd validate` prints (IST0106). A valid object gets
// admission warnings for what the validation stage would report about it against the config
// meshd holds now (a subset or host that does not exist yet, a conflict it would lose): not
// refusals, since objects are applied in any order. Anything else (other kinds, DELETE) is allowed.
import { parseMeshObject, type IstioObject } from '../model/objects.js';
import { findingLine, schemaFinding } from '../model/finding.js';
import type { MeshSnapshot } from '../model/mesh.js';
import { admissionWarnings } from '../model/validation/admission.js';
import type { Logger } from '../util/log.js';
import { clientText } from '../util/client-text.js';
import { allowed, denied, type AdmissionRequest, type AdmissionResponse } from './admission.js';
import { isRecord } from '../util/is-record.js';

/** The kinds this webhook checks (Istio's validating webhook checks these and more). */
export const VALIDATED_KINDS: ReadonlySet<string> = new Set(['Gateway', 'VirtualService', 'DestinationRule', 'PeerAuthentication', 'AuthorizationPolicy', 'RequestAuthentication', 'Sidecar', 'ServiceEntry', 'WorkloadEntry', 'Telemetry']);

/** At most this many field errors go into one refusal; the rest are counted. */
const MAX_ERRORS = 10;
/** At most this many warnings, each at most this long (the apiserver truncates longer ones). */
export const MAX_WARNINGS = 10;
export const MAX_WARNING_CHARS = 256;

export interface ValidateWebhookOptions {
  log: Logger;
  /** meshd's current snapshot, for warnings; none: no warnings. */
  snapshot?: () => MeshSnapshot | undefined;
}

function bounded(lines: string[]): string[] {
  const shown = lines.slice(0, MAX_WARNINGS).map((l) => (l.length > MAX_WARNING_CHARS ? `${l.slice(0, MAX_WARNING_CHARS - 1)}…` : l));
  if (lines.length > MAX_WARNINGS) shown[MAX_WARNINGS - 1] = `(${lines.length - MAX_WARNINGS + 1} more warnings)`;
  return shown;
}

export function validateWebhook(o: ValidateWebhookOptions): (request: AdmissionRequest) => AdmissionResponse {
  return (req) => {
    if (!VALIDATED_KINDS.has(req.kind.kind) || (req.operation !== 'CREATE' && req.operation !== 'UPDATE')) return allowed(req.uid);
    if (!isRecord(req.object)) return denied(req.uid, `request.object is not a ${req.kind.kind}`);
    const obj = req.object;
    const metadata = isRecord(obj.metadata) ? obj.metadata : {};
    // A CREATE with generateName has no name yet: name it so in the message.
    const name = typeof metadata.name === 'string' && metadata.name ? metadata.name : typeof metadata.generateName === 'string' ? `${metadata.generateName}<generated>` : (req.name ?? '');
    const namespace = req.namespace || (typeof metadata.namespace === 'string' ? metadata.namespace : 'default');
    const r = parseMeshObject({ ...obj, metadata: { ...metadata, name, namespace } }, namespace);
    if (r.ok === 'ignored') return denied(req.uid, `${req.kind.kind} ${namespace}/${name}: ${r.reason}`);
    if (r.ok) {
      const snapshot = o.snapshot?.();
      if (!snapshot) return allowed(req.uid);
      const warnings = admissionWarnings(r.value as IstioObject, snapshot).map(findingLine);
      return allowed(req.uid, undefined, warnings.length > 0 ? bounded(warnings) : undefined);
    }
    const shown = r.errors.slice(0, MAX_ERRORS).map((e) => findingLine(schemaFinding(e)));
    if (r.errors.length > MAX_ERRORS) shown.push(`(${r.errors.length - MAX_ERRORS} more errors)`);
    const message = shown.join('\n');
    o.log.info({ kind: req.kind.kind, namespace, name: clientText(name, 253), errors: r.errors.length }, 'refused an invalid object at admission');
    return denied(req.uid, message);
  };
}
