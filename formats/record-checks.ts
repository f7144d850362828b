// Field and record checks of one layout on canonical bytes (see codepages/index.ts), compiled once
// per layout so that the per-record work is generated code with no strings unless an error is found.
import { maskCardNumber, checkCardBytes } from './card.ts';
import { isAllZero, isDate6, isDate8, isTime6, isYymm } from './calendar.ts';
import { isHalfWidthKanaByte, isSjisLeadByte, isSjisPair } from './codepages/index.ts';
import { compileFastCheck, type FastCheck } from './check-codegen.ts';
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

/**
 * Compiles the checks of one layout into check(buf, off, skipField, report). A record is first
 * given to the generated fast path (check-codegen.ts), which only answers whether it passes every
 * check; one that does not is checked again here, field by field, reporting every error in order.
 * `bad` marks the fields that failed, for the record rules.
 */
export function compileRecordChecks(layout: Layout, ctx: CheckContext, rules: RuleSpec[] = []): RecordCheck {
  return compileRecordChecker(layout, ctx, rules).check;
}

export type RecordCheck = (buf: Buffer, off: number, skipField: number, report: Report) => void;

export interface RecordChecker {
  /** true when the record passes every check (so check() would report nothing); generated code */
  passes: FastCheck;
  /** reports every error of the record, in field order, then the rules' */
  check: RecordCheck;
  /** check without the generated fast path in front (what the fast path must agree with) */
  interpreted: RecordCheck;
}

/**
 * The checks of one layout: `passes` for a hot loop that calls the generated code directly (a call
 * site that sees one function), `check` for everything else.
 */
export function compileRecordChecker(layout: Layout, ctx: CheckContext, rules: RuleSpec[] = []): RecordChecker {
  const jis8 = ctx.encoding === 'jis8';
  const bad = new Uint8Array(layout.fields.length);
  const fieldOf = (name: string) => layout.byName.get(name)!;
  // rules with nothing to check here (duplicate: across records, see validate.ts; notAfterToday without today) are left out
  const activeRules = rules.filter((r) => r.rule !== 'duplicate' && !(r.rule === 'notAfterToday' && !ctx.today));
  const ruleChecks = activeRules.map((r) => compileRule(r, fieldOf, bad, ctx));
  // route codes as numbers when they are all digits of the field's length: no string per record
  const routeField = layout.fields.find((f) => f.check === 'route');
  const routeNumbers = ctx.routeCodes && routeField && [...ctx.routeCodes].every((c) => c.length === routeField.length && /^[0-9]+$/.test(c)) ? new Set([...ctx.routeCodes].map(Number)) : null;
  const typeChecks = layout.fields.map((f) => typeCheckOf(f, jis8, bad));
  const valueChecks = layout.fields.map((f) => valueCheckOf(f, ctx, routeNumbers, bad));
  const nFields = layout.fields.length;
  const fast = compileFastCheck({
    layout, jis8, routeNumbers, routeCodes: ctx.routeCodes, ownMerchantNos: ctx.ownMerchantNos, rules: activeRules, today: ctx.today,
    // fields whose value check passes only on bytes that fit the type are not scanned
    implied: layout.fields.map((f) => valueChecks[f.index] !== null && impliesType(f, ctx, routeNumbers)),
    valueChecked: layout.fields.map((f) => valueChecks[f.index] !== null),
    fallback: (f) => valueChecks[f.index]!,
  });
  const nRules = ruleChecks.length;

  const interpreted: RecordCheck = (buf, off, skipField, report) => {
    bad.fill(0);
    if (skipField >= 0) bad[skipField] = 1;
    for (let k = 0; k < nFields; k++) {
      if (bad[k]) continue;
      if (typeChecks[k]!(buf, off, report)) continue;
      const v = valueChecks[k];
      if (v) v(buf, off, report);
    }
    for (let r = 0; r < nRules; r++) ruleChecks[r]!(buf, off, report);
  };
  const check: RecordCheck = (buf, off, skipField, report) => {
    if (skipField < 0 && fast(buf, off)) return;
    interpreted(buf, off, skipField, report);
  };
  return { passes: fast, check, interpreted };
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
