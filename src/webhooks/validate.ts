// The validating webhook (`/validate`), as istiod serves it: a Gateway, VirtualService,
// DestinationRule, PeerAuthentication or AuthorizationPolicy being created or updated is read with meshd's own
// parser (the one `meshd validate` and the sources use) and refused, naming the field, when
// meshd would leave it out. Anything else (other kinds, DELETE) is allowed.
import { formatObjectError, parseMeshObject } from '../model/objects.js';
import type { Logger } from '../util/log.js';
import { clientText } from '../util/client-text.js';
import { allowed, denied, type AdmissionRequest, type AdmissionResponse } from './admission.js';
import { isRecord } from '../util/is-record.js';

/** The kinds this webhook checks (Istio's validating webhook checks these and more). */
export const VALIDATED_KINDS: ReadonlySet<string> = new Set(['Gateway', 'VirtualService', 'DestinationRule', 'PeerAuthentication', 'AuthorizationPolicy']);

/** At most this many field errors go into one refusal; the rest are counted. */
const MAX_ERRORS = 10;

export interface ValidateWebhookOptions {
  log: Logger;
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
    if (r.ok) return allowed(req.uid);
    const shown = r.errors.slice(0, MAX_ERRORS).map(formatObjectError);
    if (r.errors.length > MAX_ERRORS) shown.push(`(${r.errors.length - MAX_ERRORS} more errors)`);
    const message = shown.join('; ');
    o.log.info({ kind: req.kind.kind, namespace, name: clientText(name, 253), errors: r.errors.length }, 'refused an invalid object at admission');
    return denied(req.uid, message);
  };
}
