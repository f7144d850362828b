// EBCDIC code pages as data: the single-byte IBM-037 ('ebcdic'), the single-byte half of IBM-930
// ('ebcdic-kana') and IBM-930's double-byte half (used between SO 0x0E and SI 0x0F in K fields).
// The tables were generated from glibc iconv by build-ebcdic-tables.ts; a test re-checks them.
import { readFileSync } from 'node:fs';

interface RawTables { ibm037: (number | null)[]; ibm930sbcs: (number | null)[]; ibm930dbcs: Record<string, number> }

export const SHIFT_OUT = 0x0e;
export const SHIFT_IN = 0x0f;
export const EBCDIC_SPACE = 0x40;
export const DBCS_SPACE = 0x4040;

export interface SingleByteTable {
  /** byte -> code point, -1 when the byte is not a character (SO/SI or undefined). */
  toCodePoint: Int32Array;
  /** code point -> byte */
  fromCodePoint: Map<number, number>;
}

const raw = JSON.parse(readFileSync(new URL('./ebcdic-tables.json', import.meta.url), 'utf8')) as RawTables;

function singleByte(list: (number | null)[]): SingleByteTable {
  const toCodePoint = new Int32Array(256).fill(-1);
  const fromCodePoint = new Map<number, number>();
  list.forEach((cp, b) => {
    if (cp === null) return;
    toCodePoint[b] = cp;
    if (!fromCodePoint.has(cp)) fromCodePoint.set(cp, b);
  });
  return { toCodePoint, fromCodePoint };
}

export const IBM037 = singleByte(raw.ibm037);
export const IBM930_SBCS = singleByte(raw.ibm930sbcs);

/** IBM-930 double-byte: (lead << 8 | trail) -> code point (0 = undefined), and the reverse. */
export const IBM930_DBCS = (() => {
  const toCodePoint = new Uint32Array(65536);
  const fromCodePoint = new Map<number, number>();
  for (const [hex, cp] of Object.entries(raw.ibm930dbcs)) {
    const code = parseInt(hex, 16);
    toCodePoint[code] = cp;
    if (!fromCodePoint.has(cp)) fromCodePoint.set(cp, code);
  }
  return { toCodePoint, fromCodePoint };
})();
