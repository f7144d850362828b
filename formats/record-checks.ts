// Field and record checks of one layout on canonical bytes (see codepages/index.ts), compiled once
// per layout so that the per-record work is byte loops with no strings unless an error is found.
import { maskCardNumber, checkCardBytes } from './card.ts';
import { isAllZero, isDate6, isDate8, isTime6, isYymm } from './calendar.ts';
import { isHalfWidthKanaByte, isSjisLeadByte, isSjisPair } from './codepages/index.ts';
import type { ErrorCode } from './errors.ts';
import { readDigits, readNumber } from './field-codec.ts';
import { KNOWN_FILE_TYPES, type Encoding, type FieldDef, type Layout, type RuleSpec } from './layouts.ts';

export interface CheckContext {
  encoding: Encoding;
  allowedFileTypes?: string[];
  routeCodes?: Set<string>;
  ownMerchantNos?: Set<string>;
  /** YYYYMMDD as a number, or 0 */
  today: number;
}

export type Report = (field: FieldDef | null, code: ErrorCode, detail: string) => void;

const codeBytes = (f: FieldDef, codes: string[]) => codes.map((c) => Buffer.from(f.type === 'C' ? c.padEnd(f.length, ' ') : c.padStart(f.length, '0'), 'latin1'));

function equalsAt(buf: Buffer, s: number, v: Buffer): boolean {
  for (let i = 0; i < v.length; i++) if (buf[s + i] !== v[i]) return false;
  return true;
}

/** Returns '' when the C field's bytes are fine, else the code and a detail. */
function checkTextBytes(buf: Buffer, s: number, len: number, jis8: boolean): [ErrorCode, string] | null {
  for (let i = 0; i < len; i++) {
    const b = buf[s + i]!;
    if (b >= 0x20 && b < 0x7f) continue;
    if (isHalfWidthKanaByte(b)) continue;
    if (b < 0x20 || b === 0x7f) return ['E210', `control or unmappable character at byte ${i + 1} of the field`];
    if (!jis8 && isSjisLeadByte(b) && i + 1 < len && isSjisPair(b, buf[s + i + 1]!)) return ['E210', `double-byte character at byte ${i + 1} of the field`];
    return ['E109', `byte 0x${b.toString(16)} at byte ${i + 1} of the field is not valid in ${jis8 ? 'jis8' : 'sjis'}`];
  }
  return null;
}

function checkDoubleByteText(buf: Buffer, s: number, len: number): [ErrorCode, string] | null {
  for (let i = 0; i < len; i += 2) {
    const b = buf[s + i]!;
    if (!isSjisLeadByte(b)) return ['E210', `single-byte character at byte ${i + 1} of a K field`];
    if (!isSjisPair(b, buf[s + i + 1]!)) return ['E109', `bytes 0x${buf.subarray(s + i, s + i + 2).toString('hex')} are not a CP932 character`];
  }
  return null;
}

type FieldCheckFn = (buf: Buffer, off: number, report: Report) => void;

// Byte classes of the fast scan: 1 a digit (N fields), 2 a character allowed in a C field (ASCII
// printable or half-width katakana), the same in sjis and jis8.
const BYTE_CLASS = new Uint8Array(256);
for (let b = 0x30; b <= 0x39; b++) BYTE_CLASS[b] |= 1;
for (let b = 0x20; b < 0x7f; b++) BYTE_CLASS[b] |= 2;
for (let b = 0; b < 256; b++) if (isHalfWidthKanaByte(b)) BYTE_CLASS[b] |= 2;

// The same classes four bytes at a time (0x80 in each byte of the class): Hacker's Delight
// "has a byte between m and n", exact per byte for 0 <= m <= 127, n <= 128.
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
const HI = 0x80808080 | 0;
const LO7 = 0x7f7f7f7f;
const between = (m: number, n: number) => [(0x01010101 * (127 + n)) | 0, (0x01010101 * (127 - m)) | 0] as const;
const [DIG1, DIG2] = between(0x2f, 0x3a); // 0x30-0x39
const [PRN1, PRN2] = between(0x1f, 0x7f); // 0x20-0x7e
const [KAN1, KAN2] = between(0x20, 0x60); // 0xa1-0xdf, tested on the byte with its high bit flipped

/**
 * A scan of the N and C bytes of a record at once: true when each N byte is a digit and each C
 * byte is allowed text, so that no type check of those fields can fail. Fields whose value check
 * can only pass on valid bytes are left to that check. Reads 32-bit words when
 * the buffer allows it (the record-io buffers do), else bytes.
 */
