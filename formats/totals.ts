// Trailer totals, computed from data records as families.json declares them: counts and sums,
// optionally filtered by field values, and signed nets (sales minus voids and returns).
import { bytesAt, digitsAt, DIGIT } from './check-codegen.ts';
import { encodeField, readNumber, readPacked, readZoned } from './field-codec.ts';
import type { Family, FieldDef, TotalSpec } from './layouts.ts';

interface Condition { field: FieldDef; values: Buffer[]; negate: boolean }
interface CompiledTotal {
  name: string;
  target: FieldDef;
  kind: 'count' | 'sum' | 'net';
  part?: 'abs' | 'sign';
  source?: FieldDef;
  conditions: Condition[];
  /** for net: records matching these are subtracted */
  negative?: Condition;
}

export interface TotalMismatch { field: string; bytePos: number; code: 'E105' | 'E106'; expected: string; found: string }

function padded(value: string, f: FieldDef): Buffer {
  const v = f.type === 'C' ? value.padEnd(f.length, ' ') : value.padStart(f.length, '0');
  return Buffer.from(v, 'latin1');
}

function conditionsOf(data: Family['data'], where: Record<string, string[]> | undefined, negate: boolean): Condition[] {
  return Object.entries(where ?? {}).map(([name, values]) => {
    const field = data.byName.get(name)!;
    return { field, values: values.map((v) => padded(v, field)), negate };
  });
}

type AddRecord = (acc: Float64Array, buf: Buffer, off: number) => void;
const addByFamily = new WeakMap<Family, AddRecord>();

/**
 * The totals' additions for one data record as generated code: each condition a comparison of
 * bytes, each number read with its offset and length as constants (the interpreted loop over
 * totals, conditions and values was most of the cost of validating a record).
 */
function compiledAdd(family: Family, compiled: CompiledTotal[]): AddRecord {
  const known = addByFamily.get(family);
  if (known) return known;
  const cond = (c: Condition) => `${c.negate ? '!' : ''}(${c.values.map((v) => `(${bytesAt(c.field.offset, v)})`).join(' || ') || 'false'})`;
  const num = (f: FieldDef) => (f.type === 'P' ? `readPacked(buf, off + ${f.offset}, ${f.length})` : f.type === 'Z' ? `readZoned(buf, off + ${f.offset}, ${f.length})` : digitsAt(f.offset, f.length, false));
  const lines = compiled.map((t, i) => {
    const when = t.conditions.length ? `if (${t.conditions.map(cond).join(' && ')}) ` : '';
    if (t.kind === 'count') return `${when}acc[${i}]++;`;
    const add = t.kind === 'net' && t.negative ? `acc[${i}] += ${cond(t.negative)} ? -v : v;` : `acc[${i}] += v;`;
    return `${when}{ const v = ${num(t.source!)}; if (v === v) ${add} }`;
  });
  const fn = new Function('DIGIT', 'readPacked', 'readZoned', `"use strict";\nreturn function addRecord(acc, buf, off) {\n${lines.join('\n')}\n};`)(DIGIT, readPacked, readZoned) as AddRecord;
  addByFamily.set(family, fn);
  return fn;
}

export class TotalsAccumulator {
  private readonly compiled: CompiledTotal[];
  private readonly acc: Float64Array;
  /** add, generated for the family (shared by its accumulators) */
  private readonly addTo: AddRecord;

  constructor(readonly family: Family) {
    const { data, trailer } = family;
    this.compiled = Object.entries(family.totals).flatMap(([name, spec]: [string, TotalSpec]): CompiledTotal[] => {
      const target = trailer.byName.get(name)!;
      if ('given' in spec) return [];
      if ('net' in spec) {
        const [negative] = conditionsOf(data, spec.negativeWhere, false);
        return [{ name, target, kind: 'net', part: spec.part, source: data.byName.get(spec.net)!, conditions: [], negative }];
      }
      const conditions = [...conditionsOf(data, spec.where, false), ...conditionsOf(data, spec.whereNot, true)];
      if ('sum' in spec) return [{ name, target, kind: 'sum', source: data.byName.get(spec.sum)!, conditions }];
      return [{ name, target, kind: 'count', conditions }];
    });
    this.acc = new Float64Array(this.compiled.length);
    this.addTo = compiledAdd(family, this.compiled);
  }

  reset(): void {
    this.acc.fill(0);
  }

  /** Adds (sign 1) or subtracts (sign -1) another accumulator of the same family. */
  merge(other: TotalsAccumulator, sign = 1): void {
    for (let i = 0; i < this.acc.length; i++) this.acc[i] += sign * other.acc[i]!;
  }

  /** Adds one canonical data record. Unreadable numbers count as 0 (they are E201 already). */
  add(buf: Buffer, off: number): void {
    this.addTo(this.acc, buf, off);
  }

  /** Computed totals by trailer field name; nets split into their absolute value and sign. */
  values(): Record<string, number | string> {
    const out: Record<string, number | string> = {};
    this.compiled.forEach((t, i) => {
      const v = this.acc[i]!;
      out[t.name] = t.kind === 'net' ? (t.part === 'sign' ? (v < 0 ? '-' : '+') : Math.abs(v)) : v;
    });
    return out;
  }

  private text(t: CompiledTotal, v: number | string): string {
    return typeof v === 'string' ? v : t.target.type === 'N' ? String(v) : String(v);
  }

  /** Writes the computed totals into a canonical trailer record. */
  writeInto(trailer: Buffer, off = 0): void {
    const vals = this.values();
    for (const t of this.compiled) encodeField(this.text(t, vals[t.name]!), trailer, off, t.target);
  }

  /** Compares a canonical trailer record with the computed totals. */
  compare(trailer: Buffer, off: number): TotalMismatch[] {
    const vals = this.values();
    const out: TotalMismatch[] = [];
    for (const t of this.compiled) {
      const want = vals[t.name]!;
      const code = t.kind === 'count' ? 'E105' : 'E106';
      if (typeof want === 'string') {
        const got = String.fromCharCode(trailer[off + t.target.offset]!);
        if (got !== want) out.push({ field: t.name, bytePos: t.target.offset + 1, code, expected: want, found: got });
        continue;
      }
      const got = readNumber(trailer, off, t.target);
      if (got !== want) out.push({ field: t.name, bytePos: t.target.offset + 1, code, expected: String(want), found: Number.isNaN(got) ? 'not a number' : String(got) });
    }
    return out;
  }
}
