// Istio's security.istio.io objects (PeerAuthentication), as typed values with validation
// that names the field and what would be valid. Which policy applies to which workload
// port is decided in translate/peer-authentication.ts.
import { z } from 'zod';

export const ISTIO_SECURITY_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;

/** The modes a PeerAuthentication may set; UNSET (or no mode) inherits from the level above. */
export const MTLS_MODE_SETTINGS = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;
export type MtlsModeSetting = (typeof MTLS_MODE_SETTINGS)[number];

const mtlsMode = z.enum(MTLS_MODE_SETTINGS, {
  error: (issue) => `${JSON.stringify(issue.input)} is not an mTLS mode; use one of ${MTLS_MODE_SETTINGS.join(', ')}`,
});
const mutualTls = z.object({ mode: mtlsMode.nullish() });

export const peerAuthenticationSpecSchema = z.object({
  selector: z.object({ matchLabels: z.record(z.string(), z.string()).nullish() }).nullish(),
  mtls: mutualTls.nullish(),
  /** Keyed by the workload's port number (as a string, as in JSON). */
  portLevelMtls: z.record(z.string(), mutualTls).nullish(),
});

export type PeerAuthenticationSpec = z.infer<typeof peerAuthenticationSpecSchema>;

type Issue = { path: (string | number)[]; message: string };

/** A policy with no (or an empty) selector is namespace-wide, or mesh-wide in the root namespace. */
export function hasWorkloadSelector(spec: PeerAuthenticationSpec): boolean {
  return Object.keys(spec.selector?.matchLabels ?? {}).length > 0;
}

/** The port a portLevelMtls key names, or undefined when it is not a port number. */
export function portKey(key: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(key)) return undefined;
  const n = Number(key);
  return n >= 1 && n <= 65535 ? n : undefined;
}

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function labelKeyProblem(key: string): string | undefined {
  if (key === '') return 'an empty label key selects nothing; name a label';
  if (key.includes('*')) return `"${key}": wildcards are not supported in a selector; list exact labels`;
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !LABEL_PREFIX.test(prefix))) return `"${key}": the prefix before "/" must be a DNS subdomain such as "app.kubernetes.io"`;
  if (name.length > 63 || !LABEL_NAME.test(name)) return `"${key}" is not a label key: at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit, optionally after a "prefix/"`;
  return undefined;
}

function labelValueProblem(value: string): string | undefined {
  if (value.includes('*')) return `"${value}": wildcards are not supported in a selector; give the exact label value`;
  if (value !== '' && (value.length > 63 || !LABEL_NAME.test(value))) return `"${value}" is not a label value: at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`;
  return undefined;
}

/** Problems with a workload selector's `matchLabels` (at `selector.matchLabels.<key>`): Kubernetes' label syntax, no wildcards. */
export function selectorIssues(matchLabels: Record<string, string> | null | undefined): Issue[] {
  const out: Issue[] = [];
  for (const [key, value] of Object.entries(matchLabels ?? {})) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) out.push({ path: ['selector', 'matchLabels', key], message: keyProblem });
    const valueProblem = labelValueProblem(value);
    if (valueProblem) out.push({ path: ['selector', 'matchLabels', key], message: valueProblem });
  }
  return out;
}

/** Checks beyond the schema for a PeerAuthentication, as Istio's validation makes them. */
export function peerAuthenticationIssues(spec: PeerAuthenticationSpec): Issue[] {
  const out: Issue[] = selectorIssues(spec.selector?.matchLabels);
  const ports = spec.portLevelMtls;
  if (ports) {
    const keys = Object.keys(ports);
    if (keys.length === 0) out.push({ path: ['portLevelMtls'], message: 'is empty: list at least one port, or leave portLevelMtls out' });
    else if (!hasWorkloadSelector(spec)) {
      out.push({
        path: ['portLevelMtls'],
        message: 'needs selector.matchLabels: port-level mTLS is only allowed in a workload-specific policy, not in a mesh-wide or namespace-wide one',
      });
    }
    for (const key of keys) {
      if (portKey(key) === undefined) out.push({ path: ['portLevelMtls', key], message: `"${key}" is not a port: keys must be port numbers from 1 to 65535 (the workload's port, not the Service's)` });
    }
  }
  return out;
}
