// The fast path of one layout's record checks, generated as JavaScript source (new Function) once
// per layout: a yes/no answer, "this record passes every type check, value check and record rule",
// with each field's offset, length and code table written into the code as constants. No call per
// field, no loop over check closures (a call site that sees a dozen closures cannot be inlined),
// no string. A record it says no to is checked again by the interpreted checks of record-checks.ts,
// which report every error in order; so the generated code decides only whether that is needed and
// never what is reported. It must never say yes to a record the interpreted checks would report
// on (test/formats/check-codegen.test.ts compares the two over random and mutated records).
// Only numbers from the layout files are written into the code; sets and tables (route codes,
// merchant numbers) are passed in as values, never written in as text.
import { checkCardBytes } from './card.ts';
import { isRealDate } from './calendar.ts';
import { isHalfWidthKanaByte, isSjisLeadByte, isSjisPair } from './codepages/index.ts';
import { readPacked, readZoned } from './field-codec.ts';
import type { FieldDef, Layout, RuleSpec } from './layouts.ts';

/** What record-checks.ts decided about the layout's checks, for the generator. */
export interface FastCheckPlan {
  layout: Layout;
  jis8: boolean;
  /** fields whose value check passes only on bytes that fit their type: not scanned */
  implied: readonly boolean[];
  /** fields with a value check (the check is `field.check`), in field order */
  valueChecked: readonly boolean[];
  /** the route check's codes: numbers when they are all digits of the field's length */
  routeNumbers: Set<number> | null;
  routeCodes?: Set<string>;
  ownMerchantNos?: Set<string>;
  /** rules to evaluate (duplicate and notAfterToday without today already left out) */
  rules: readonly RuleSpec[];
  today: number;
  /** value checks the generator does not write out: called with a report that notes a failure */
  fallback: (f: FieldDef) => ((buf: Buffer, off: number, report: () => void) => void) | null;
}

export type FastCheck = (buf: Buffer, off: number) => boolean;

// Byte classes of the scan: 1 a digit (N fields), 2 a character allowed in a C field (ASCII
// printable or half-width katakana), the same in sjis and jis8.
const BYTE_CLASS = new Uint8Array(256);
for (let b = 0x30; b <= 0x39; b++) BYTE_CLASS[b] |= 1;
for (let b = 0x20; b < 0x7f; b++) BYTE_CLASS[b] |= 2;
for (let b = 0; b < 256; b++) if (isHalfWidthKanaByte(b)) BYTE_CLASS[b] |= 2;

/** Digit values by byte, NaN for a byte that is not a digit: Horner's rule over it is readDigits. */
export const DIGIT = new Float64Array(256).fill(NaN);
for (let b = 0x30; b <= 0x39; b++) DIGIT[b] = b - 0x30;

// The same classes four bytes at a time (0x80 in each byte of the class): Hacker's Delight
// "has a byte between m and n", exact per byte for 0 <= m <= 127, n <= 128.
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
const between = (m: number, n: number) => [(0x01010101 * (127 + n)) | 0, (0x01010101 * (127 - m)) | 0] as const;
const [DIG1, DIG2] = between(0x2f, 0x3a); // 0x30-0x39
const [PRN1, PRN2] = between(0x1f, 0x7f); // 0x20-0x7e
const [KAN1, KAN2] = between(0x20, 0x60); // 0xa1-0xdf, tested on the byte with its high bit flipped

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;

/** Generated source and the values it refers to by name. */
class Source {
  readonly lines: string[] = [];
  readonly env: Record<string, unknown> = {};
  private n = 0;
  /** A value the code refers to: returns the name it has in the code. */
  value(prefix: string, v: unknown): string {
    const name = `${prefix}${this.n++}`;
    this.env[name] = v;
    return name;
  }
  add(line: string): void {
    this.lines.push(line);
  }
}

