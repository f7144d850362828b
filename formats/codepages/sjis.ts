// Windows-31J / CP932, strict both ways. Decoding uses the platform's WHATWG shift_jis decoder in
// fatal mode (it agrees with glibc CP932 on every byte pair, and refuses 0x80, 0xA0, 0xFD-0xFF).
// Encoding uses a reverse table built once from that decoder, so a character with no CP932 code
// is refused instead of becoming '?' (iconv-lite's silent behaviour).

const strictDecoder = new TextDecoder('shift_jis', { fatal: true });
const lenientDecoder = new TextDecoder('shift_jis');

/** A character the target code page cannot hold. Callers turn it into an error naming record and field. */
export class UnmappableCharacterError extends Error {
  constructor(readonly char: string, readonly codePage: string) {
    super(`character U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} cannot be written in ${codePage}`);
  }
}

/** Bytes that are not valid in the code page. */
export class InvalidBytesError extends Error {
  constructor(readonly codePage: string, readonly byteOffset: number) {
    super(`bytes not valid in ${codePage} at offset ${byteOffset}`);
  }
}

export const isSjisLeadByte = (b: number): boolean => (b >= 0x81 && b <= 0x9f) || (b >= 0xe0 && b <= 0xfc);
export const isHalfWidthKanaByte = (b: number): boolean => b >= 0xa1 && b <= 0xdf;

/**
 * Characters that CP932 holds under the JIS X 0208 / JIS X 0201 Unicode mapping rather than
 * Microsoft's (the "wave dash" family): the same JIS character, so glibc's CP932 encodes them one
 * way, and so do we; decoding gives the CP932 form (0x8160 -> U+FF5E). Everything else without a
 * code is refused.
 */
export const JIS_MAPPING_VARIANTS: ReadonlyMap<number, number> = new Map([
  [0x00a2, 0x8191], [0x00a3, 0x8192], [0x00a5, 0x5c], [0x00ac, 0x81ca], [0x2014, 0x815c],
  [0x2016, 0x8161], [0x203e, 0x7e], [0x2212, 0x817c], [0x301c, 0x8160],
]);

let pairToCodePoint: Uint32Array | null = null; // index: (lead << 8) | trail; 0 = not a character
let codePointToPair: Map<number, number> | null = null;

function buildTables(): void {
  const toCp = new Uint32Array(65536);
  const toPair = new Map<number, number>();
  const pair = Buffer.alloc(2);
  for (let lead = 0x81; lead <= 0xfc; lead++) {
    if (!isSjisLeadByte(lead)) continue;
    for (let trail = 0x40; trail <= 0xfc; trail++) {
      if (trail === 0x7f) continue;
      pair[0] = lead;
      pair[1] = trail;
      const s = lenientDecoder.decode(pair);
      const cp = s.codePointAt(0)!;
      if (s.length !== 1 || cp === 0xfffd) continue;
      const code = (lead << 8) | trail;
      toCp[code] = cp;
      // Duplicates: like CP932 (and the WHATWG encoder), prefer the first code, but never the
      // NEC-selected IBM extensions (0xED40-0xEEFC): ①→0x8740, 髙→0xFBFC, ¬→0x81CA.
      const necSelected = code >= 0xed40 && code <= 0xeefc;
      if (!toPair.has(cp) && !necSelected) toPair.set(cp, code);
    }
  }
  for (let code = 0xed40; code <= 0xeefc; code++) {
    const cp = toCp[code]!;
    if (cp && !toPair.has(cp)) toPair.set(cp, code);
  }
  pairToCodePoint = toCp;
  codePointToPair = toPair;
}

/** True when lead/trail form a character of CP932. */
export function isSjisPair(lead: number, trail: number): boolean {
  if (!pairToCodePoint) buildTables();
  return pairToCodePoint![(lead << 8) | trail] !== 0;
}

/** The CP932 double-byte code of a code point, or undefined. */
export function sjisPairOf(codePoint: number): number | undefined {
  if (!codePointToPair) buildTables();
  return codePointToPair!.get(codePoint);
}

export function sjisCodePointOfPair(code: number): number {
  if (!pairToCodePoint) buildTables();
  return pairToCodePoint![code]!;
}

/** Strict decode: throws InvalidBytesError on any byte sequence CP932 does not define. */
export function decodeSjis(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new InvalidBytesError('sjis', firstInvalidSjisOffset(bytes));
  }
}

function firstInvalidSjisOffset(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 0x80 || isHalfWidthKanaByte(b)) continue;
    if (isSjisLeadByte(b) && i + 1 < bytes.length && isSjisPair(b, bytes[i + 1]!)) { i++; continue; }
    return i;
  }
  return bytes.length;
}

/** Strict encode to CP932: throws UnmappableCharacterError instead of writing a replacement. */
export function encodeSjis(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length * 2);
  let n = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80) out[n++] = cp;
    else if (cp >= 0xff61 && cp <= 0xff9f) out[n++] = cp - 0xfec0;
    else {
      const code = sjisPairOf(cp) ?? JIS_MAPPING_VARIANTS.get(cp);
      if (code === undefined) throw new UnmappableCharacterError(ch, 'sjis');
      if (code < 0x100) out[n++] = code;
      else {
        out[n++] = code >> 8;
        out[n++] = code & 0xff;
      }
    }
  }
  return out.subarray(0, n);
}
