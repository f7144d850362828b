// Section 5: HULFT moves bytes and tsunagi converts. When a partner insists on HULFT's own text
// conversion, tsunagi first makes sure HULFT has nothing to guess at: Shift_JIS with only
// JIS X 0201 and JIS X 0208 characters and no control bytes but the CR LF between records. On
// receipt, a □ (U+25A1) in a K field may be HULFT's substitute for a 外字 it had no table for.
import { openSource, streamCanonical, decodeField, FormatError, type Encoding, type Framing, type Layout } from '../../formats/index.ts';

export interface CharsetProblem {
  recordNo: number;
  /** 1-based byte in the record. */
  bytePos: number;
  field: string;
  reason: string;
}

const decoder = new TextDecoder('shift_jis', { fatal: true });

/** JIS X 0208 row of a Shift_JIS pair (1..94), or 0 for a lead byte outside JIS X 0208's range. */
function jisRow(b1: number, b2: number): number {
  let base: number;
  if (b1 >= 0x81 && b1 <= 0x9f) base = (b1 - 0x81) * 2 + 1;
  else if (b1 >= 0xe0 && b1 <= 0xef) base = (b1 - 0xc1) * 2 + 1;
  else return 0;
  if (b2 >= 0x40 && b2 <= 0x9e && b2 !== 0x7f) return base;
  if (b2 >= 0x9f && b2 <= 0xfc) return base + 1;
  return 0;
}

/** Why the bytes at `i` are not plain JIS X 0201 / 0208 text, and how many bytes the character takes. */
function checkChar(buf: Buffer, i: number, end: number): { len: number; reason?: string } {
  const b = buf[i]!;
  if (b < 0x20 || b === 0x7f) return { len: 1, reason: `control byte 0x${b.toString(16).padStart(2, '0')}` };
  if (b < 0x7f || (b >= 0xa1 && b <= 0xdf)) return { len: 1 };
  const isLead = (b >= 0x81 && b <= 0x9f) || (b >= 0xe0 && b <= 0xfc);
  if (!isLead) return { len: 1, reason: `byte 0x${b.toString(16)} is not Shift_JIS` };
  if (i + 1 >= end) return { len: 1, reason: 'a 2-byte character cut at the end of the record' };
  const b2 = buf[i + 1]!;
  const row = jisRow(b, b2);
  const hex = `0x${b.toString(16)}${b2.toString(16).padStart(2, '0')}`;
  if (b >= 0xf0) return { len: 2, reason: `${hex} is a user-defined character (外字)` };
  if (row === 0 || (row > 8 && row < 16) || row > 84) return { len: 2, reason: `${hex} is outside JIS X 0208 (a vendor extension such as NEC or IBM characters)` };
  try {
    decoder.decode(buf.subarray(i, i + 2));
  } catch {
    return { len: 2, reason: `${hex} is not an assigned JIS X 0208 character` };
  }
  return { len: 2 };
}

function fieldAt(layout: Layout | null, offset: number): string {
  const f = layout?.fields.find((x) => offset >= x.offset && offset < x.offset + x.length);
  return f?.name ?? '';
}

class Stop extends Error {}

/**
 * Before a HULFT text transfer: the first problem in the file (record, byte, field), or null.
 * Text transfer carries Shift_JIS records separated by CR LF, which is what tsunagi wrote.
 */
export async function checkTextTransfer(filePath: string, format: { layout?: string } = {}): Promise<CharsetProblem | null> {
  let problem: CharsetProblem | null = null;
  try {
    const src = await openSource(filePath, { layout: format.layout, encoding: 'sjis', framing: 'crlf' });
    for (const layout of [src.family.header, src.family.data, src.family.trailer, src.family.end]) {
      const bad = layout.fields.find((f) => f.type === 'P' || f.type === 'Z');
      if (bad) return { recordNo: 0, bytePos: bad.offset + 1, field: bad.name, reason: `layout ${layout.name} has a ${bad.type} field: binary bytes cannot go by text transfer` };
    }
    await streamCanonical(src, (rec, off, recordNo, _type, layout) => {
      const end = off + src.family.recordLength;
      for (let i = off; i < end; ) {
        const c = checkChar(rec, i, end);
        if (c.reason) {
          problem = { recordNo, bytePos: i - off + 1, field: fieldAt(layout, i - off), reason: c.reason };
          throw new Stop();
        }
        i += c.len;
      }
    });
  } catch (err) {
    if (err instanceof Stop) return problem;
    if (err instanceof FormatError) return { recordNo: 0, bytePos: 0, field: '', reason: err.message };
    throw err;
  }
  return null;
}

export interface GaijiHit {
  recordNo: number;
  field: string;
}

/** K fields that hold U+25A1 □: flagged W-HULFT-GAIJI (at most `limit` hits). */
export async function findGaijiSubstitutes(filePath: string, format: { layout?: string; encoding?: string; framing?: string } = {}, limit = 20): Promise<GaijiHit[]> {
  const hits: GaijiHit[] = [];
  try {
    const src = await openSource(filePath, { layout: format.layout, encoding: format.encoding as Encoding | undefined, framing: format.framing as Framing | undefined });
    await streamCanonical(src, (rec, off, recordNo, _type, layout) => {
      if (!layout) return;
      for (const field of gaijiFieldsIn(rec, off, layout)) {
        hits.push({ recordNo, field });
        if (hits.length >= limit) throw new Stop();
      }
    });
  } catch (err) {
    if (err instanceof Stop || err instanceof FormatError) return hits;
    throw err;
  }
  return hits;
}

/** The K fields of one canonical record that hold □ (U+25A1). */
export function gaijiFieldsIn(rec: Buffer, off: number, layout: Layout): string[] {
  const out: string[] = [];
  for (const f of layout.fields) {
    if (f.type !== 'K') continue;
    let value: string;
    try {
      value = decodeField(rec, off, f);
    } catch {
      continue; // not decodable: validation reports it
    }
    if (value.includes('\u25a1')) out.push(f.name);
  }
  return out;
}
