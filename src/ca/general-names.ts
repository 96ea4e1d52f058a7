// X.509 GeneralNames (SubjectAltName), read and written with node-forge's ASN.1.
import { isIP } from 'node:net';
import { Class, bytesOf, seq, tagged, type Asn1 } from './forge.js';

export interface SubjectAltNames {
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
  emails: string[];
  /** Names of other kinds (otherName, directoryName...), counted only. */
  others: number;
}

// GeneralName CHOICE tags (RFC 5280 4.2.1.6).
const TAG_EMAIL = 1;
const TAG_DNS = 2;
const TAG_URI = 6;
const TAG_IP = 7;

function ipToString(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
    return groups.join(':');
  }
  throw new Error(`an IP address of ${b.length} bytes`);
}

function ipToBytes(ip: string): Buffer {
  const v = isIP(ip);
  if (v === 4) return Buffer.from(ip.split('.').map(Number));
  if (v !== 6) throw new Error(`"${ip}" is not an IP address`);
  // Expand "::" and write 8 groups.
  const [head, tail] = ip.includes('::') ? ip.split('::') as [string, string] : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

export function parseGeneralNames(node: Asn1): SubjectAltNames {
  const out: SubjectAltNames = { uris: [], dnsNames: [], ipAddresses: [], emails: [], others: 0 };
  if (!Array.isArray(node.value)) throw new Error('GeneralNames is not a SEQUENCE');
  for (const n of node.value) {
    if (n.tagClass !== Class.CONTEXT_SPECIFIC) throw new Error('a GeneralName must be context-tagged');
    const tag = n.type as number;
    if (tag === TAG_URI && !n.constructed) out.uris.push(bytesOf(n.value).toString('latin1'));
    else if (tag === TAG_DNS && !n.constructed) out.dnsNames.push(bytesOf(n.value).toString('latin1'));
    else if (tag === TAG_EMAIL && !n.constructed) out.emails.push(bytesOf(n.value).toString('latin1'));
    else if (tag === TAG_IP && !n.constructed) out.ipAddresses.push(ipToString(bytesOf(n.value)));
    else out.others++;
  }
  return out;
}

/** GeneralNames for URIs, DNS names and IP addresses (in that order). */
export function generalNames(o: { uris?: string[]; dnsNames?: string[]; ipAddresses?: string[] }): Asn1 {
  return seq([
    ...(o.uris ?? []).map((u) => tagged(TAG_URI, Buffer.from(u, 'latin1').toString('binary'))),
    ...(o.dnsNames ?? []).map((d) => tagged(TAG_DNS, Buffer.from(d, 'latin1').toString('binary'))),
    ...(o.ipAddresses ?? []).map((ip) => tagged(TAG_IP, ipToBytes(ip).toString('binary'))),
  ]);
}
