// A small ASN.1 codec for CMS: a BER reader (definite and indefinite lengths, constructed strings,
// as OpenSSL and AS2 products write them) and a DER writer. Nodes keep their exact bytes, because
// signatures cover encodings, not values.

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  PRINTABLE: 0x13,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
} as const;

export class DerError extends Error {}

export interface Asn1 {
  /** The identifier octet (class, constructed bit, number); numbers above 30 are not used by CMS. */
  tag: number;
  /** The whole encoding: identifier, length and content (end-of-contents included when indefinite). */
  raw: Buffer;
  /** The content octets (for indefinite lengths, without the end-of-contents). */
  content: Buffer;
  /** Children when constructed. */
  children: Asn1[];
}

const MAX_DEPTH = 64;

function readOne(buf: Buffer, pos: number, depth: number): Asn1 {
  if (depth > MAX_DEPTH) throw new DerError('ASN.1 nested too deeply');
  const start = pos;
  if (pos + 2 > buf.length) throw new DerError('ASN.1 truncated');
  const tag = buf[pos++]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('ASN.1 high tag numbers are not supported');
  let len = buf[pos++]!;
  const constructed = (tag & 0x20) !== 0;
  if (len === 0x80) {
    if (!constructed) throw new DerError('ASN.1 indefinite length on a primitive');
    const children: Asn1[] = [];
    const contentStart = pos;
    for (;;) {
      if (pos + 2 > buf.length) throw new DerError('ASN.1 truncated (no end-of-contents)');
      if (buf[pos] === 0 && buf[pos + 1] === 0) break;
      const child = readOne(buf, pos, depth + 1);
      children.push(child);
      pos += child.raw.length;
    }
    return { tag, raw: buf.subarray(start, pos + 2), content: buf.subarray(contentStart, pos), children };
  }
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n > 6 || pos + n > buf.length) throw new DerError('ASN.1 bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos++]!;
  }
  if (pos + len > buf.length) throw new DerError('ASN.1 truncated');
  const content = buf.subarray(pos, pos + len);
  const children: Asn1[] = [];
  if (constructed) {
    let p = 0;
    while (p < content.length) {
      const child = readOne(content, p, depth + 1);
      children.push(child);
      p += child.raw.length;
    }
  }
  return { tag, raw: buf.subarray(start, pos + len), content, children };
}

/** Reads one element; trailing bytes are refused unless `allowTrailing`. */
export function decode(buf: Buffer, allowTrailing = false): Asn1 {
  const node = readOne(buf, 0, 0);
  if (!allowTrailing && node.raw.length !== buf.length) throw new DerError('ASN.1 trailing bytes');
  return node;
}

/** The value of an OCTET STRING (or implicitly tagged one), joining BER constructed segments. */
export function octets(node: Asn1): Buffer {
  if ((node.tag & 0x20) === 0) return node.content;
  const parts: Buffer[] = [];
  for (const c of node.children) parts.push(octets(c));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

export function oidOf(node: Asn1): string {
  if (node.tag !== TAG.OID) throw new DerError('expected an OBJECT IDENTIFIER');
  const b = node.content;
  const out: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if ((b[i]! & 0x80) === 0) {
      if (out.length === 0) out.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else out.push(v);
      v = 0;
    }
  }
  return out.join('.');
}

export function intOf(node: Asn1): number {
  if (node.tag !== TAG.INTEGER) throw new DerError('expected an INTEGER');
  let v = 0;
  for (const b of node.content) v = v * 256 + b;
  return v;
}

export function child(node: Asn1, i: number, what = 'element'): Asn1 {
  const c = node.children[i];
  if (!c) throw new DerError(`ASN.1: missing ${what}`);
  return c;
}

// ---- writer ----

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n % 256);
    n = Math.floor(n / 256);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Identifier and length octets for content of `length` bytes (for streaming the content after it). */
export function header(tag: number, length: number): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(length)]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  return Buffer.concat([header(tag, body.length), body]);
}

export const seq = (...items: Buffer[]) => tlv(TAG.SEQUENCE, ...items);
export const octetString = (b: Buffer) => tlv(TAG.OCTET_STRING, b);
export const nullValue = () => Buffer.from([0x05, 0x00]);
/** [n] EXPLICIT (constructed context tag). */
export const explicit = (n: number, ...items: Buffer[]) => tlv(0xa0 | n, ...items);

/** SET OF in DER order (sorted encodings). */
export function setOf(...items: Buffer[]): Buffer {
  return tlv(TAG.SET, ...[...items].sort(Buffer.compare));
}

export function integer(value: number | Buffer): Buffer {
  if (Buffer.isBuffer(value)) return tlv(TAG.INTEGER, value);
  const bytes: number[] = [];
  do {
    bytes.unshift(value & 0xff);
    value = Math.floor(value / 256);
  } while (value > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(TAG.INTEGER, Buffer.from(bytes));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    let v = Math.floor(p / 128);
    while (v > 0) {
      chunk.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    bytes.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(bytes));
}

export function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(TAG.UTC_TIME, Buffer.from(s, 'ascii'));
}

export function algorithm(dotted: string, params?: Buffer | null): Buffer {
  return params === undefined ? seq(oid(dotted)) : seq(oid(dotted), params ?? nullValue());
}
