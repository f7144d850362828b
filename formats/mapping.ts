// Declarative mappings between record layouts (formats/mappings/FROM--TO.json): a target field
// takes a source field (same name by default), a constant, a date in another format, or a number
// whose sign comes from other fields. Compiled once into byte operations on canonical records.
import { existsSync, readFileSync } from 'node:fs';
import { FieldEncodeError } from './codepages/index.ts';
import { blankField, decodeField, encodeField, readNumber, writePacked } from './field-codec.ts';
import { getLayout, LayoutError, type FieldDef, type Layout } from './layouts.ts';

export type DateChange = 'YYYYMMDD>YYMMDD' | 'YYMMDD>YYYYMMDD';
export type FieldMapping =
  | { from: string; date?: DateChange; negativeWhere?: Record<string, string[]>; abs?: boolean; slice?: [number, number] }
  | { const: string }
  /** the source fields' values (trailing spaces kept) one after the other */
  | { concat: string[] };

export interface MappingSpec {
  from: string;
  to: string;
  describe?: string;
  fields: Record<string, FieldMapping>;
}

type Op = (src: Buffer, sOff: number, dst: Buffer, dOff: number) => void;

export interface CompiledMapping {
  from: Layout;
  to: Layout;
  /** true when the target is a byte copy of the source */
  identity: boolean;
  /** maps one canonical record into another; throws FieldEncodeError naming the target field */
  apply: Op;
}

const cache = new Map<string, CompiledMapping>();

export function loadMappingSpec(from: string, to: string): MappingSpec {
  if (from === to) return { from, to, fields: {} };
  const url = new URL(`./mappings/${from}--${to}.json`, import.meta.url);
  if (!existsSync(url)) throw new LayoutError(`no mapping from ${from} to ${to} (add formats/mappings/${from}--${to}.json)`);
  return JSON.parse(readFileSync(url, 'utf8')) as MappingSpec;
}

export function getMapping(from: string, to: string): CompiledMapping {
  const key = `${from}--${to}`;
  let m = cache.get(key);
  if (!m) {
    m = compileMapping(loadMappingSpec(from, to));
    cache.set(key, m);
  }
  return m;
}

/** A run of bytes copied unchanged from the source record to the target record. */
interface CopyRun { src: number; dst: number; len: number }

/**
 * Compiles a mapping into (1) a template of the target record holding every byte that does not
 * depend on the source (recordType, blanks, constants), (2) byte-copy runs for fields of the same
 * type and length, merged where they are adjacent on both sides, and (3) the few operations that
 * need to look at a value (date formats, signs, conversions), run in field order.
 */