export function compileFastCheck(plan: FastCheckPlan): FastCheck {
  const { layout } = plan;
  const L = layout.recordLength;
  const src = new Source();
  // bytes the scan checks: 1 digit, 2 text
  const need = new Uint8Array(L);
  for (const f of layout.fields) if ((f.type === 'N' || f.type === 'C') && !plan.implied[f.index]) need.fill(f.type === 'N' ? 1 : 2, f.offset, f.offset + f.length);
  const byBytes = (buf: Buffer, off: number): boolean => {
    let acc = 0;
    for (let i = 0; i < L; i++) { const n = need[i]!; acc |= (BYTE_CLASS[buf[off + i]!]! & n) ^ n; }
    return acc === 0;
  };
  src.env.byBytes = byBytes;
  src.env.DIGIT = DIGIT;
  writeScan(src, need);
  for (const f of layout.fields) writeTypeCheck(src, plan, f);
  for (const f of layout.fields) if (plan.valueChecked[f.index]) writeValueCheck(src, plan, f);
  for (const r of plan.rules) writeRule(src, plan, r);
  src.add('return true;');
  const names = Object.keys(src.env);
  const body = `"use strict";\nconst { ${names.join(', ')} } = E;\nlet ab = null, W = new Int32Array(0);\nreturn function fastCheck(buf, off) {\n${src.lines.join('\n')}\n};`;
  return new Function('E', body)(src.env) as FastCheck;
}

/** The N and C bytes, a 32-bit word at a time, one block of code per alignment of the record. */
function writeScan(src: Source, need: Uint8Array): void {
  const L = need.length;
  if (!need.some((n) => n !== 0)) return;
  if (!LITTLE_ENDIAN) { src.add('if (!byBytes(buf, off)) return false;'); return; }
  const maxWords = (3 + L + 3) >> 2;
  src.add('const bab = buf.buffer;');
  src.add('if (bab !== ab) { ab = bab; W = new Int32Array(bab, 0, bab.byteLength >> 2); }');
  src.add('const p = buf.byteOffset + off;');
  src.add('const w0 = p >> 2;');
  src.add(`if (w0 + ${maxWords} > W.length) { if (!byBytes(buf, off)) return false; }`);
  src.add('else {');
  src.add('let acc = 0, x = 0, t = 0, y = 0, u = 0;');
  src.add('switch (p & 3) {');
  for (let a = 0; a < 4; a++) {
    src.add(`case ${a}:`);
    const words = (a + L + 3) >> 2;
    const masks = new Int32Array(words * 2);
    for (let i = 0; i < L; i++) {
      if (need[i] === 0) continue;
      const pos = a + i;
      masks[(pos >> 2) * 2 + (need[i] === 1 ? 0 : 1)] |= 0x80 << ((pos & 3) * 8);
    }
    for (let w = 0; w < words; w++) {
      const nd = masks[2 * w]!, nt = masks[2 * w + 1]!;
      if (nd === 0 && nt === 0) continue;
      src.add(`x = W[w0 + ${w}]; t = x & 0x7f7f7f7f;`);
      const parts: string[] = [];
      if (nd !== 0) parts.push(`((${DIG1} - t) & ~x & (t + ${DIG2}) & ${hex(nd)})`);
      if (nt !== 0) parts.push(`((${PRN1} - t) & ~x & (t + ${PRN2}) & ${hex(nt)})`);
      if (nt !== 0) {
        // half-width katakana only where a text byte has its high bit set
        src.add(`u = ${parts.join(' | ')};`);
        src.add(`if ((x & ${hex(nt)}) !== 0) { y = x ^ 0x80808080; t = y & 0x7f7f7f7f; u |= (${KAN1} - t) & ~y & (t + ${KAN2}) & ${hex(nt)}; }`);
        src.add(`acc |= u ^ ${hex(nd | nt)};`);
      } else src.add(`acc |= ${parts[0]} ^ ${hex(nd)};`);
    }
    src.add('break;');
  }
  src.add('}');
  src.add('if (acc !== 0) return false;');
  src.add('}');
}

const at = (i: number) => `buf[off + ${i}]`;

/**
 * The value of the digits at buf[off + o .. off + o + n) as an expression: readDigits written out,
 * NaN when a byte is not a digit (it uses the DIGIT table), or, when `digits` says they are known
 * to be digits, plain integer arithmetic.
 */
export function digitsAt(o: number, n: number, digits: boolean): string {
  let e = digits ? `(${at(o)} - 48)` : `DIGIT[${at(o)}]`;
  for (let i = 1; i < n; i++) e = `(${e} * 10 + ${digits ? `(${at(o + i)} - 48)` : `DIGIT[${at(o + i)}]`})`;
  return e;
}

