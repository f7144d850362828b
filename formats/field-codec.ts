// Field values on canonical bytes (see codepages/index.ts): slice the field's bytes, then decode
// that field only. Values are strings: N as its digits, C and K without their right padding,
// P and Z as a signed decimal integer.
import { decodeSjis, encodeSjis, UnmappableCharacterError } from './codepages/sjis.ts';
import { FieldEncodeError } from './codepages/index.ts';
import type { FieldDef } from './layouts.ts';

export function decodeField(buf: Buffer, recOff: number, f: FieldDef): string {
  const s = recOff + f.offset;
  const e = s + f.length;
  switch (f.type) {
    case 'N': return buf.toString('latin1', s, e);
    case 'C': {
      let end = e;
      while (end > s && buf[end - 1] === 0x20) end--;
      for (let i = s; i < end; i++) if (buf[i]! >= 0x80) return decodeSingleByteText(buf, s, end);
      return buf.toString('latin1', s, end);
    }
    case 'K': return decodeSjis(buf.subarray(s, e)).replace(/\u3000+$/, '');
    case 'P': return String(readPacked(buf, s, f.length));
    case 'Z': return String(readZoned(buf, s, f.length));
  }
}

function decodeSingleByteText(buf: Buffer, s: number, e: number): string {
  let out = '';
  for (let i = s; i < e; i++) {
    const b = buf[i]!;
    out += String.fromCharCode(b >= 0xa1 && b <= 0xdf ? b + 0xfec0 : b);
  }
  return out;
}

/** Integer value of a numeric field (N, P, Z); NaN when it is not a valid number. */
export function readNumber(buf: Buffer, recOff: number, f: FieldDef): number {
  const s = recOff + f.offset;
  if (f.type === 'P') return readPacked(buf, s, f.length);
  if (f.type === 'Z') return readZoned(buf, s, f.length);
  return readDigits(buf, s, f.length);
}