function compileScan(layout: Layout, skip: (f: FieldDef) => boolean): (buf: Buffer, off: number) => boolean {
  const L = layout.recordLength;
  const need = new Uint8Array(L);
  for (const f of layout.fields) if ((f.type === 'N' || f.type === 'C') && !skip(f)) need.fill(f.type === 'N' ? 1 : 2, f.offset, f.offset + f.length);
  // per alignment of the record's first byte: (word index, digit mask, text mask) for each word
  // that holds a byte to check
  const plans = [0, 1, 2, 3].map((a) => {
    const words = (a + L + 3) >> 2;
    const masks = new Int32Array(words * 2);
    for (let i = 0; i < L; i++) {
      if (need[i] === 0) continue;
      const pos = a + i;
      masks[(pos >> 2) * 2 + (need[i] === 1 ? 0 : 1)] |= 0x80 << ((pos & 3) * 8);
    }
    const plan: number[] = [];
    for (let w = 0; w < words; w++) if (masks[2 * w] !== 0 || masks[2 * w + 1] !== 0) plan.push(w, masks[2 * w]!, masks[2 * w + 1]!);
    return { plan: Int32Array.from(plan), words };
  });
  let lastBuffer: ArrayBufferLike | null = null;
  let words: Int32Array<ArrayBufferLike> = new Int32Array(0);
  const byBytes = (buf: Buffer, off: number): boolean => {
    let acc = 0;
    for (let i = 0; i < L; i++) { const n = need[i]!; acc |= (BYTE_CLASS[buf[off + i]!]! & n) ^ n; }
    return acc === 0;
  };
  if (!LITTLE_ENDIAN) return byBytes;
  return (buf, off) => {
    const ab = buf.buffer;
    if (ab !== lastBuffer) {
      lastBuffer = ab;
      words = new Int32Array(ab, 0, ab.byteLength >> 2);
    }
    const p = buf.byteOffset + off;
    const a = p & 3;
    const { plan, words: n } = plans[a]!;
    const w0 = (p - a) >> 2;
    if (w0 + n > words.length) return byBytes(buf, off);
    let acc = 0;
    for (let j = 0; j < plan.length; j += 3) {
      const x = words[w0 + plan[j]!]!;
      const t = x & LO7;
      const nd = plan[j + 1]!;
      const nt = plan[j + 2]!;
      let ok = ((DIG1 - t) & ~x & (t + DIG2) & nd) | ((PRN1 - t) & ~x & (t + PRN2) & nt);
      // katakana only where a text byte has its high bit set
      if ((x & HI & nt) !== 0) { const y = x ^ HI; const u = y & LO7; ok |= (KAN1 - u) & ~y & (u + KAN2) & nt; }
      acc |= ok ^ (nd | nt);
    }
    return acc === 0;
  };
}