/** An expression: the bytes at buf[off + o ..) are those of `bytes`. */
export function bytesAt(o: number, bytes: Uint8Array): string {
  return bytes.length === 0 ? 'true' : Array.from(bytes, (b, i) => `${at(o + i)} === ${b}`).join(' && ');
}

function allZeroAt(o: number, n: number): string {
  return Array.from({ length: n }, (_, i) => `${at(o + i)} === 48`).join(' && ');
}

/** readNumber of a field whose bytes passed their type check. */
function numberOf(src: Source, f: FieldDef): string {
  if (f.type === 'P') { src.env.readPacked = readPacked; return `readPacked(buf, off + ${f.offset}, ${f.length})`; }
  if (f.type === 'Z') { src.env.readZoned = readZoned; return `readZoned(buf, off + ${f.offset}, ${f.length})`; }
  return digitsAt(f.offset, f.length, f.type === 'N');
}

function writeTypeCheck(src: Source, plan: FastCheckPlan, f: FieldDef): void {
  const s = `off + ${f.offset}`;
  switch (f.type) {
    case 'N': case 'C': return; // the scan, or the value check (implied)
    case 'K':
      if (plan.jis8) { src.add('return false;'); return; } // jis8 has no double-byte characters
      src.env.isSjisLeadByte = isSjisLeadByte;
      src.env.isSjisPair = isSjisPair;
      src.add(`for (let i = ${s}, e = ${s} + ${f.length}; i < e; i += 2) { const b = buf[i]; if (!isSjisLeadByte(b) || !isSjisPair(b, buf[i + 1])) return false; }`);
      return;
    case 'P': case 'Z': {
      const v = numberOf(src, f);
      src.add(`{ const v = ${v}; if (v !== v) return false; }`);
    }
  }
}

function writeValueCheck(src: Source, plan: FastCheckPlan, f: FieldDef): void {
  const o = f.offset;
  const len = f.length;
  const digits = f.type === 'N' && !plan.implied[f.index]; // scanned: known to be digits
  const check = f.check!;
  const fallback = () => {
    const fn = src.value('V', plan.fallback(f));
    src.env.FLAG = FLAG;
    src.env.note = note;
    src.add(`FLAG.failed = false; ${fn}(buf, off, note); if (FLAG.failed) return false;`);
  };
  if (typeof check === 'object') {
    const codes = check.codes.map((c) => Buffer.from(f.type === 'C' ? c.padEnd(len, ' ') : c.padStart(len, '0'), 'latin1'));
    if (f.type === 'N' && len <= 4 && check.codes.every((c) => c.length <= len && /^[0-9]+$/.test(c))) {
      const known = new Uint8Array(10 ** len);
      for (const c of codes) known[Number(c.toString('latin1'))] = 1;
      src.add(`if (${src.value('K', known)}[${digitsAt(o, len, digits)}] !== 1) return false;`);
      return;
    }
    // a short list of byte strings: compared byte by byte
    const alternatives = codes.map((c) => bytesAt(o, c));
    src.add(`if (!(${alternatives.map((a) => `(${a})`).join(' || ')})) return false;`);
    return;
  }
  switch (check) {
    case 'date8': case 'date8z': {
      src.env.isRealDate = isRealDate;
      const y = digitsAt(o, 4, digits), m = digitsAt(o + 4, 2, digits), d = digitsAt(o + 6, 2, digits);
      src.add(`if (${check === 'date8z' ? `!(${allZeroAt(o, 8)}) && ` : ''}!isRealDate(${y}, ${m}, ${d})) return false;`);
      return;
    }
    case 'date6':
      src.env.isRealDate = isRealDate;
      src.add(`if (!isRealDate(2000 + ${digitsAt(o, 2, digits)}, ${digitsAt(o + 2, 2, digits)}, ${digitsAt(o + 4, 2, digits)})) return false;`);
      return;
    case 'yymm': case 'yymmz':
      src.add(`{ const m = ${digitsAt(o + 2, 2, digits)}; if (${check === 'yymmz' ? `!(${allZeroAt(o, 4)}) && ` : ''}!(m >= 1 && m <= 12)) return false; }`);
      return;
    case 'time6':
      src.add(`if (!(${digitsAt(o, 2, digits)} < 24 && ${digitsAt(o + 2, 2, digits)} < 60 && ${digitsAt(o + 4, 2, digits)} < 60)) return false;`);
      return;
    case 'card': case 'cardOrBlank': {
      src.env.checkCardBytes = checkCardBytes;
      const blank = check === 'cardOrBlank' ? `!(${Array.from({ length: len }, (_, i) => `${at(o + i)} === 32`).join(' && ')}) && ` : '';
      src.add(`if (${blank}checkCardBytes(buf, off + ${o}, ${len}) !== '') return false;`);
      return;
    }
    case 'route': {
      const numbers = plan.routeNumbers;
      if (numbers && len <= 6) {
        const table = new Uint8Array(10 ** len);
        for (const n of numbers) if (n < table.length) table[n] = 1;
        src.add(`if (${src.value('R', table)}[${digitsAt(o, len, digits)}] !== 1) return false;`);
      } else if (numbers) src.add(`if (!${src.value('R', numbers)}.has(${digitsAt(o, len, digits)})) return false;`);
      else src.add(`if (!${src.value('R', plan.routeCodes)}.has(buf.toString('latin1', off + ${o}, off + ${o + len}))) return false;`);
      return;
    }
    case 'ownMerchant': {
      src.add(`if (!${src.value('M', ownMerchantTest(plan.ownMerchantNos!, len))}(buf, off + ${o})) return false;`);
      return;
    }
    case 'nonzero':
      src.add(`if (${numberOf(src, f)} === 0) return false;`);
      return;
    default:
      fallback();
  }
}

