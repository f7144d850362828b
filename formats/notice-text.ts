// The detail texts of a 91 rejection notice, as the merchant reads them: Japanese in half-width
// katakana (a C field holds single-byte text only: JIS X 0201 in Shift_JIS, JIS8 and EBCDIC-kana),
// the error code first, cut on a word (else character) boundary, no card number. A partner whose
// code page has no katakana (IBM-037) gets the English text.
import { maskCardNumbersIn } from './card.ts';
import { ERROR_CODES, type ErrorCode } from './errors.ts';
import type { Encoding } from './layouts.ts';

export const NOTICE_TEXT_JA: Record<ErrorCode, string> = {
  E101: 'ﾚｺｰﾄﾞﾁｮｳ ﾏﾀﾊ ｸｷﾞﾘ ｶﾞ ﾌｾｲ',
  E102: 'ﾚｺｰﾄﾞｼｭﾍﾞﾂ ｶﾞ ﾌﾒｲ',
  E103: 'ﾚｺｰﾄﾞ ﾉ ｼﾞｭﾝｼﾞｮ ｶﾞ ﾌｾｲ',
  E104: 'ﾄﾚｰﾗ ﾏﾀﾊ ｴﾝﾄﾞ ﾚｺｰﾄﾞ ｶﾞ ﾅｲ',
  E105: 'ﾄﾚｰﾗ ﾉ ｹﾝｽｳ ｶﾞ ﾌｲｯﾁ',
  E106: 'ﾄﾚｰﾗ ﾉ ｷﾝｶﾞｸ ｶﾞ ﾌｲｯﾁ',
  E107: 'ｿｳｼﾝ ﾃﾞｷﾅｲ ﾌｧｲﾙｼｭﾍﾞﾂ',
  E108: 'ﾌｧｲﾙ ﾉ ﾆｼﾞｭｳｿｳｼﾝ(ｼﾞｭﾘｮｳｽﾞﾐ)',
  E109: 'ﾓｼﾞｺｰﾄﾞ ｶﾞ ﾌｾｲ',
  E201: 'ｽｳｼﾞ ｲｶﾞｲ ﾉ ﾓｼﾞ ｶﾞ ｱﾙ',
  E202: 'ﾋﾂﾞｹ ｶﾞ ﾌｾｲ',
  E203: 'ｼﾞｺｸ ｶﾞ ﾌｾｲ',
  E204: 'ｶｰﾄﾞﾊﾞﾝｺﾞｳ ｶﾞ ﾌｾｲ',
  E205: 'ｶｰﾄﾞ ﾉ ﾕｳｺｳｷｹﾞﾝｷﾞﾚ',
  E206: 'ｺｰﾄﾞ ｶﾞ ﾌｾｲ',
  E207: 'ﾌﾞﾝｶﾂｶｲｽｳ ｶﾞ ｼﾊﾗｲﾎｳﾎｳ ﾄ ｱﾜﾅｲ',
  E208: 'ｷﾝｶﾞｸ ｶﾞ ﾌｾｲ',
  E209: 'ﾄﾘｹｼ/ﾍﾝﾋﾟﾝ ﾉ ﾓﾄﾃﾞﾝﾋﾟｮｳ ｶﾞ ﾅｲ',
  E210: 'ｾﾞﾝｶｸ ﾏﾀﾊ ｾｲｷﾞｮﾓｼﾞ ｶﾞ ｱﾙ',
  E301: 'ｶｰﾄﾞｶﾞｲｼｬｺｰﾄﾞ ﾉ ｿｳｼﾝｻｷ ｶﾞ ﾅｲ',
  E302: 'ｶﾒｲﾃﾝﾊﾞﾝｺﾞｳ ｶﾞ ｿｳｼﾝﾓﾄ ﾄ ｱﾜﾅｲ',
  E303: 'ﾌｧｲﾙﾅｲ ﾉ ﾚｺｰﾄﾞ ｼﾞｭｳﾌｸ',
};

/** Code pages whose single-byte half has katakana. */
export const hasKana = (encoding: Encoding): boolean => encoding !== 'ebcdic';

/** Keeps the characters a C field may hold (ASCII printable, half-width katakana); card numbers masked. */
function singleByteText(text: string): string {
  let out = '';
  for (const ch of maskCardNumbersIn(text)) {
    const c = ch.charCodeAt(0);
    if ((c >= 0x20 && c < 0x7f) || (c >= 0xff61 && c <= 0xff9f)) out += ch;
  }
  return out;
}

/**
 * Cuts to at most `maxBytes` bytes of a C field (one byte per character there), at the last space
 * that fits when there is one in the second half, so a word is not cut in two.
 */
export function cutText(text: string, maxBytes: number): string {
  const chars = [...text];
  if (chars.length <= maxBytes) return text.trimEnd();
  const head = chars.slice(0, maxBytes);
  const space = head.lastIndexOf(' ');
  return (space >= maxBytes / 2 ? head.slice(0, space) : head).join('').trimEnd();
}

/** Half-width text only, card numbers masked, cut to the field's bytes on a word boundary. */
export function noticeText(text: string, maxBytes: number): string {
  return cutText(singleByteText(text), maxBytes);
}

/** What the sender should do about a line, by how the file was judged. */
export type ResendAdvice = 'whole-file' | 'duplicate' | 'record';

const ADVICE_JA: Record<ResendAdvice, string> = {
  'whole-file': 'ﾌｧｲﾙｾﾞﾝﾀｲｦ ｻｲｿｳｼﾝ',
  duplicate: 'ｻｲｿｳｼﾝ ﾌﾖｳ',
  record: 'ﾍﾞﾂﾂｲﾊﾞﾝﾃﾞ ｻｲｿｳｼﾝ', // this record again, under another fileSeq
};
const ADVICE_EN: Record<ResendAdvice, string> = {
  'whole-file': 'resend the whole file',
  duplicate: 'do not resend',
  record: 'resend this record, new fileSeq',
};

/** The detail of one error: code first, what it means, then what to resend, in the partner's language. */
export function errorDetail(code: ErrorCode, encoding: Encoding, maxBytes: number, advice?: ResendAdvice, original = ''): string {
  const kana = hasKana(encoding);
  // The card the error is about, masked (first 6 / last 4), so the merchant can find the sale.
  const card = code === 'E204' || code === 'E205' ? /\d{6}\*+\d{4}/.exec(maskCardNumbersIn(original))?.[0] : undefined;
  const meaning = kana ? NOTICE_TEXT_JA[code] : ERROR_CODES[code];
  const tail = advice ? `${kana ? '' : '- '}${(kana ? ADVICE_JA : ADVICE_EN)[advice]}` : '';
  // The meaning first; then what to resend; then the card; whatever does not fit gives way.
  const tries = [[meaning, card, tail], [meaning, tail], [meaning, card], [meaning]].map((parts) => `${code} ${parts.filter(Boolean).join(' ')}`);
  return noticeText(tries.find((t) => [...t].length <= maxBytes) ?? tries.at(-1)!, maxBytes);
}

/** Closing line of a notice whose errors were not all listed. */
export function omittedDetail(code: ErrorCode, omitted: number, total: number, encoding: Encoding, maxBytes: number): string {
  const text = hasKana(encoding) ? `${code} ﾎｶ ${omitted}ｹﾝ ﾉ ｴﾗｰ ｦ ｼｮｳﾘｬｸ(ｺﾞｳｹｲ ${total}ｹﾝ)` : `${code} ${omitted} more errors not listed (${total} in all)`;
  return noticeText(text, maxBytes);
}
