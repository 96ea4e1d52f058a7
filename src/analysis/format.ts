// Findings as istioctl prints analysis messages: one line each
// (`Error [IST0101] (VirtualService default/reviews) Referenced host not found: "reviews2"`),
// or JSON / YAML records with istioctl's fields plus the object and field.
import { stringify } from 'yaml';
import type { Finding, Severity } from './finding.js';
import { subjectName } from './finding.js';

export const OUTPUT_FORMATS = ['log', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** istioctl's terminal colours: bold red errors, yellow warnings, plain info. */
const COLOURS: Record<Severity, string> = { Error: '\u001b[1;31m', Warning: '\u001b[33m', Info: '' };
const RESET = '\u001b[0m';

/** `VirtualService default/reviews`, then ` file.yaml:12` for an object read from a file. */
export function originText(f: Finding): string {
  return f.origin ? `${subjectName(f)} ${f.origin.file}:${f.origin.line}` : subjectName(f);
}

export function formatFinding(f: Finding, colour = false): string {
  const level = colour && COLOURS[f.severity] ? `${COLOURS[f.severity]}${f.severity}${RESET}` : f.severity;
  return `${level} [${f.code}] (${originText(f)}) ${f.message}`;
}

/** Istio's page for a code. */
export function documentationUrl(code: string): string {
  return `https://istio.io/latest/docs/reference/config/analysis/${code.toLowerCase()}/`;
}

/** A finding as a record: istioctl's keys (code, documentationUrl, level, message, origin) and meshd's (kind, namespace, name, field), sorted. */
export function findingRecord(f: Finding): Record<string, string> {
  return {
    code: f.code,
    documentationUrl: documentationUrl(f.code),
    field: f.field,
    kind: f.kind,
    level: f.severity,
    message: f.message,
    name: f.name,
    namespace: f.namespace,
    origin: originText(f),
  };
}

/** The findings in `format`; the log format ends each line with a newline, and is empty with no findings. */
export function formatFindings(findings: readonly Finding[], format: OutputFormat, colour = false): string {
  switch (format) {
    case 'log':
      return findings.map((f) => `${formatFinding(f, colour)}\n`).join('');
    case 'json':
      return `${JSON.stringify(findings.map(findingRecord), null, '\t')}\n`;
    case 'yaml':
      return findings.length === 0 ? '[]\n' : stringify(findings.map(findingRecord), { lineWidth: 0 });
  }
}