/** Compiles the checks of one layout. `bad` marks fields that failed, for the record rules. */
export function compileRecordChecks(layout: Layout, ctx: CheckContext, rules: RuleSpec[] = []) {
  const jis8 = ctx.encoding === 'jis8';
  const bad = new Uint8Array(layout.fields.length);
  const fieldOf = (name: string) => layout.byName.get(name)!;
  // rules with nothing to check here (duplicate: across records, see validate.ts; notAfterToday without today) are left out
  const ruleChecks = rules.filter((r) => r.rule !== 'duplicate' && !(r.rule === 'notAfterToday' && !ctx.today)).map((r) => compileRule(r, fieldOf, bad, ctx));
  // route codes as numbers when they are all digits of the field's length: no string per record
  const routeField = layout.fields.find((f) => f.check === 'route');
  const routeNumbers = ctx.routeCodes && routeField && [...ctx.routeCodes].every((c) => c.length === routeField.length && /^[0-9]+$/.test(c)) ? new Set([...ctx.routeCodes].map(Number)) : null;
  const typeChecks = layout.fields.map((f) => typeCheckOf(f, jis8, bad));
  const valueChecks = layout.fields.map((f) => valueCheckOf(f, ctx, routeNumbers, bad));
  const nFields = layout.fields.length;
  // The fast path, for records without errors: a scan of the N and C bytes, the K/P/Z type checks
  // and the value checks, the failures only noted. Fields whose value check passes only on bytes
  // that fit the type are not scanned. On any failure the record is checked again on the full
  // path, which reports every error in order, so both paths report the same.
  const implied = layout.fields.map((f) => valueChecks[f.index] !== null && impliesType(f, ctx, routeNumbers));
  const scan = compileScan(layout, (f) => implied[f.index]!);
  const fastList = layout.fields.filter((f) => f.type === 'K' || f.type === 'P' || f.type === 'Z' || valueChecks[f.index]).map((f) => f.index);
  const fastType = fastList.map((k) => (layout.fields[k]!.type === 'N' || layout.fields[k]!.type === 'C' ? null : typeChecks[k]!));
  const fastValue = fastList.map((k) => valueChecks[k]!);
  const nFast = fastList.length;
  const nRules = ruleChecks.length;
  let failed = false;
  const note: Report = () => { failed = true; };
  let dirty = true;

  return function check(buf: Buffer, off: number, skipField: number, report: Report): void {
    if (dirty) { bad.fill(0); dirty = false; }
    let clean = false;
    if (skipField < 0 && scan(buf, off)) {
      failed = false;
      for (let j = 0; j < nFast; j++) {
        const t = fastType[j];
        if (t && t(buf, off, note)) break;
        const v = fastValue[j];
        if (v) { v(buf, off, note); if (failed) break; }
      }
      clean = !failed;
      if (!clean) bad.fill(0);
    }
    if (!clean) {
      if (skipField >= 0) bad[skipField] = 1;
      for (let k = 0; k < nFields; k++) {
        if (bad[k]) continue;
        if (typeChecks[k]!(buf, off, report)) continue;
        const v = valueChecks[k];
        if (v) v(buf, off, report);
      }
    }
    for (let r = 0; r < nRules; r++) ruleChecks[r]!(buf, off, report);
    // any failure leaves a mark in bad; clear it before the next record
    if (!dirty) for (let k = 0; k < nFields; k++) if (bad[k]) { dirty = true; break; }
  };
}

/** True when the field's value check can pass only if its bytes fit its type (so no scan is needed). */
function impliesType(f: FieldDef, ctx: CheckContext, routeNumbers: Set<number> | null): boolean {
  const c = f.check;
  if (c === undefined) return false;
  if (typeof c === 'object') return f.type === 'N' && usesCodeTable(f); // readDigits of the whole field, NaN is no code
  switch (c) {
    case 'date8': case 'date8z': return f.type === 'N' && f.length === 8; // every digit read (or all '0')
    case 'date6': case 'time6': return f.type === 'N' && f.length === 6;
    case 'route': return f.type === 'N' && ctx.routeCodes !== undefined && routeNumbers !== null;
    case 'card': case 'cardOrBlank': return f.type === 'C'; // digits then spaces, or all spaces
    default: return false;
  }
}

/** N code lists checked through a table indexed by the field's number. */
function usesCodeTable(f: FieldDef): boolean {
  return f.type === 'N' && f.length <= 4 && typeof f.check === 'object' && f.check.codes.every((c) => c.length <= f.length && /^[0-9]+$/.test(c));
}

/** 1. the bytes fit the type. Returns true (and reports) when they do not. */
function typeCheckOf(f: FieldDef, jis8: boolean, bad: Uint8Array): (buf: Buffer, off: number, report: Report) => boolean {
  const k = f.index;
  const rel = f.offset;
  const len = f.length;
  switch (f.type) {
    case 'N':
      return (buf, off, report) => {
        const s = off + rel;
        for (let i = s; i < s + len; i++) {
          const b = buf[i]!;
          if (b < 0x30 || b > 0x39) { bad[k] = 1; report(f, 'E201', `not digits at byte ${i - s + 1} of the field`); return true; }
        }
        return false;
      };
    case 'C':
      return (buf, off, report) => {
        const problem = checkTextBytes(buf, off + rel, len, jis8);
        if (problem) { bad[k] = 1; report(f, problem[0], problem[1]); return true; }
        return false;
      };
    case 'K':
      return (buf, off, report) => {
        const problem = jis8 ? (['E109', 'jis8 has no double-byte characters'] as [ErrorCode, string]) : checkDoubleByteText(buf, off + rel, len);
        if (problem) { bad[k] = 1; report(f, problem[0], problem[1]); return true; }
        return false;
      };
    case 'P': case 'Z':
      return (buf, off, report) => {
        if (Number.isNaN(readNumber(buf, off, f))) { bad[k] = 1; report(f, 'E201', `not a valid ${f.type === 'P' ? 'packed' : 'zoned'} number`); return true; }
        return false;
      };
  }
}