export function readDigits(buf: Buffer, s: number, len: number): number {
  let v = 0;
  for (let i = s; i < s + len; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

/** COMP-3: two digits per byte, the last nibble is the sign (C or F positive, D negative). */
export function readPacked(buf: Buffer, s: number, len: number): number {
  let v = 0;
  for (let i = 0; i < len; i++) {
    const b = buf[s + i]!;
    const hi = b >> 4;
    const lo = b & 0x0f;
    if (hi > 9) return NaN;
    v = v * 10 + hi;
    if (i < len - 1) {
      if (lo > 9) return NaN;
      v = v * 10 + lo;
    } else {
      if (lo === 0x0d || lo === 0x0b) return -v;
      if (lo !== 0x0c && lo !== 0x0f && lo !== 0x0a && lo !== 0x0e) return NaN;
    }
  }
  return v;
}

/** 10 ** (digits a packed field of n bytes holds), by n */
const PACKED_LIMIT = Array.from({ length: 11 }, (_, n) => 10 ** (n * 2 - 1));

export function writePacked(value: number, dst: Buffer, s: number, len: number, unsigned = false): boolean {
  if (!Number.isSafeInteger(value)) return false;
  let v = Math.abs(value);
  if (v >= (PACKED_LIMIT[len] ?? 10 ** (len * 2 - 1))) return false;
  // from the right, no strings: the last byte holds one digit and the sign nibble
  if (v <= 0x7fffffff) {
    // the usual amount: integer arithmetic (% on a double is a call into the C library)
    let w = v | 0;
    let e = w % 10;
    w = (w / 10) | 0;
    dst[s + len - 1] = (e << 4) | (unsigned ? 0x0f : value < 0 ? 0x0d : 0x0c);
    for (let i = len - 2; i >= 0; i--) {
      const lo = w % 10;
      w = (w / 10) | 0;
      e = w % 10;
      w = (w / 10) | 0;
      dst[s + i] = (e << 4) | lo;
    }
    return true;
  }
  let d = v % 10;
  v = (v - d) / 10;
  dst[s + len - 1] = (d << 4) | (unsigned ? 0x0f : value < 0 ? 0x0d : 0x0c);
  for (let i = len - 2; i >= 0; i--) {
    const lo = v % 10;
    v = (v - lo) / 10;
    d = v % 10;
    v = (v - d) / 10;
    dst[s + i] = (d << 4) | lo;
  }
  return true;
}

/** Canonical zoned: ASCII digits; the last byte 'p'..'y' when negative. */
export function readZoned(buf: Buffer, s: number, len: number): number {
  let v = 0;
  for (let i = 0; i < len; i++) {
    const b = buf[s + i]!;
    if (i === len - 1 && b >= 0x70 && b <= 0x79) return -(v * 10 + (b - 0x70));
    if (b < 0x30 || b > 0x39) return NaN;
    v = v * 10 + (b - 0x30);
  }
  return v;
}

/** Writes a value into a canonical record field, padded as the type says. Never truncates silently. */
export function encodeField(value: string, dst: Buffer, recOff: number, f: FieldDef): void {
  const s = recOff + f.offset;
  const len = f.length;
  switch (f.type) {
    case 'N': {
      if (!/^[0-9]*$/.test(value)) throw new FieldEncodeError(f.name, `N field takes digits only`);
      if (value.length > len) throw new FieldEncodeError(f.name, `${value.length} digits do not fit ${len}`);
      dst.fill(0x30, s, s + len - value.length);
      dst.write(value, s + len - value.length, 'latin1');
      return;
    }
    case 'C': {
      let n = 0;
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        let b: number;
        if (c >= 0x20 && c < 0x7f) b = c;
        else if (c >= 0xff61 && c <= 0xff9f) b = c - 0xfec0;
        else throw new FieldEncodeError(f.name, `character U+${c.toString(16).toUpperCase().padStart(4, '0')} is not allowed in a C field`);
        if (n >= len) throw new FieldEncodeError(f.name, `text longer than ${len} bytes`);
        dst[s + n++] = b;
      }
      dst.fill(0x20, s + n, s + len);
      return;
    }
    case 'K': {
      let bytes: Buffer;
      try {
        bytes = encodeSjis(value);
      } catch (err) {
        if (err instanceof UnmappableCharacterError) throw new FieldEncodeError(f.name, err.message);
        throw err;
      }
      for (let i = 0; i < bytes.length; i += 2) {
        const b = bytes[i]!;
        if (b < 0x81 || (b > 0x9f && b < 0xe0)) throw new FieldEncodeError(f.name, 'single-byte character in a K field');
      }
      if (bytes.length > len) throw new FieldEncodeError(f.name, `text longer than ${len} bytes`);
      bytes.copy(dst, s);
      for (let i = s + bytes.length; i < s + len; i += 2) { dst[i] = 0x81; dst[i + 1] = 0x40; }
      return;
    }
    case 'P': {
      if (!/^-?[0-9]+$/.test(value) || !writePacked(Number(value), dst, s, len)) throw new FieldEncodeError(f.name, `${shownValue(value)} does not fit packed ${len}`);
      return;
    }
    case 'Z': {
      const neg = value.startsWith('-');
      const digits = neg ? value.slice(1) : value;
      if (!/^[0-9]+$/.test(digits) || digits.length > len) throw new FieldEncodeError(f.name, `${shownValue(value)} does not fit zoned ${len}`);
      const padded = digits.padStart(len, '0');
      dst.write(padded, s, 'latin1');
      if (neg) dst[s + len - 1] = 0x70 + (padded.charCodeAt(len - 1) - 0x30);
      return;
    }
  }
}

/**
 * A value as an error message may show it: a short one as it is, a long one (which could be a card
 * number, in any written form: run together, with dashes or spaces) only by its length.
 */
function shownValue(value: string): string {
  return value.length <= 11 ? `'${value}'` : `a value of ${value.length} characters`;
}

/** A blank value of the field's type: zeros for numbers, spaces for text, U+3000 for K. */
export function blankField(dst: Buffer, recOff: number, f: FieldDef): void {
  const s = recOff + f.offset;
  switch (f.type) {
    case 'N': case 'Z': dst.fill(0x30, s, s + f.length); return;
    case 'C': dst.fill(0x20, s, s + f.length); return;
    case 'K': for (let i = s; i < s + f.length; i += 2) { dst[i] = 0x81; dst[i + 1] = 0x40; } return;
    case 'P': writePacked(0, dst, s, f.length); return;
  }
}

/** A fresh canonical record: every field blank, recordType set. */
export function blankRecord(layout: { recordLength: number; recordType: string; fields: FieldDef[] }): Buffer {
  const buf = Buffer.alloc(layout.recordLength);
  for (const f of layout.fields) blankField(buf, 0, f);
  buf[0] = layout.recordType.charCodeAt(0);
  return buf;
}
