// The small slice of EBCDIC (IBM-037) that 全銀 control messages need: digits, letters, space and
// common punctuation. Self-contained on purpose (formats/ owns full code pages). Refuses anything
// it cannot map instead of writing a replacement character.

const ASCII_TO_EBCDIC = new Map<number, number>();
const EBCDIC_TO_ASCII = new Map<number, number>();

function map(ascii: string, ebcdic: number): void {
  ASCII_TO_EBCDIC.set(ascii.charCodeAt(0), ebcdic);
  EBCDIC_TO_ASCII.set(ebcdic, ascii.charCodeAt(0));
}

function mapRun(letters: string, first: number): void {
  for (let i = 0; i < letters.length; i++) map(letters[i]!, first + i);
}

mapRun('0123456789', 0xf0);
mapRun('ABCDEFGHI', 0xc1);
mapRun('JKLMNOPQR', 0xd1);
mapRun('STUVWXYZ', 0xe2);
mapRun('abcdefghi', 0x81);
mapRun('jklmnopqr', 0x91);
mapRun('stuvwxyz', 0xa2);
const PUNCTUATION: [string, number][] = [
  [' ', 0x40], ['.', 0x4b], ['<', 0x4c], ['(', 0x4d], ['+', 0x4e], ['&', 0x50], ['$', 0x5b], ['*', 0x5c],
  [')', 0x5d], [';', 0x5e], ['-', 0x60], ['/', 0x61], [',', 0x6b], ['%', 0x6c], ['_', 0x6d], ['>', 0x6e],
  ['?', 0x6f], [':', 0x7a], ['#', 0x7b], ['@', 0x7c], ["'", 0x7d], ['=', 0x7e], ['"', 0x7f],
];
for (const [a, e] of PUNCTUATION) map(a, e);

export class EbcdicError extends Error {}

/** Encodes `text` into exactly `length` bytes (space-padded when shorter, refused when longer). */
export function encodeEbcdic(text: string, length = text.length): Buffer {
  if (text.length > length) throw new EbcdicError(`text of ${text.length} characters does not fit in ${length} bytes`);
  const out = Buffer.alloc(length, 0x40);
  for (let i = 0; i < text.length; i++) {
    const e = ASCII_TO_EBCDIC.get(text.charCodeAt(i));
    if (e === undefined) throw new EbcdicError(`character ${JSON.stringify(text[i])} has no IBM-037 mapping here`);
    out[i] = e;
  }
  return out;
}

/** Decodes bytes; throws on a byte outside the mapped set. */
export function decodeEbcdic(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) {
    const a = EBCDIC_TO_ASCII.get(b);
    if (a === undefined) throw new EbcdicError(`byte 0x${b.toString(16).padStart(2, '0')} is not a mapped IBM-037 character`);
    s += String.fromCharCode(a);
  }
  return s;
}

/** Every mapped (ascii, ebcdic) pair, for tests against glibc's iconv. */
export function ebcdicPairs(): [string, number][] {
  return [...ASCII_TO_EBCDIC].map(([a, e]) => [String.fromCharCode(a), e]);
}