/** 2. the value fits the field's check (called only when the type check passed). */
function valueCheckOf(f: FieldDef, ctx: CheckContext, routeNumbers: Set<number> | null, bad: Uint8Array): FieldCheckFn | null {
  if (f.check === undefined) return null;
  const k = f.index;
  const rel = f.offset;
  const len = f.length;
  const text = (buf: Buffer, s: number, n: number) => buf.toString('latin1', s, s + n);
  if (typeof f.check === 'object') {
    const codes = codeBytes(f, f.check.codes);
    const failed = (buf: Buffer, s: number, report: Report) => { bad[k] = 1; report(f, 'E206', `'${buf.toString('latin1', s, s + len).trimEnd()}' is not a known code`); };
    if (usesCodeTable(f)) {
      // digits already checked: a table indexed by the number
      const known = new Uint8Array(10 ** len);
      for (const c of codes) known[Number(c.toString('latin1'))] = 1;
      return (buf, off, report) => { const s = off + rel; if (known[readDigits(buf, s, len)] !== 1) failed(buf, s, report); };
    }
    return (buf, off, report) => {
      const s = off + rel;
      for (let c = 0; c < codes.length; c++) if (equalsAt(buf, s, codes[c]!)) return;
      failed(buf, s, report);
    };
  }
  switch (f.check) {
    case 'date8': return (buf, off, report) => { const s = off + rel; if (!isDate8(buf, s)) { bad[k] = 1; report(f, 'E202', `'${text(buf, s, 8)}' is not a real date`); } };
    case 'date8z': return (buf, off, report) => { const s = off + rel; if (!isAllZero(buf, s, 8) && !isDate8(buf, s)) { bad[k] = 1; report(f, 'E202', `'${text(buf, s, 8)}' is not a real date`); } };
    case 'date6': return (buf, off, report) => { const s = off + rel; if (!isDate6(buf, s)) { bad[k] = 1; report(f, 'E202', `'${text(buf, s, 6)}' is not a real date`); } };
    case 'yymm': return (buf, off, report) => { const s = off + rel; if (!isYymm(buf, s)) { bad[k] = 1; report(f, 'E202', `'${text(buf, s, 4)}' is not a real YYMM`); } };
    case 'yymmz': return (buf, off, report) => { const s = off + rel; if (!isAllZero(buf, s, 4) && !isYymm(buf, s)) { bad[k] = 1; report(f, 'E202', `'${text(buf, s, 4)}' is not a real YYMM`); } };
    case 'time6': return (buf, off, report) => { const s = off + rel; if (!isTime6(buf, s)) { bad[k] = 1; report(f, 'E203', `'${text(buf, s, 6)}' is not a real time`); } };
    case 'card': case 'cardOrBlank': {
      const orBlank = f.check === 'cardOrBlank';
      return (buf, off, report) => {
        const s = off + rel;
        if (orBlank && buf[s] === 0x20 && isBlank(buf, s, len)) return;
        const why = checkCardBytes(buf, s, len);
        if (why) { bad[k] = 1; report(f, 'E204', `${maskCardNumber(text(buf, s, len))}: ${why}`); }
      };
    }
    case 'route': {
      const codes = ctx.routeCodes;
      if (!codes) return null;
      return (buf, off, report) => {
        const s = off + rel;
        if (!(routeNumbers ? routeNumbers.has(readDigits(buf, s, len)) : codes.has(text(buf, s, len)))) { bad[k] = 1; report(f, 'E301', `code ${text(buf, s, len)} has no route`); }
      };
    }
    case 'ownMerchant': {
      const own = ctx.ownMerchantNos;
      if (!own) return null;
      return (buf, off, report) => {
        const m = text(buf, off + rel, len).trimEnd();
        if (!own.has(m)) { bad[k] = 1; report(f, 'E302', `merchant ${m} does not belong to the sender`); }
      };
    }
    case 'nonzero': return (buf, off, report) => { if (readNumber(buf, off, f) === 0) { bad[k] = 1; report(f, 'E208', 'amount is zero'); } };
    case 'fileType':
      return (buf, off, report) => {
        const t = text(buf, off + rel, 2);
        if (!KNOWN_FILE_TYPES.includes(t)) { bad[k] = 1; report(f, 'E107', `unknown fileType ${t}`); }
        else if (ctx.allowedFileTypes && !ctx.allowedFileTypes.includes(t)) { bad[k] = 1; report(f, 'E107', `fileType ${t} is not allowed here (allowed: ${ctx.allowedFileTypes.join(',')})`); }
      };
  }
}

