// The status meshd writes on an Istio object, in the shape of Istio's IstioStatus
// (istio.io/api meta/v1alpha1): `conditions`, `validationMessages` and
// `observedGeneration`. A pure function of the object's generation, its findings and how far
// its proxies got; the writer compares the result with what the object holds.
//
// Conditions:
// - Reconciled (Istio's name): True when every connected proxy the object affects has
//   acknowledged config built from a snapshot holding this generation; False while some
//   are pending or rejected it (their count, and one rejection's text).
// - Accepted: False when the object has an error finding (invalid, or it loses a conflict
//   and is ignored), with the first one as message; True otherwise.
import { isDeepStrictEqual } from 'node:util';
import { CODES, sortFindings, type Finding, type Severity } from '../model/finding.js';

export interface IstioCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ValidationMessage {
  type: { code: string; name?: string };
  level: 'ERROR' | 'WARNING' | 'INFO';
  description: string;
  documentationUrl: string;
}

export interface IstioStatus {
  observedGeneration?: number;
  conditions: IstioCondition[];
  validationMessages?: ValidationMessage[];
}

/** How many proxies the object affects and how far they got (see xds/distribution.ts). */
export interface ProxyCounts {
  affected: number;
  upToDate: number;
  rejected: number;
  rejection?: string;
}

export interface StatusInput {
  /** metadata.generation of the object as stored. */
  generation: number | undefined;
  /** The findings about this generation of the object. */
  findings: readonly Finding[];
  /**
   * Its proxies, when this generation is in the config proxies are sent; undefined when it
   * was left out (refused, or left out for errors).
   */
  proxies: ProxyCounts | undefined;
  /** The status the object holds now (for lastTransitionTime). */
  previous: unknown;
  /** RFC 3339, for conditions that change now. */
  now: string;
}

/** At most this many validation messages per object, and this many characters per text. */
export const MAX_VALIDATION_MESSAGES = 20;
export const MAX_STATUS_TEXT = 512;

export const RECONCILED = 'Reconciled';
export const ACCEPTED = 'Accepted';

/** Codes that mean "valid, but loses to another object and is ignored": Accepted False, reason Conflicted. */
const CONFLICT_CODES: ReadonlySet<string> = new Set([CODES.ConflictingGateways.code, CODES.ConflictingMeshGatewayVirtualServiceHosts.code, CODES.IneffectivePolicy.code]);

const CODE_NAMES: ReadonlyMap<string, string> = new Map(Object.entries(CODES).map(([name, c]) => [c.code, name]));

const LEVELS: Record<Severity, ValidationMessage['level']> = { Error: 'ERROR', Warning: 'WARNING', Info: 'INFO' };

/** `text` cut to `max` characters (an ellipsis marks the cut). */
export function bounded(text: string, max = MAX_STATUS_TEXT): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function describe(f: Finding): string {
  return bounded(f.field ? `${f.field}: ${f.message}` : f.message);
}

/** Whether a finding keeps the object (or part of it) out of proxies' config. */
export function refuses(f: Finding): boolean {
  return f.severity === 'Error' || CONFLICT_CODES.has(f.code);
}

export function validationMessages(findings: readonly Finding[]): ValidationMessage[] {
  return sortFindings(findings)
    .slice(0, MAX_VALIDATION_MESSAGES)
    .map((f) => {
      const name = CODE_NAMES.get(f.code);
      return {
        type: { code: f.code, ...(name ? { name } : {}) },
        level: LEVELS[f.severity],
        description: describe(f),
        documentationUrl: `https://istio.io/latest/docs/reference/config/analysis/${f.code.toLowerCase()}/`,
      };
    });
}

function proxiesText(n: number): string {
  return n === 1 ? '1 proxy' : `${n} proxies`;
}

