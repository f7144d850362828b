// Real calendar dates and times, read straight from canonical digit bytes.
import { readDigits } from './field-codec.ts';

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

export function isRealDate(y: number, m: number, d: number): boolean {
  if (!(y >= 1900 && y <= 2099 && m >= 1 && m <= 12 && d >= 1)) return false;
  return d <= (m === 2 && isLeap(y) ? 29 : DAYS[m - 1]!);
}

/** YYYYMMDD as bytes at s. */
export const isDate8 = (b: Buffer, s: number): boolean => isRealDate(readDigits(b, s, 4), readDigits(b, s + 4, 2), readDigits(b, s + 6, 2));
/** YYMMDD (20YY). */
export const isDate6 = (b: Buffer, s: number): boolean => isRealDate(2000 + readDigits(b, s, 2), readDigits(b, s + 2, 2), readDigits(b, s + 4, 2));
/** YYMM expiry. */
export const isYymm = (b: Buffer, s: number): boolean => { const m = readDigits(b, s + 2, 2); return m >= 1 && m <= 12; };
export const isTime6 = (b: Buffer, s: number): boolean => readDigits(b, s, 2) < 24 && readDigits(b, s + 2, 2) < 60 && readDigits(b, s + 4, 2) < 60;

export function isAllZero(b: Buffer, s: number, len: number): boolean {
  for (let i = s; i < s + len; i++) if (b[i] !== 0x30) return false;
  return true;
}

/** A Date as JST (UTC+9, no daylight saving) YYYYMMDD and HHMMSS. */
export function jstStamp(at: Date): { date: string; time: string } {
  const iso = new Date(at.getTime() + 9 * 3600_000).toISOString();
  return { date: iso.slice(0, 10).replaceAll('-', ''), time: iso.slice(11, 19).replaceAll(':', '') };
}