function isBlank(buf: Buffer, s: number, len: number): boolean {
  for (let i = s; i < s + len; i++) if (buf[i] !== 0x20) return false;
  return true;
}

type RuleCheck = (buf: Buffer, off: number, report: Report) => void;

function compileRule(rule: RuleSpec, fieldOf: (n: string) => FieldDef, bad: Uint8Array, ctx: CheckContext): RuleCheck {
  switch (rule.rule) {
    case 'installments': {
      const m = fieldOf(rule.method), c = fieldOf(rule.count);
      return (buf, off, report) => {
        if (bad[m.index] || bad[c.index]) return;
        const method = readNumber(buf, off, m);
        const count = readNumber(buf, off, c);
        const needsCount = method === 61 || (method >= 31 && method <= 34);
        if (needsCount ? count < 2 || count > 99 : count !== 0) {
          bad[c.index] = 1;
          report(c, 'E207', needsCount ? `payment method ${method} needs 02-99 installments, got ${count}` : `payment method ${method} takes 00 installments, got ${count}`);
        }
      };
    }
    case 'expiry': {
      const e = fieldOf(rule.expiry), d = fieldOf(rule.date);
      return (buf, off, report) => {
        if (bad[e.index] || bad[d.index] || isAllZero(buf, off + e.offset, 4)) return;
        const exp = (2000 + readDigits(buf, off + e.offset, 2)) * 100 + readDigits(buf, off + e.offset + 2, 2);
        const use = d.length === 8 ? readDigits(buf, off + d.offset, 6) : (2000 + readDigits(buf, off + d.offset, 2)) * 100 + readDigits(buf, off + d.offset + 2, 2);
        if (exp < use) { bad[e.index] = 1; report(e, 'E205', `expiry ${exp} is before the use month ${use}`); }
      };
    }
    case 'original': {
      const t = fieldOf(rule.txnType), slip = fieldOf(rule.slip), date = fieldOf(rule.date);
      return (buf, off, report) => {
        if (bad[t.index]) return;
        const txn = readNumber(buf, off, t);
        if (txn !== 20 && txn !== 30) return;
        if (!bad[slip.index] && readNumber(buf, off, slip) === 0) { bad[slip.index] = 1; report(slip, 'E209', `txnType ${txn} needs the original slip number`); }
        else if (!bad[date.index] && isAllZero(buf, off + date.offset, date.length)) { bad[date.index] = 1; report(date, 'E209', `txnType ${txn} needs the original use date`); }
      };
    }
    case 'notAfterToday': {
      const fs = rule.fields.map(fieldOf);
      return (buf, off, report) => {
        if (!ctx.today) return;
        for (const f of fs) {
          if (bad[f.index]) continue;
          const v = readNumber(buf, off, f);
          if (v > ctx.today) { bad[f.index] = 1; report(f, 'E202', `date ${v} is after today ${ctx.today}`); }
        }
      };
    }
    case 'giftAmount': {
      const fv = fieldOf(rule.faceValue), q = fieldOf(rule.quantity), a = fieldOf(rule.amount);
      return (buf, off, report) => {
        if (bad[fv.index] || bad[q.index] || bad[a.index]) return;
        const want = readNumber(buf, off, fv) * readNumber(buf, off, q);
        const got = readNumber(buf, off, a);
        if (want !== got) { bad[a.index] = 1; report(a, 'E208', `amount ${got} is not faceValue x quantity = ${want}`); }
      };
    }
    case 'signFromTxnType': {
      const t = fieldOf(rule.txnType), a = fieldOf(rule.amount);
      const negative = new Set(rule.negative.map(Number));
      return (buf, off, report) => {
        if (bad[t.index] || bad[a.index]) return;
        const amount = readNumber(buf, off, a);
        if (amount < 0 !== negative.has(readNumber(buf, off, t))) { bad[a.index] = 1; report(a, 'E208', `amount sign does not match txnType`); }
      };
    }
    case 'duplicate':
      return () => {}; // needs state across records: see DuplicateIndex in validate.ts
  }
}
