// Card numbers never appear whole in a log, an error, a notice or a report: any run of 12-19 digits
// that passes the Luhn check keeps its first 6 and last 4 digits only. Longer digit runs could hide
// a card number anywhere inside, so they are masked the same way.

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** First 6 and last 4 digits, the rest as '*'. */
export function maskCardNumber(digits: string): string {
  if (digits.length <= 10) return '*'.repeat(digits.length);
  return digits.slice(0, 6) + '*'.repeat(digits.length - 10) + digits.slice(-4);
}

const DIGIT_RUN = /\d{12,}/g;

export function redactCardNumbers(text: string): string {
  if (text.length < 12) return text;
  return text.replace(DIGIT_RUN, (run) => (run.length > 19 || luhnValid(run) ? maskCardNumber(run) : run));
}

/** Redacts every string (and every number that could be a card number) inside a JSON-like value. */
export function redactDeep(value: unknown): unknown {
  if (typeof value === 'string') return redactCardNumbers(value);
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) >= 1e11) {
    const s = String(Math.abs(value));
    return s.length > 19 || luhnValid(s) ? redactCardNumbers(String(value)) : value;
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
