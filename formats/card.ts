// Card numbers: Luhn, and masking to first 6 / last 4 wherever a number could reach text.

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** The digit that makes `partial` + digit Luhn-valid. */
export function luhnCheckDigit(partial: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(partial + d)) return String(d);
  throw new Error('unreachable');
}

/** First 6 and last 4; the middle as '*'. Short strings keep at most 4 visible characters. */
export function maskCardNumber(s: string): string {
  const t = s.trim();
  if (t.length >= 13) return t.slice(0, 6) + '*'.repeat(t.length - 10) + t.slice(-4);
  if (t.length > 4) return '*'.repeat(t.length - 4) + t.slice(-4);
  return t;
}

/** Masks every run of 12 or more digits in free text (error details, notices, logs). */
export function maskCardNumbersIn(text: string): string {
  return text.replace(/\d{12,}/g, (m) => maskCardNumber(m));
}

/**
 * Log redaction: masks each digit run that could be a card number (12-19 digits passing Luhn, or
 * any longer run, which could hide one) and leaves other numbers (references, counts) readable.
 */
export function redactCardNumbers(text: string): string {
  if (text.length < 12) return text;
  const plain = text.replace(/\d{12,}/g, (run) => (run.length > 19 || luhnValid(run) ? maskCardNumber(run) : run));
  return redactWrittenForms(plain);
}

// A card number as people write it: groups split by single spaces or dashes (4111 1111 1111 1111,
// 4111-1111-1111-1111), or in full-width digits (４１１１…), or both.
const WRITTEN = /[0-9０-９](?:[ \-‐－]?[0-9０-９]){11,18}(?![0-9０-９])/g;
const FULL_WIDTH = /[０-９]/g;

function redactWrittenForms(text: string): string {
  if (!/[ \-‐－０-９]/.test(text)) return text;
  return text.replace(WRITTEN, (m) => {
    if (/^[0-9]+$/.test(m)) return m; // a plain run: handled above
    const digits = m.replace(FULL_WIDTH, (c) => String.fromCharCode(c.charCodeAt(0) - 0xff10 + 48)).replace(/[^0-9]/g, '');
    return digits.length >= 12 && digits.length <= 19 && luhnValid(digits) ? maskCardNumber(digits) : m;
  });
}

/** Keys whose 13-digit integers are epoch-ms times: kept as they are (a time is no card number). */
const TIME_KEY = /(^|_)(at|time|ts|ms)$|(At|Ms|Time)$/;
const EPOCH_MS_MIN = 946_684_800_000; // 2000-01-01
const EPOCH_MS_MAX = 4_102_444_800_000; // 2100-01-01

/** redactCardNumbers over every string, every key, every Buffer, and every integer that could be a card number, in a JSON-like value. */
export function redactDeep(value: unknown, key = ''): unknown {
  if (typeof value === 'string') return redactCardNumbers(value);
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) >= 1e11) {
    if (TIME_KEY.test(key) && value >= EPOCH_MS_MIN && value < EPOCH_MS_MAX) return value;
    const digits = String(Math.abs(value));
    return digits.length > 19 || luhnValid(digits) ? redactCardNumbers(String(value)) : value;
  }
  if (typeof value === 'bigint') return redactDeep(value.toString());
  if (Buffer.isBuffer(value)) return redactDeep(value.toJSON());
  if (Array.isArray(value)) return value.map((v) => redactDeep(v));
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    // A Buffer as JSON ({ type: 'Buffer', data: [bytes] }): its bytes are read as text.
    if (o.type === 'Buffer' && Array.isArray(o.data) && Object.keys(o).length === 2) {
      const text = Buffer.from(o.data as number[]).toString('latin1');
      const safe = redactCardNumbers(text);
      return safe === text ? value : { type: 'Buffer', data: [...Buffer.from(safe, 'latin1')] };
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) out[redactCardNumbers(k)] = redactDeep(v, k);
    return out;
  }
  return value;
}

/** Checks a canonical cardNo field: 12-19 digits left-justified, spaces after, Luhn. Returns '' or why not. */
export function checkCardBytes(buf: Buffer, s: number, len: number): string {
  let n = 0;
  while (n < len && buf[s + n]! >= 0x30 && buf[s + n]! <= 0x39) n++;
  for (let i = n; i < len; i++) if (buf[s + i] !== 0x20) return n === 0 && buf[s] === 0x20 ? 'not left-justified' : 'not digits';
  if (n < 12 || n > 19) return `${n} digits`;
  // Luhn over the bytes, no string
  let sum = 0;
  let double = false;
  for (let i = s + n - 1; i >= s; i--) {
    let d = buf[i]! - 48;
    if (double) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0 ? '' : 'Luhn check fails';
}
