// Code pages at record level. Inside the engine every record is held in one "canonical" byte form:
// the file's bytes for sjis and jis8 (so the usual case costs no copy), and for EBCDIC files the
// same characters re-expressed in Shift_JIS bytes field by field (K fields as CP932 pairs padded
// with U+3000, packed fields untouched, zoned fields as ASCII digits with the sign in the last
// byte as 'p'..'y'). Validation, routing and mapping then work on one byte form; code pages are
// crossed only here, on the way in and on the way out.
import type { Encoding, FieldDef, Layout } from '../layouts.ts';
import { IBM037, IBM930_DBCS, IBM930_SBCS, SHIFT_IN, SHIFT_OUT, type SingleByteTable } from './ebcdic.ts';
import { isSjisPair, sjisCodePointOfPair, sjisPairOf } from './sjis.ts';

export * from './sjis.ts';
export { IBM037, IBM930_SBCS, IBM930_DBCS, SHIFT_IN, SHIFT_OUT } from './ebcdic.ts';

export const isEbcdic = (enc: Encoding): boolean => enc === 'ebcdic' || enc === 'ebcdic-kana';
/** The header's codeType: 0 = Shift_JIS/JIS8, 1 = EBCDIC. */
export const codeTypeOf = (enc: Encoding): '0' | '1' => (isEbcdic(enc) ? '1' : '0');

/** Canonical byte for a character valid in the code page but outside the C-field repertoire (E210). */
export const OUTSIDE_REPERTOIRE = 0x7f;
/** Canonical byte written for an undecodable zoned digit, so validation reports E201. */
const BAD_DIGIT = 0x3f;

/** A character cannot be written to the target code page: names the field. */
export class FieldEncodeError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
  }
}

interface SbcsTranscoder { toCanonical: Int16Array; fromCanonical: Int16Array }

function sbcsTranscoder(table: SingleByteTable): SbcsTranscoder {
  const toCanonical = new Int16Array(256).fill(-1);
  const fromCanonical = new Int16Array(256).fill(-1);
  for (let b = 0; b < 256; b++) {
    const cp = table.toCodePoint[b]!;
    if (cp < 0) continue;
    const canon = cp < 0x80 ? cp : cp >= 0xff61 && cp <= 0xff9f ? cp - 0xfec0 : OUTSIDE_REPERTOIRE;
    toCanonical[b] = canon;
  }
  for (let c = 0; c < 256; c++) {
    const cp = c < 0x80 ? c : c >= 0xa1 && c <= 0xdf ? c + 0xfec0 : -1;
    if (cp < 0 || c === OUTSIDE_REPERTOIRE) continue;
    const b = table.fromCodePoint.get(cp);
    if (b !== undefined) fromCanonical[c] = b;
  }
  return { toCanonical, fromCanonical };
}

const transcoders = new Map<Encoding, SbcsTranscoder>();
function sbcsFor(enc: Encoding): SbcsTranscoder {
  let t = transcoders.get(enc);
  if (!t) {
    t = sbcsTranscoder(enc === 'ebcdic' ? IBM037 : IBM930_SBCS);
    transcoders.set(enc, t);
  }
  return t;
}

/**
 * Transcodes one record from an EBCDIC file into canonical bytes.
 * Returns -1, or the 0-based offset in the record of the first byte the code page does not define (E109).
 */
export function ebcdicToCanonical(enc: Encoding, layout: Layout | null, src: Buffer, srcOff: number, dst: Buffer, length: number): number {
  const { toCanonical } = sbcsFor(enc);
  let firstBad = -1;
  const sbcs = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const c = toCanonical[src[srcOff + i]!]!;
      if (c < 0) { if (firstBad < 0) firstBad = i; dst[i] = OUTSIDE_REPERTOIRE; } else dst[i] = c;
    }
  };
  if (!layout) { sbcs(0, length); return firstBad; }
  for (const f of layout.fields) {
    const o = f.offset;
    switch (f.type) {
      case 'N': case 'C': sbcs(o, o + f.length); break;
      case 'P': src.copy(dst, o, srcOff + o, srcOff + o + f.length); break;
      case 'Z': zonedToCanonical(src, srcOff + o, dst, o, f.length); break;
      case 'K': {
        const bad = enc === 'ebcdic' ? 0 : dbcsFieldToCanonical(src, srcOff + o, dst, o, f.length);
        if (bad >= 0 && firstBad < 0) firstBad = o + bad;
        break;
      }
    }
  }
  return firstBad;
}

