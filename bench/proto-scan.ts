// A minimal protobuf wire-format reader for the benchmark's simulated proxies: it walks
// the top-level fields of a message without materialising it, so 1000 clients in one
// process can read response envelopes (nonce, version, resource boundaries) cheaply.

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** Iterates the top-level fields of one message in buf[start, end). */
export class FieldScanner {
  /** Field number of the current field. */
  id = 0;
  /** Wire type of the current field. */
  wire = 0;
  /** For length-delimited fields: the payload bounds. */
  start = 0;
  end = 0;
  /** For varint fields: the value (exact below 2^53). */
  num = 0;
  private pos: number;

  constructor(
    private readonly buf: Buffer,
    from = 0,
    private readonly limit = buf.length,
  ) {
    this.pos = from;
  }

  private varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.limit) throw new Error('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
      if (mul > 2 ** 63) throw new Error('varint too long');
    }
  }

  /** Advances to the next field; false at the end of the message. */
  next(): boolean {
    if (this.pos >= this.limit) return false;
    const key = this.varint();
    this.id = Math.floor(key / 8);
    this.wire = key % 8;
    switch (this.wire) {
      case WIRE_VARINT:
        this.num = this.varint();
        this.start = this.end = this.pos;
        break;
      case WIRE_FIXED64:
        this.start = this.pos;
        this.pos += 8;
        this.end = this.pos;
        break;
      case WIRE_LEN: {
        const len = this.varint();
        this.start = this.pos;
        this.pos += len;
        this.end = this.pos;
        break;
      }
      case WIRE_FIXED32:
        this.start = this.pos;
        this.pos += 4;
        this.end = this.pos;
        break;
      default:
        throw new Error(`unsupported wire type ${this.wire} (field ${this.id})`);
    }
    if (this.pos > this.limit) throw new Error(`field ${this.id} runs past the end of its message`);
    return true;
  }

  /** The current length-delimited field as a UTF-8 string. */
  text(): string {
    return this.buf.toString('utf8', this.start, this.end);
  }
}

/** The first string field `id` of the message in buf[start, end), or undefined. */
export function stringField(buf: Buffer, id: number, start = 0, end = buf.length): string | undefined {
  const s = new FieldScanner(buf, start, end);
  while (s.next()) if (s.id === id && s.wire === WIRE_LEN) return s.text();
  return undefined;
}

/** The first varint field `id` of the message in buf[start, end), or undefined. */
export function varintField(buf: Buffer, id: number, start = 0, end = buf.length): number | undefined {
  const s = new FieldScanner(buf, start, end);
  while (s.next()) if (s.id === id && s.wire === WIRE_VARINT) return s.num;
  return undefined;
}

/** Bounds of the first length-delimited field `id`, or undefined. */
export function lenField(buf: Buffer, id: number, start = 0, end = buf.length): [number, number] | undefined {
  const s = new FieldScanner(buf, start, end);
  while (s.next()) if (s.id === id && s.wire === WIRE_LEN) return [s.start, s.end];
  return undefined;
}
