// Declarative mappings between record layouts (formats/mappings/FROM--TO.json): a target field
// takes a source field (same name by default), a constant, a date in another format, or a number
// whose sign comes from other fields. Compiled once into byte operations on canonical records.
import { existsSync, readFileSync } from 'node:fs';
import { FieldEncodeError } from './codepages/index.ts';
import { blankField, decodeField, encodeField, readNumber, writePacked } from './field-codec.ts';
import { getLayout, LayoutError, type FieldDef, type Layout } from './layouts.ts';

export type DateChange = 'YYYYMMDD>YYMMDD' | 'YYMMDD>YYYYMMDD';
export type FieldMapping =
  | { from: string; date?: DateChange; negativeWhere?: Record<string, string[]>; abs?: boolean }
  | { const: string };

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

export function compileMapping(spec: MappingSpec): CompiledMapping {
  const from = getLayout(spec.from);
  const to = getLayout(spec.to);
  const where = `mapping ${spec.from} -> ${spec.to}`;
  for (const name of Object.keys(spec.fields)) if (!to.byName.has(name)) throw new LayoutError(`${where}: unknown target field '${name}'`);
  const sameShape = from.recordLength === to.recordLength && from.fields.every((f, i) => to.fields[i] && to.fields[i]!.name === f.name && to.fields[i]!.type === f.type && to.fields[i]!.offset === f.offset && to.fields[i]!.length === f.length);
  if (sameShape && Object.keys(spec.fields).length === 0) {
    return { from, to, identity: true, apply: (s, so, d, dOff) => { s.copy(d, dOff, so, so + from.recordLength); } };
  }
  const ops: Op[] = [];
  for (const t of to.fields) {
    if (t.name === 'recordType') { const b = to.recordType.charCodeAt(0); ops.push((_s, _so, d, dOff) => { d[dOff] = b; }); continue; }
    const m = spec.fields[t.name] ?? (from.byName.has(t.name) && t.name !== 'filler' ? { from: t.name } : undefined);
    if (!m) { ops.push((_s, _so, d, dOff) => blankField(d, dOff, t)); continue; }
    if ('const' in m) { const v = m.const; ops.push((_s, _so, d, dOff) => encodeField(v, d, dOff, t)); continue; }
    const s = from.byName.get(m.from);
    if (!s) throw new LayoutError(`${where}: '${t.name}' maps from unknown source field '${m.from}'`);
    ops.push(fieldOp(s, t, m, from, where));
  }
  return { from, to, identity: false, apply: (src, so, dst, dOff) => { for (const op of ops) op(src, so, dst, dOff); } };
}

function fieldOp(s: FieldDef, t: FieldDef, m: Extract<FieldMapping, { from: string }>, from: Layout, where: string): Op {
  if (m.date) {
    const [inLen, outLen] = m.date === 'YYYYMMDD>YYMMDD' ? [8, 6] : [6, 8];
    if (s.length !== inLen || t.length !== outLen) throw new LayoutError(`${where}: ${m.date} needs ${inLen} -> ${outLen} digits`);
    return (src, so, dst, dOff) => {
      const a = so + s.offset;
      const zero = src.toString('latin1', a, a + inLen) === '0'.repeat(inLen);
      if (zero) dst.fill(0x30, dOff + t.offset, dOff + t.offset + outLen);
      else if (inLen === 8) src.copy(dst, dOff + t.offset, a + 2, a + 8);
      else { dst[dOff + t.offset] = 0x32; dst[dOff + t.offset + 1] = 0x30; src.copy(dst, dOff + t.offset + 2, a, a + 6); }
    };
  }
  if (m.negativeWhere || m.abs) {
    const conds = Object.entries(m.negativeWhere ?? {}).map(([name, values]) => {
      const f = from.byName.get(name);
      if (!f) throw new LayoutError(`${where}: negativeWhere refers to unknown field '${name}'`);
      return { f, values: new Set(values) };
    });
    return (src, so, dst, dOff) => {
      let v = Math.abs(readNumber(src, so, s));
      if (Number.isNaN(v)) throw new FieldEncodeError(t.name, `source ${s.name} is not a number`);
      if (conds.some((c) => c.values.has(decodeField(src, so, c.f)))) v = -v;
      if (t.type === 'P') { if (!writePacked(v, dst, dOff + t.offset, t.length)) throw new FieldEncodeError(t.name, `${v} does not fit packed ${t.length}`); }
      else encodeField(t.type === 'N' ? String(Math.abs(v)) : String(v), dst, dOff, t);
    };
  }
  if (s.type === t.type && s.length === t.length) return (src, so, dst, dOff) => { src.copy(dst, dOff + t.offset, so + s.offset, so + s.offset + s.length); };
  return (src, so, dst, dOff) => {
    let v = decodeField(src, so, s);
    if (t.type === 'N' && v.length > t.length) v = v.replace(/^0+(?=\d)/, '').padStart(t.length, '0');
    encodeField(v, dst, dOff, t);
  };
}