function zonedToCanonical(src: Buffer, s: number, dst: Buffer, d: number, len: number): void {
  for (let i = 0; i < len; i++) {
    const b = src[s + i]!;
    const zone = b >> 4;
    const digit = b & 0x0f;
    const last = i === len - 1;
    if (digit > 9 || !(zone === 0xf || (last && (zone === 0xc || zone === 0xd)))) dst[d + i] = BAD_DIGIT;
    else dst[d + i] = (last && zone === 0xd ? 0x70 : 0x30) + digit;
  }
}

/** SO, pairs, SI -> CP932 pairs padded with U+3000. Returns -1 or the offset of the bad byte. */
function dbcsFieldToCanonical(src: Buffer, s: number, dst: Buffer, d: number, len: number): number {
  dst.fill(0x81, d, d + len);
  for (let i = 1; i < len; i += 2) dst[d + i] = 0x40; // 0x8140 full-width space
  if (src[s] !== SHIFT_OUT) return 0;
  if (src[s + len - 1] !== SHIFT_IN) return len - 1;
  for (let i = 1, j = 0; i + 1 < len - 1; i += 2, j += 2) {
    const cp = IBM930_DBCS.toCodePoint[(src[s + i]! << 8) | src[s + i + 1]!]!;
    const pair = cp ? sjisPairOf(cp) : undefined;
    if (pair === undefined) return i;
    dst[d + j] = pair >> 8;
    dst[d + j + 1] = pair & 0xff;
  }
  return -1;
}

function zonedFromCanonical(src: Buffer, s: number, dst: Buffer, d: number, len: number): void {
  for (let i = 0; i < len; i++) {
    const c = src[s + i]!;
    const last = i === len - 1;
    if (c >= 0x70 && c <= 0x79 && last) dst[d + i] = 0xd0 | (c - 0x70);
    else dst[d + i] = (last ? 0xc0 : 0xf0) | (c - 0x30);
  }
}

/**
 * Writes one canonical record in the target encoding. Throws FieldEncodeError naming the field when
 * a character has no code in the target (never a replacement character).
 */
export function canonicalToEncoding(enc: Encoding, layout: Layout, src: Buffer, srcOff: number, dst: Buffer, dstOff: number): void {
  const len = layout.recordLength;
  if (enc === 'sjis') { src.copy(dst, dstOff, srcOff, srcOff + len); return; }
  if (enc === 'jis8') {
    for (const f of layout.fields) {
      if (f.type === 'K') throw new FieldEncodeError(f.name, 'jis8 has no double-byte characters');
    }
    src.copy(dst, dstOff, srcOff, srcOff + len);
    return;
  }
  encodePlan(enc, layout)(src, srcOff, dst, dstOff);
}

type RecordEncoder = (src: Buffer, srcOff: number, dst: Buffer, dstOff: number) => void;
const encodePlans = new WeakMap<Layout, Map<Encoding, RecordEncoder>>();

/**
 * The EBCDIC encoder of one layout, compiled once: one pass over the record's bytes through a
 * per-position table (N and C bytes translated, P bytes copied), then the Z and K fields. A byte
 * with no code throws for the first field, in field order, that cannot be written.
 */
