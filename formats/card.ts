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
  return text.replace(/\d{12,}/g, (run) => (run.length > 19 || luhnValid(run) ? maskCardNumber(run) : run));
}

/** redactCardNumbers over every string, and every integer that could be a card number, in a JSON-like value. */
export function redactDeep(value: unknown): unknown {
  if (typeof value === 'string') return redactCardNumbers(value);
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) >= 1e11) {
    const digits = String(Math.abs(value));
    return digits.length > 19 || luhnValid(digits) ? redactCardNumbers(String(value)) : value;
  }
  if (typeof value === 'bigint') return redactDeep(value.toString());
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v);
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
