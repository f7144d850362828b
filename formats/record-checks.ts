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

interface CompiledField { f: FieldDef; s: number; codes?: Buffer[] }

/** Compiles the checks of one layout. `bad` marks fields that failed, for the record rules. */
export function compileRecordChecks(layout: Layout, ctx: CheckContext, rules: RuleSpec[] = []) {
  const jis8 = ctx.encoding === 'jis8';
  const fields: CompiledField[] = layout.fields.map((f) => ({ f, s: f.offset, codes: typeof f.check === 'object' ? codeBytes(f, f.check.codes) : undefined }));
  const bad = new Uint8Array(layout.fields.length);
  const fieldOf = (name: string) => layout.byName.get(name)!;
  const ruleChecks = rules.map((r) => compileRule(r, fieldOf, bad, ctx));
  // route codes as numbers when they are all digits of the field's length: no string per record
  const routeField = layout.fields.find((f) => f.check === 'route');
  const routeNumbers = ctx.routeCodes && routeField && [...ctx.routeCodes].every((c) => c.length === routeField.length && /^[0-9]+$/.test(c)) ? new Set([...ctx.routeCodes].map(Number)) : null;

  return function check(buf: Buffer, off: number, skipField: number, report: Report): void {
    for (let k = 0; k < bad.length; k++) bad[k] = 0;
    if (skipField >= 0) bad[skipField] = 1;
    for (let k = 0; k < fields.length; k++) {
      if (bad[k]) continue;
      const { f, s: rel, codes } = fields[k]!;
      const s = off + rel;
      const len = f.length;
      // 1. the bytes fit the type
      switch (f.type) {
        case 'N':
          for (let i = s; i < s + len; i++) {
            const b = buf[i]!;
            if (b < 0x30 || b > 0x39) { bad[k] = 1; report(f, 'E201', `not digits at byte ${i - s + 1} of the field`); break; }
          }
          break;
        case 'C': {
          const problem = checkTextBytes(buf, s, len, jis8);
          if (problem) { bad[k] = 1; report(f, problem[0], problem[1]); }
          break;
        }
        case 'K': {
          const problem = jis8 ? (['E109', 'jis8 has no double-byte characters'] as [ErrorCode, string]) : checkDoubleByteText(buf, s, len);
          if (problem) { bad[k] = 1; report(f, problem[0], problem[1]); }
          break;
        }
        case 'P': case 'Z':
          if (Number.isNaN(readNumber(buf, off, f))) { bad[k] = 1; report(f, 'E201', `not a valid ${f.type === 'P' ? 'packed' : 'zoned'} number`); }
          break;
      }
      if (bad[k] || f.check === undefined) continue;
      // 2. the value fits the field's check
      if (codes) {
        let hit = false;
        for (let c = 0; c < codes.length; c++) if (equalsAt(buf, s, codes[c]!)) { hit = true; break; }
        if (!hit) { bad[k] = 1; report(f, 'E206', `'${buf.toString('latin1', s, s + len).trimEnd()}' is not a known code`); }
        continue;
      }
      switch (f.check) {
        case 'date8': if (!isDate8(buf, s)) { bad[k] = 1; report(f, 'E202', `'${buf.toString('latin1', s, s + 8)}' is not a real date`); } break;
        case 'date8z': if (!isAllZero(buf, s, 8) && !isDate8(buf, s)) { bad[k] = 1; report(f, 'E202', `'${buf.toString('latin1', s, s + 8)}' is not a real date`); } break;
        case 'date6': if (!isDate6(buf, s)) { bad[k] = 1; report(f, 'E202', `'${buf.toString('latin1', s, s + 6)}' is not a real date`); } break;
        case 'yymm': if (!isYymm(buf, s)) { bad[k] = 1; report(f, 'E202', `'${buf.toString('latin1', s, s + 4)}' is not a real YYMM`); } break;
        case 'yymmz': if (!isAllZero(buf, s, 4) && !isYymm(buf, s)) { bad[k] = 1; report(f, 'E202', `'${buf.toString('latin1', s, s + 4)}' is not a real YYMM`); } break;
        case 'time6': if (!isTime6(buf, s)) { bad[k] = 1; report(f, 'E203', `'${buf.toString('latin1', s, s + 6)}' is not a real time`); } break;
        case 'card': case 'cardOrBlank': {
          if (f.check === 'cardOrBlank' && buf[s] === 0x20 && isBlank(buf, s, len)) break;
          const why = checkCardBytes(buf, s, len);
          if (why) { bad[k] = 1; report(f, 'E204', `${maskCardNumber(buf.toString('latin1', s, s + len))}: ${why}`); }
          break;
        }
        case 'route':
          if (ctx.routeCodes && !(routeNumbers ? routeNumbers.has(readDigits(buf, s, len)) : ctx.routeCodes.has(buf.toString('latin1', s, s + len)))) { bad[k] = 1; report(f, 'E301', `code ${buf.toString('latin1', s, s + len)} has no route`); }
          break;
        case 'ownMerchant':
          if (ctx.ownMerchantNos) {
            const m = buf.toString('latin1', s, s + len).trimEnd();
            if (!ctx.ownMerchantNos.has(m)) { bad[k] = 1; report(f, 'E302', `merchant ${m} does not belong to the sender`); }
          }
          break;
        case 'nonzero': if (readNumber(buf, off, f) === 0) { bad[k] = 1; report(f, 'E208', 'amount is zero'); } break;
        case 'fileType': {
          const t = buf.toString('latin1', s, s + 2);
          if (!KNOWN_FILE_TYPES.includes(t)) { bad[k] = 1; report(f, 'E107', `unknown fileType ${t}`); }
          else if (ctx.allowedFileTypes && !ctx.allowedFileTypes.includes(t)) { bad[k] = 1; report(f, 'E107', `fileType ${t} is not allowed here (allowed: ${ctx.allowedFileTypes.join(',')})`); }
          break;
        }
      }
    }
    // 3. rules across fields (data records)
    for (let r = 0; r < ruleChecks.length; r++) ruleChecks[r]!(buf, off, report);
  };
}