function encodePlan(enc: Encoding, layout: Layout): RecordEncoder {
  let byEnc = encodePlans.get(layout);
  if (!byEnc) encodePlans.set(layout, (byEnc = new Map()));
  let plan = byEnc.get(enc);
  if (plan) return plan;
  const { fromCanonical } = sbcsFor(enc);
  // runs of adjacent N and C fields go through the table, P fields are copied, Z and K written after
  const runs: { start: number; end: number; translate: boolean }[] = [];
  for (const f of layout.fields) {
    const translate = f.type === 'N' || f.type === 'C';
    const last = runs[runs.length - 1];
    if (last && last.translate === translate) last.end = f.offset + f.length;
    else runs.push({ start: f.offset, end: f.offset + f.length, translate });
  }
  const special = layout.fields.filter((f) => f.type === 'Z' || f.type === 'K');
  const runSpecial = (f: FieldDef, src: Buffer, srcOff: number, dst: Buffer, dstOff: number) => {
    if (f.type === 'Z') zonedFromCanonical(src, srcOff + f.offset, dst, dstOff + f.offset, f.length);
    else dbcsFieldFromCanonical(enc, f, src, srcOff + f.offset, dst, dstOff + f.offset);
  };
  const fail = (i: number, c: number, src: Buffer, srcOff: number, dst: Buffer, dstOff: number): never => {
    // fields before this one that fail first keep their error
    for (const f of special) if (f.offset < i) runSpecial(f, src, srcOff, dst, dstOff);
    const f = layout.fields.find((x) => i >= x.offset && i < x.offset + x.length)!;
    throw new FieldEncodeError(f.name, `byte 0x${c.toString(16)} has no code in ${enc}`);
  };
  const runStart = Int32Array.from(runs.map((r) => r.start));
  const runEnd = Int32Array.from(runs.map((r) => r.end));
  const runTranslate = Uint8Array.from(runs.map((r) => (r.translate ? 1 : 0)));
  const nRuns = runs.length;
  const checked: RecordEncoder = (src, srcOff, dst, dstOff) => {
    for (let r = 0; r < nRuns; r++) {
      const end = runEnd[r]!;
      if (runTranslate[r] === 1) {
        for (let i = runStart[r]!; i < end; i++) {
          const b = fromCanonical[src[srcOff + i]!]!;
          if (b < 0) fail(i, src[srcOff + i]!, src, srcOff, dst, dstOff);
          dst[dstOff + i] = b;
        }
      } else for (let i = runStart[r]!; i < end; i++) dst[dstOff + i] = src[srcOff + i]!;
    }
    for (let k = 0; k < special.length; k++) runSpecial(special[k]!, src, srcOff, dst, dstOff);
  };
  // The usual record has a code for every byte: translate without a branch per byte (a byte with
  // no code is -1 in the table, which the OR of all of them keeps), then, only if one had none,
  // again with the checks that find it and throw for the right field.
  plan = (src, srcOff, dst, dstOff) => {
    let acc = 0;
    for (let r = 0; r < nRuns; r++) {
      const end = dstOff + runEnd[r]!;
      const shift = srcOff - dstOff;
      if (runTranslate[r] === 1) {
        for (let i = dstOff + runStart[r]!; i < end; i++) {
          const b = fromCanonical[src[i + shift]!]!;
          acc |= b;
          dst[i] = b;
        }
      } else for (let i = dstOff + runStart[r]!; i < end; i++) dst[i] = src[i + shift]!;
    }
    if (acc < 0) { checked(src, srcOff, dst, dstOff); return; }
    for (let k = 0; k < special.length; k++) runSpecial(special[k]!, src, srcOff, dst, dstOff);
  };
  byEnc.set(enc, plan);
  return plan;
}

function dbcsFieldFromCanonical(enc: Encoding, f: FieldDef, src: Buffer, s: number, dst: Buffer, d: number): void {
  if (enc === 'ebcdic') throw new FieldEncodeError(f.name, 'IBM-037 has no double-byte characters');
  const len = f.length;
  const room = (len - 2) / 2;
  dst[d] = SHIFT_OUT;
  dst[d + len - 1] = SHIFT_IN;
  for (let j = 0; j < len / 2; j++) {
    const code = (src[s + 2 * j]! << 8) | src[s + 2 * j + 1]!;
    if (j >= room) {
      if (code !== 0x8140) throw new FieldEncodeError(f.name, `${len / 2} characters do not fit ${room} between SO and SI`);
      continue;
    }
    const cp = code === 0x8140 ? 0x3000 : sjisCodePointOfPair(code);
    const ebc = cp ? IBM930_DBCS.fromCodePoint.get(cp) : undefined;
    if (ebc === undefined) throw new FieldEncodeError(f.name, cp ? `U+${cp.toString(16).toUpperCase()} has no code in IBM-930` : 'not a double-byte character');
    dst[d + 1 + 2 * j] = ebc >> 8;
    dst[d + 2 + 2 * j] = ebc & 0xff;
  }
}

/** Record type byte of a raw record ('1','2','8','9' in ASCII or EBCDIC), as a digit char or ''. */
export function recordTypeOf(enc: Encoding, b: number): string {
  if (isEbcdic(enc)) return b >= 0xf0 && b <= 0xf9 ? String.fromCharCode(b - 0xc0) : '';
  return b >= 0x30 && b <= 0x39 ? String.fromCharCode(b) : '';
}

export { isSjisPair };