const FLAG = { failed: false };
const note = () => { FLAG.failed = true; };

/**
 * The sender's own merchant numbers, tested on bytes: a file usually holds one merchant or a few,
 * so the bytes of the last number found are kept and a record with the same bytes needs no string.
 */
function ownMerchantTest(own: Set<string>, len: number): (buf: Buffer, s: number) => boolean {
  const last = Buffer.alloc(len);
  let haveLast = false;
  return (buf, s) => {
    if (haveLast) {
      let i = 0;
      while (i < len && buf[s + i] === last[i]) i++;
      if (i === len) return true;
    }
    if (!own.has(buf.toString('latin1', s, s + len).trimEnd())) return false;
    buf.copy(last, 0, s, s + len);
    haveLast = true;
    return true;
  };
}

/** A record rule, on a record whose fields all passed (so no field is marked bad). */
function writeRule(src: Source, plan: FastCheckPlan, rule: RuleSpec): void {
  const field = (name: string) => plan.layout.byName.get(name)!;
  const num = (name: string) => numberOf(src, field(name));
  switch (rule.rule) {
    case 'installments':
      src.add(`{ const m = ${num(rule.method)}, c = ${num(rule.count)}; if ((m === 61 || (m >= 31 && m <= 34)) ? c < 2 || c > 99 : c !== 0) return false; }`);
      return;
    case 'expiry': {
      const e = field(rule.expiry), d = field(rule.date);
      const ed = e.type === 'N', dd = d.type === 'N';
      const use = d.length === 8 ? digitsAt(d.offset, 6, dd) : `(2000 + ${digitsAt(d.offset, 2, dd)}) * 100 + ${digitsAt(d.offset + 2, 2, dd)}`;
      src.add(`if (!(${allZeroAt(e.offset, 4)}) && (2000 + ${digitsAt(e.offset, 2, ed)}) * 100 + ${digitsAt(e.offset + 2, 2, ed)} < ${use}) return false;`);
      return;
    }
    case 'original': {
      const date = field(rule.date);
      src.add(`{ const t = ${num(rule.txnType)}; if ((t === 20 || t === 30) && (${num(rule.slip)} === 0 || (${allZeroAt(date.offset, date.length)}))) return false; }`);
      return;
    }
    case 'notAfterToday':
      for (const name of rule.fields) src.add(`if (${num(name)} > ${plan.today}) return false;`);
      return;
    case 'giftAmount':
      src.add(`if (${num(rule.faceValue)} * ${num(rule.quantity)} !== ${num(rule.amount)}) return false;`);
      return;
    case 'signFromTxnType': {
      const negative = src.value('S', new Set(rule.negative.map(Number)));
      src.add(`if ((${num(rule.amount)} < 0) !== ${negative}.has(${num(rule.txnType)})) return false;`);
      return;
    }
    case 'duplicate':
      return; // across records: validate.ts
  }
}