function isBlank(buf: Buffer, s: number, len: number): boolean {
  for (let i = s; i < s + len; i++) if (buf[i] !== 0x20) return false;
  return true;
}

type RuleCheck = (buf: Buffer, off: number, report: Report) => void;

function compileRule(rule: RuleSpec, fieldOf: (n: string) => FieldDef, bad: Uint8Array, ctx: CheckContext): RuleCheck {
  const ok = (...fs: FieldDef[]) => fs.every((f) => !bad[f.index]);
  switch (rule.rule) {
    case 'installments': {
      const m = fieldOf(rule.method), c = fieldOf(rule.count);
      return (buf, off, report) => {
        if (!ok(m, c)) return;
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
        if (!ok(e, d) || isAllZero(buf, off + e.offset, 4)) return;
        const exp = (2000 + readDigits(buf, off + e.offset, 2)) * 100 + readDigits(buf, off + e.offset + 2, 2);
        const use = d.length === 8 ? readDigits(buf, off + d.offset, 6) : (2000 + readDigits(buf, off + d.offset, 2)) * 100 + readDigits(buf, off + d.offset + 2, 2);
        if (exp < use) { bad[e.index] = 1; report(e, 'E205', `expiry ${exp} is before the use month ${use}`); }
      };
    }
    case 'original': {
      const t = fieldOf(rule.txnType), slip = fieldOf(rule.slip), date = fieldOf(rule.date);
      return (buf, off, report) => {
        if (!ok(t)) return;
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
        if (!ok(fv, q, a)) return;
        const want = readNumber(buf, off, fv) * readNumber(buf, off, q);
        const got = readNumber(buf, off, a);
        if (want !== got) { bad[a.index] = 1; report(a, 'E208', `amount ${got} is not faceValue x quantity = ${want}`); }
      };
    }
    case 'signFromTxnType': {
      const t = fieldOf(rule.txnType), a = fieldOf(rule.amount);
      const negative = new Set(rule.negative.map(Number));
      return (buf, off, report) => {
        if (!ok(t, a)) return;
        const amount = readNumber(buf, off, a);
        if (amount < 0 !== negative.has(readNumber(buf, off, t))) { bad[a.index] = 1; report(a, 'E208', `amount sign does not match txnType`); }
      };
    }
    case 'duplicate':
      return () => {}; // needs state across records: see DuplicateIndex in validate.ts
  }
}
