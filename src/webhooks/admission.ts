// Kubernetes admission reviews (admission.k8s.io/v1), as a webhook receives and answers
// them: the request is checked before anything reads it, and a mutation is answered as a
// JSON Patch (RFC 6902).
import { isRecord } from '../util/is-record.js';
import { clientText } from '../util/client-text.js';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource?: { group: string; version: string; resource: string };
  namespace?: string;
  name?: string;
  operation: string;
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string };
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch. */
  patch?: string;
  warnings?: string[];
}

export interface JsonPatchOp {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

export class AdmissionError extends Error {
  constructor(
    message: string,
    readonly httpStatus = 400,
  ) {
    super(message);
    this.name = 'AdmissionError';
  }
}


/** Reads an AdmissionReview body; throws AdmissionError naming what is wrong. */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  if (!isRecord(body)) throw new AdmissionError('the body is not a JSON object');
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    throw new AdmissionError(`expected apiVersion admission.k8s.io/v1, kind AdmissionReview; got ${JSON.stringify(String(body.apiVersion)).slice(0, 80)}, ${JSON.stringify(String(body.kind)).slice(0, 80)}`);
  }
  const r = body.request;
  if (!isRecord(r)) throw new AdmissionError('request is missing');
  if (typeof r.uid !== 'string' || !r.uid || r.uid.length > 128) throw new AdmissionError('request.uid must be a non-empty string of at most 128 characters');
  if (!isRecord(r.kind) || typeof r.kind.kind !== 'string') throw new AdmissionError('request.kind is missing');
  if (typeof r.operation !== 'string') throw new AdmissionError('request.operation is missing');
  return r as unknown as AdmissionRequest;
}

/** The AdmissionReview answering `uid`. */
export function admissionReview(response: AdmissionResponse): Record<string, unknown> {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

export function allowed(uid: string, patch?: JsonPatchOp[], warnings?: string[]): AdmissionResponse {
  return {
    uid,
    allowed: true,
    ...(patch && patch.length ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
    ...(warnings && warnings.length ? { warnings: boundedWarnings(warnings) } : {}),
  };
}

/** The longest refusal message sent back (it quotes what the client sent); the rest is cut with a count. */
export const MAX_MESSAGE_CHARS = 8192;
/** At most this many warnings, each at most WARNING_CHARS long. */
export const MAX_WARNINGS = 20;
const WARNING_CHARS = 512;

function boundedWarnings(warnings: string[]): string[] {
  const shown = warnings.slice(0, MAX_WARNINGS).map((w) => clientText(w, WARNING_CHARS));
  if (warnings.length > MAX_WARNINGS) shown.push(`(${warnings.length - MAX_WARNINGS} more warnings)`);
  return shown;
}

export function denied(uid: string, message: string, code = 400): AdmissionResponse {
  return { uid, allowed: false, status: { code, message: clientText(message, MAX_MESSAGE_CHARS) } };
}
