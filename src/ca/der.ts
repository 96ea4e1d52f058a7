// Just enough DER to find the exact bytes a signature covers (the signed part of a CSR or
// certificate must be verified as sent, not as re-encoded) and to wrap a signed
// TBSCertificate. Everything structural goes through node-forge's ASN.1 (forge.ts).

/** One tag-length-value in a buffer: the element spans [start, end), its content [contentStart, end). */
export interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Reads the element at `offset`; DER only (definite lengths, single-byte tags). Throws on malformed input. */
export function readTlv(buf: Uint8Array, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new Error('truncated DER element');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('multi-byte DER tags are not supported');
  let len = buf[offset + 1]!;
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new Error('indefinite length is not DER');
    if (n > 4) throw new Error('DER length too large');
    if (pos + n > limit) throw new Error('truncated DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + i]!;
    pos += n;
  }
  if (pos + len > limit) throw new Error('DER element runs past its container');
  return { tag, start: offset, contentStart: pos, end: pos + len };
}

/** The elements inside a constructed element. */
export function childrenOf(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.contentStart;
  while (pos < parent.end) {
    const t = readTlv(buf, pos, parent.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

function lengthBytes(len: number): number[] {
  if (len < 0x80) return [len];
  const bytes: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

/** tag + length + the parts, concatenated. */
export function encodeTlv(tag: number, parts: readonly Uint8Array[]): Buffer {
  const len = parts.reduce((n, p) => n + p.length, 0);
  return Buffer.concat([Buffer.from([tag, ...lengthBytes(len)]), ...parts]);
}

export const TAG_SEQUENCE = 0x30;
export const TAG_BIT_STRING = 0x03;