function reconciled(proxies: ProxyCounts | undefined): Omit<IstioCondition, 'lastTransitionTime' | 'observedGeneration'> {
  if (!proxies) return { type: RECONCILED, status: 'False', reason: 'NotAccepted', message: 'this generation is not in the config proxies are sent (see Accepted)' };
  const { affected, upToDate, rejected } = proxies;
  // No count when all are: proxies coming and going do not rewrite every object's status.
  if (upToDate >= affected) return { type: RECONCILED, status: 'True', reason: 'Reconciled', message: 'every connected proxy it affects is up to date' };
  let message = `${upToDate} of ${proxiesText(affected)} up to date`;
  if (rejected > 0) message += `, ${rejected} rejected${proxies.rejection ? `: ${bounded(proxies.rejection, 256)}` : ''}`;
  return { type: RECONCILED, status: 'False', reason: rejected > 0 ? 'Rejected' : 'InProgress', message };
}

function accepted(findings: readonly Finding[]): Omit<IstioCondition, 'lastTransitionTime' | 'observedGeneration'> {
  const refusing = sortFindings(findings.filter(refuses));
  if (refusing.length === 0) return { type: ACCEPTED, status: 'True', reason: 'Accepted', message: '' };
  const first = refusing[0]!;
  const more = refusing.length > 1 ? ` (and ${refusing.length - 1} more, see validationMessages)` : '';
  const head = `${first.code}: `;
  // The count of the others survives the cut.
  const message = head + bounded(describe(first), MAX_STATUS_TEXT - head.length - more.length) + more;
  return { type: ACCEPTED, status: 'False', reason: refusing.some((f) => CONFLICT_CODES.has(f.code)) ? 'Conflicted' : 'Invalid', message };
}

function previousConditions(previous: unknown): Map<string, { status?: unknown; lastTransitionTime?: unknown }> {
  const list = (previous as { conditions?: unknown } | undefined)?.conditions;
  const out = new Map<string, { status?: unknown; lastTransitionTime?: unknown }>();
  if (Array.isArray(list)) for (const c of list) if (c && typeof c === 'object' && typeof (c as { type?: unknown }).type === 'string') out.set((c as { type: string }).type, c as { status?: unknown });
  return out;
}

/** The status an object should hold. lastTransitionTime moves only when a condition's status does. */
export function computeStatus(input: StatusInput): IstioStatus {
  const before = previousConditions(input.previous);
  const conditions = [reconciled(input.proxies), accepted(input.findings)].map((c): IstioCondition => {
    const old = before.get(c.type);
    const since = old?.status === c.status && typeof old.lastTransitionTime === 'string' ? old.lastTransitionTime : input.now;
    return { type: c.type, status: c.status, ...(input.generation !== undefined ? { observedGeneration: input.generation } : {}), lastTransitionTime: since, reason: c.reason, message: c.message };
  });
  const messages = validationMessages(input.findings);
  return { ...(input.generation !== undefined ? { observedGeneration: input.generation } : {}), conditions, ...(messages.length > 0 ? { validationMessages: messages } : {}) };
}

/** The parts of a status meshd writes, without lastTransitionTime (which alone is no reason to write). */
function comparable(status: unknown): unknown {
  if (!status || typeof status !== 'object') return {};
  const s = status as Record<string, unknown>;
  const conditions = Array.isArray(s.conditions)
    ? s.conditions.map((c: unknown) => {
        if (!c || typeof c !== 'object') return c;
        const { lastTransitionTime: _t, ...rest } = c as Record<string, unknown>;
        return rest;
      })
    : undefined;
  return { observedGeneration: s.observedGeneration, conditions, validationMessages: Array.isArray(s.validationMessages) && s.validationMessages.length > 0 ? s.validationMessages : undefined };
}

/** Whether the object already holds `desired` (ignoring lastTransitionTime and fields meshd does not write). */
export function sameStatus(current: unknown, desired: IstioStatus): boolean {
  return isDeepStrictEqual(comparable(current), comparable(desired));
}
