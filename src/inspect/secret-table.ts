// `proxy-config secret`: istioctl's RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER,
// NOT AFTER, NOT BEFORE table, from the secrets in Envoy's config dump (Envoy prints
// certificates as base64 inline bytes and redacts private keys).
import { X509Certificate } from 'node:crypto';
import { obj, secrets } from './config-dump.js';
import { formatTable } from './table.js';

export interface SecretRow {
  name: string;
  type: string;
  state: string;
  valid: boolean;
  serial: string;
  notAfter: string;
  notBefore: string;
  trustDomain: string;
}

function inlineText(source: unknown): string {
  const s = obj(source);
  if (typeof s.inline_bytes === 'string') return Buffer.from(s.inline_bytes, 'base64').toString('utf8');
  if (typeof s.inline_string === 'string') return s.inline_string;
  return '';
}

/** RFC 3339 in UTC without fractions, as Go's time.RFC3339 prints a UTC time. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function describeCert(pem: string, now: Date): Omit<SecretRow, 'name' | 'state'> | undefined {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!first) return undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(first);
  } catch {
    return undefined;
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  const spiffe = /URI:spiffe:\/\/([^/,\s]+)/.exec(cert.subjectAltName ?? '')?.[1] ?? '';
  return {
    type: cert.ca ? 'CA' : 'Cert Chain',
    valid: now > notBefore && now < notAfter,
    serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, '').padStart(32, '0'),
    notAfter: rfc3339(notAfter),
    notBefore: rfc3339(notBefore),
    trustDomain: spiffe,
  };
}

/** One row per secret: its certificate chain, else its trusted CA. */
export function secretRows(dump: unknown, now: Date): SecretRow[] {
  return secrets(dump).map((s) => {
    const chain = inlineText(obj(obj(s.secret.tls_certificate).certificate_chain));
    const ca = inlineText(obj(obj(s.secret.validation_context).trusted_ca));
    const meta = describeCert(chain || ca, now);
    return { name: s.name, state: s.state, ...(meta ?? { type: '', valid: false, serial: '', notAfter: '', notBefore: '', trustDomain: '' }) };
  });
}

export const SECRET_HEADER = ['RESOURCE NAME', 'TYPE', 'STATUS', 'VALID CERT', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE'];

export function secretTable(dump: unknown, now: Date): string {
  const rows = secretRows(dump, now);
  if (rows.length === 0) return 'No secret items to show.\n';
  // With a trust domain on every secret (federation), istioctl adds the column.
  const withTd = rows.every((r) => r.trustDomain !== '');
  const header = withTd ? [...SECRET_HEADER, 'TRUST DOMAIN'] : SECRET_HEADER;
  return formatTable(
    header,
    rows.map((r) => [r.name, r.type, r.state, String(r.valid), r.serial, r.notAfter, r.notBefore, ...(withTd ? [r.trustDomain] : [])]),
  );
}