export function compileMapping(spec: MappingSpec): CompiledMapping {
  const from = getLayout(spec.from);
  const to = getLayout(spec.to);
  const where = `mapping ${spec.from} -> ${spec.to}`;
  for (const name of Object.keys(spec.fields)) if (!to.byName.has(name)) throw new LayoutError(`${where}: unknown target field '${name}'`);
  const sameShape = from.recordLength === to.recordLength && from.fields.every((f, i) => to.fields[i] && to.fields[i]!.name === f.name && to.fields[i]!.type === f.type && to.fields[i]!.offset === f.offset && to.fields[i]!.length === f.length);
  if (sameShape && Object.keys(spec.fields).length === 0) {
    const len = from.recordLength;
    return { from, to, identity: true, apply: (s, so, d, dOff) => { d.set(so === 0 && s.length === len ? s : s.subarray(so, so + len), dOff); } };
  }
  const template = Buffer.alloc(to.recordLength);
  const runs: CopyRun[] = [];
  const ops: Op[] = [];
  const addRun = (src: number, dst: number, len: number) => {
    const last = runs[runs.length - 1];
    if (last && last.src + last.len === src && last.dst + last.len === dst) last.len += len;
    else runs.push({ src, dst, len });
  };
  for (const t of to.fields) {
    if (t.name === 'recordType') { template[t.offset] = to.recordType.charCodeAt(0); continue; }
    const m = spec.fields[t.name] ?? (from.byName.has(t.name) && t.name !== 'filler' ? { from: t.name } : undefined);
    if (!m) { blankField(template, 0, t); continue; }
    if ('const' in m) {
      const v = m.const;
      try {
        encodeField(v, template, 0, t);
      } catch (err) {
        if (!(err instanceof FieldEncodeError)) throw err;
        ops.push((_s, _so, d, dOff) => encodeField(v, d, dOff, t)); // fails on every record, as it should
      }
      continue;
    }
    if ('concat' in m) {
      const parts = m.concat.map((n) => from.byName.get(n) ?? fail(`${where}: '${t.name}' concatenates unknown source field '${n}'`));
      ops.push(concatOp(parts, t));
      continue;
    }
    const s = from.byName.get(m.from);
    if (!s) throw new LayoutError(`${where}: '${t.name}' maps from unknown source field '${m.from}'`);
    if (m.slice) {
      const [a, b] = m.slice;
      ops.push((src, so, dst, dOff) => encodeField(decodeField(src, so, s).padEnd(s.length, ' ').slice(a, b).trimEnd(), dst, dOff, t));
      continue;
    }
    if (!m.date && !m.negativeWhere && !m.abs && s.type === t.type && s.length === t.length) { addRun(s.offset, t.offset, t.length); continue; }
    ops.push(fieldOp(s, t, m, from, where));
  }
  const nRuns = runs.length;
  const runSrc = Int32Array.from(runs.map((r) => r.src));
  const runDst = Int32Array.from(runs.map((r) => r.dst));
  const runLen = Int32Array.from(runs.map((r) => r.len));
  return {
    from, to, identity: false,
    apply: (src, so, dst, dOff) => {
      dst.set(template, dOff);
      for (let r = 0; r < nRuns; r++) {
        const a = so + runSrc[r]!;
        const b = dOff + runDst[r]!;
        const n = runLen[r]!;
        if (n > 24) dst.set(src.subarray(a, a + n), b);
        else for (let i = 0; i < n; i++) dst[b + i] = src[a + i]!;
      }
      for (let k = 0; k < ops.length; k++) ops[k]!(src, so, dst, dOff);
    },
  };
}

/** A condition on a source field's value, compared on bytes where that is exact (N fields). */
function valueTest(f: FieldDef, values: string[]): (src: Buffer, so: number) => boolean {
  if (f.type === 'N') {
    const bytes = values.filter((v) => v.length === f.length && /^[\x00-\xff]*$/.test(v)).map((v) => Buffer.from(v, 'latin1'));
    return (src, so) => {
      const s = so + f.offset;
      for (let k = 0; k < bytes.length; k++) {
        const v = bytes[k]!;
        let i = 0;
        while (i < v.length && src[s + i] === v[i]) i++;
        if (i === v.length) return true;
      }
      return false;
    };
  }
  const set = new Set(values);
  return (src, so) => set.has(decodeField(src, so, f));
}

/** The string form of a concat: each part's value (a C part padded back to its length) joined, trailing spaces trimmed, encoded into t. */
function concatByStrings(parts: FieldDef[], t: FieldDef): Op {
  return (src, so, dst, dOff) => encodeField(parts.map((f) => decodeField(src, so, f).padEnd(f.type === 'C' ? f.length : 0, ' ')).join('').trimEnd(), dst, dOff, t);
}

/**
 * A concat of C and N parts into a C target, as bytes (the string form costs ~0.6 µs a record).
 * The parts' bytes are copied one after the other; when every byte is one the target takes as it
 * is (printable ASCII 0x20-0x7e; from a C part also half-width kana 0xa1-0xdf, which an N part
 * decodes as latin1 and the target refuses) and the bytes past the target's length are spaces,
 * that is exactly what the string form writes (its trimEnd can only remove spaces then). Any other
 * record goes through the string form, which writes or refuses it as before.
 */
function concatOp(parts: FieldDef[], t: FieldDef): Op {
  const byStrings = concatByStrings(parts, t);
  if (t.type !== 'C' || !parts.every((f) => f.type === 'C' || f.type === 'N')) return byStrings;
  const partOffsets = Int32Array.from(parts.map((f) => f.offset));
  const partLengths = Int32Array.from(parts.map((f) => f.length));
  const partKana = Uint8Array.from(parts.map((f) => (f.type === 'C' ? 1 : 0)));
  const nParts = parts.length;
  const targetLength = t.length;
  return (src, so, dst, dOff) => {
    const d = dOff + t.offset;
    let n = 0;
    for (let p = 0; p < nParts; p++) {
      const s = so + partOffsets[p]!;
      const e = s + partLengths[p]!;
      const kana = partKana[p] === 1;
      for (let i = s; i < e; i++) {
        const b = src[i]!;
        if (b < 0x20 || (b > 0x7e && (!kana || b < 0xa1 || b > 0xdf))) return byStrings(src, so, dst, dOff);
        if (n < targetLength) dst[d + n] = b;
        else if (b !== 0x20) return byStrings(src, so, dst, dOff);
        n++;
      }
    }
    for (; n < targetLength; n++) dst[d + n] = 0x20;
  };
}

function fail(msg: string): never {
  throw new LayoutError(msg);
}

function fieldOp(s: FieldDef, t: FieldDef, m: Extract<FieldMapping, { from: string }>, from: Layout, where: string): Op {
  if (m.date) {
    const [inLen, outLen] = m.date === 'YYYYMMDD>YYMMDD' ? [8, 6] : [6, 8];
    if (s.length !== inLen || t.length !== outLen) throw new LayoutError(`${where}: ${m.date} needs ${inLen} -> ${outLen} digits`);
    return (src, so, dst, dOff) => {
      const a = so + s.offset;
      const d = dOff + t.offset;
      let zero = true;
      for (let i = 0; i < inLen; i++) if (src[a + i] !== 0x30) { zero = false; break; }
      if (zero) for (let i = 0; i < outLen; i++) dst[d + i] = 0x30;
      else if (inLen === 8) for (let i = 0; i < 6; i++) dst[d + i] = src[a + 2 + i]!;
      else { dst[d] = 0x32; dst[d + 1] = 0x30; for (let i = 0; i < 6; i++) dst[d + 2 + i] = src[a + i]!; }
    };
  }
  if (m.negativeWhere || m.abs) {
    const conds = Object.entries(m.negativeWhere ?? {}).map(([name, values]) => {
      const f = from.byName.get(name);
      if (!f) throw new LayoutError(`${where}: negativeWhere refers to unknown field '${name}'`);
      return valueTest(f, values);
    });
    return (src, so, dst, dOff) => {
      let v = Math.abs(readNumber(src, so, s));
      if (Number.isNaN(v)) throw new FieldEncodeError(t.name, `source ${s.name} is not a number`);
      for (let c = 0; c < conds.length; c++) if (conds[c]!(src, so)) { v = -v; break; }
      if (t.type === 'P') { if (!writePacked(v, dst, dOff + t.offset, t.length)) throw new FieldEncodeError(t.name, `${v} does not fit packed ${t.length}`); }
      else encodeField(t.type === 'N' ? String(Math.abs(v)) : String(v), dst, dOff, t);
    };
  }
  if (s.type === t.type && s.length === t.length) return (src, so, dst, dOff) => { dst.set(src.subarray(so + s.offset, so + s.offset + s.length), dOff + t.offset); };
  return (src, so, dst, dOff) => {
    let v = decodeField(src, so, s);
    if (t.type === 'N' && v.length > t.length) v = v.replace(/^0+(?=\d)/, '').padStart(t.length, '0');
    encodeField(v, dst, dOff, t);
  };
}
