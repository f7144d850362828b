// Layouts are data (formats/layouts/*.json). This module loads them and refuses a layout that
// does not add up, so a bad layout file fails loudly at start-up, not as a shifted field at run time.
import { readFileSync, readdirSync } from 'node:fs';

export type FieldType = 'N' | 'C' | 'K' | 'P' | 'Z';
export type Encoding = 'sjis' | 'jis8' | 'ebcdic-kana' | 'ebcdic';
export type Framing = 'none' | 'crlf' | 'lf';
export type FieldCheck =
  | 'date8' | 'date8z' | 'date6' | 'yymm' | 'yymmz' | 'time6' | 'card' | 'cardOrBlank'
  | 'route' | 'ownMerchant' | 'nonzero' | 'fileType' | { codes: string[] };

export interface FieldDef {
  name: string;
  type: FieldType;
  length: number;
  offset: number;
  check?: FieldCheck;
  /** index in layout.fields */
  index: number;
}

export interface Layout {
  name: string;
  describe: string;
  recordLength: number;
  recordType: string;
  encoding: Encoding;
  framing: Framing;
  fields: FieldDef[];
  byName: Map<string, FieldDef>;
}

export type TotalSpec =
  | { count: true; where?: Record<string, string[]>; whereNot?: Record<string, string[]> }
  | { sum: string; where?: Record<string, string[]>; whereNot?: Record<string, string[]> }
  | { net: string; negativeWhere: Record<string, string[]>; part: 'abs' | 'sign' }
  | { given: true };

export type RuleSpec =
  | { rule: 'installments'; method: string; count: string }
  | { rule: 'expiry'; expiry: string; date: string }
  | { rule: 'original'; txnType: string; slip: string; date: string }
  | { rule: 'duplicate'; fields: string[] }
  | { rule: 'notAfterToday'; fields: string[] }
  | { rule: 'giftAmount'; faceValue: string; quantity: string; amount: string }
  | { rule: 'signFromTxnType'; txnType: string; amount: string; negative: string[] };

/** A family: the four record layouts of one kind of file, plus its trailer totals and record rules. */
export interface Family {
  name: string;
  describe: string;
  variantOf?: string;
  fileTypes: string[];
  recordLength: number;
  encoding: Encoding;
  framing: Framing;
  header: Layout;
  data: Layout;
  trailer: Layout;
  end: Layout;
  routeKey?: string;
  totals: Record<string, TotalSpec>;
  rules: RuleSpec[];
}

export class LayoutError extends Error {}

export const FIELD_TYPES: readonly FieldType[] = ['N', 'C', 'K', 'P', 'Z'];
export const ENCODINGS: readonly Encoding[] = ['sjis', 'jis8', 'ebcdic-kana', 'ebcdic'];
export const FRAMINGS: readonly Framing[] = ['none', 'crlf', 'lf'];
const NAMED_CHECKS = new Set(['date8', 'date8z', 'date6', 'yymm', 'yymmz', 'time6', 'card', 'cardOrBlank', 'route', 'ownMerchant', 'nonzero', 'fileType']);
const RULE_FIELDS: Record<string, string[]> = {
  installments: ['method', 'count'], expiry: ['expiry', 'date'], original: ['txnType', 'slip', 'date'],
  giftAmount: ['faceValue', 'quantity', 'amount'], signFromTxnType: ['txnType', 'amount'],
};

/** Checks one raw layout object and returns it with its field index. Throws LayoutError. */
export function checkLayout(raw: unknown, source = 'layout'): Layout {
  const l = raw as Omit<Layout, 'byName' | 'fields'> & { fields: Omit<FieldDef, 'index'>[] };
  const fail = (msg: string): never => { throw new LayoutError(`${source}: ${msg}`); };
  if (!l || typeof l.name !== 'string') fail('missing name');
  if (!Number.isInteger(l.recordLength) || l.recordLength <= 0) fail('recordLength must be a positive integer');
  if (!ENCODINGS.includes(l.encoding)) fail(`unknown encoding '${l.encoding}'`);
  if (!FRAMINGS.includes(l.framing)) fail(`unknown framing '${l.framing}'`);
  if (!Array.isArray(l.fields) || l.fields.length === 0) fail('no fields');
  const byName = new Map<string, FieldDef>();
  let next = 0;
  const fields = l.fields.map((f, index): FieldDef => {
    const where = `field '${f.name}'`;
    if (!FIELD_TYPES.includes(f.type)) fail(`${where}: unknown type '${f.type}'`);
    if (!Number.isInteger(f.length) || f.length <= 0) fail(`${where}: bad length`);
    if (f.offset !== next) fail(`${where}: offset ${f.offset} but the previous field ends at ${next} (${f.offset < next ? 'overlap' : 'gap'})`);
    if (f.type === 'K' && f.length % 2 !== 0) fail(`${where}: K fields hold 2-byte characters; odd length`);
    if (f.type === 'P' && f.length > 10) fail(`${where}: packed fields longer than 10 bytes exceed safe integers`);
    if (f.check !== undefined && !(typeof f.check === 'string' ? NAMED_CHECKS.has(f.check) : Array.isArray(f.check.codes))) fail(`${where}: unknown check ${JSON.stringify(f.check)}`);
    if (byName.has(f.name)) fail(`${where}: duplicate name`);
    next = f.offset + f.length;
    const def = { ...f, index };
    byName.set(f.name, def);
    return def;
  });
  if (next !== l.recordLength) fail(`field lengths add up to ${next}, record length is ${l.recordLength}`);
  const rt = fields[0]!;
  if (rt.name !== 'recordType' || rt.type !== 'N' || rt.length !== 1) fail("first field must be recordType N 1");
  if (!/^[0-9]$/.test(l.recordType)) fail('recordType must be one digit');
  return { name: l.name, describe: l.describe ?? '', recordLength: l.recordLength, recordType: l.recordType, encoding: l.encoding, framing: l.framing, fields, byName };
}

/** The header and end record are defined at 200 bytes; 120-byte files cut the trailing filler. */
export function cutLayout(layout: Layout, recordLength: number): Layout {
  if (recordLength === layout.recordLength) return layout;
  const last = layout.fields[layout.fields.length - 1]!;
  if (last.name !== 'filler' || recordLength <= last.offset || recordLength > layout.recordLength) {
    throw new LayoutError(`${layout.name}: cannot cut to ${recordLength} bytes (only the trailing filler may be cut)`);
  }
  const fields = [...layout.fields.slice(0, -1), { ...last, length: recordLength - last.offset }];
  return checkLayout({ ...layout, recordLength, fields }, `${layout.name}@${recordLength}`);
}

const layoutDir = new URL('./layouts/', import.meta.url);
let layouts: Map<string, Layout> | null = null;
let families: Map<string, Family> | null = null;

function loadAll(): void {
  const found = new Map<string, Layout>();
  for (const file of readdirSync(layoutDir).filter((f) => f.endsWith('.json') && f !== 'families.json').sort()) {
    const layout = checkLayout(JSON.parse(readFileSync(new URL(file, layoutDir), 'utf8')), `formats/layouts/${file}`);
    if (`${layout.name}.json` !== file) throw new LayoutError(`formats/layouts/${file}: name '${layout.name}' does not match the file name`);
    found.set(layout.name, layout);
  }
  const rawFamilies = JSON.parse(readFileSync(new URL('families.json', layoutDir), 'utf8')) as Record<string, Omit<Family, 'name' | 'header' | 'data' | 'trailer' | 'end' | 'recordLength' | 'encoding' | 'framing'> & { data: string; trailer: string }>;
  const fams = new Map<string, Family>();
  for (const [name, f] of Object.entries(rawFamilies)) {
    const where = `formats/layouts/families.json: ${name}`;
    const data = found.get(f.data);
    const trailer = found.get(f.trailer);
    if (!data || !trailer) throw new LayoutError(`${where}: unknown layout ${data ? f.trailer : f.data}`);
    if (data.recordLength !== trailer.recordLength) throw new LayoutError(`${where}: data and trailer lengths differ`);
    if (data.recordType !== '2' || trailer.recordType !== '8') throw new LayoutError(`${where}: data must be record type 2 and trailer 8`);
    const family: Family = {
      name, describe: f.describe, variantOf: f.variantOf, fileTypes: f.fileTypes, recordLength: data.recordLength,
      encoding: data.encoding, framing: data.framing, data, trailer, routeKey: f.routeKey,
      header: cutLayout(found.get('header')!, data.recordLength), end: cutLayout(found.get('end')!, data.recordLength),
      totals: f.totals, rules: f.rules,
    };
    for (const [field, spec] of Object.entries(f.totals)) {
      if (!trailer.byName.has(field)) throw new LayoutError(`${where}: total '${field}' is not a trailer field`);
      const refs = [...('sum' in spec ? [spec.sum] : []), ...('net' in spec ? [spec.net] : []),
        ...Object.keys(('where' in spec && spec.where) || {}), ...Object.keys(('whereNot' in spec && spec.whereNot) || {}), ...Object.keys(('negativeWhere' in spec && spec.negativeWhere) || {})];
      for (const r of refs) if (!data.byName.has(r)) throw new LayoutError(`${where}: total '${field}' refers to unknown data field '${r}'`);
    }
    for (const rule of f.rules) {
      const refs = 'fields' in rule ? rule.fields : (RULE_FIELDS[rule.rule] ?? fail(where, `unknown rule '${rule.rule}'`)).map((k) => (rule as unknown as Record<string, string>)[k]!);
      for (const r of refs) if (!data.byName.has(r)) throw new LayoutError(`${where}: rule '${rule.rule}' refers to unknown field '${r}'`);
    }
    if (f.routeKey && !data.byName.has(f.routeKey)) throw new LayoutError(`${where}: unknown routeKey`);
    fams.set(name, family);
  }
  layouts = found;
  families = fams;
}

function fail(where: string, msg: string): never {
  throw new LayoutError(`${where}: ${msg}`);
}

export function getLayout(name: string): Layout {
  if (!layouts) loadAll();
  const l = layouts!.get(name);
  if (!l) throw new LayoutError(`unknown layout '${name}' (known: ${[...layouts!.keys()].join(', ')})`);
  return l;
}

export function listLayouts(): Layout[] {
  if (!layouts) loadAll();
  return [...layouts!.values()];
}

export function getFamily(name: string): Family {
  if (!families) loadAll();
  const f = families!.get(name);
  if (!f) throw new LayoutError(`unknown layout family '${name}' (known: ${[...families!.keys()].join(', ')})`);
  return f;
}

export function listFamilies(): Family[] {
  if (!families) loadAll();
  return [...families!.values()];
}

/** The family of a layout name: a family name itself, or the family whose data layout has that name. */
export function familyOfLayoutName(name: string): Family {
  if (!families) loadAll();
  const byData = [...families!.values()].find((f) => f.data.name === name || f.trailer.name === name);
  return families!.get(name) ?? byData ?? getFamily(name);
}

/** The family for a header's fileType and the record length found in the file. */
export function familyForFileType(fileType: string, recordLength?: number): Family | undefined {
  const all = listFamilies().filter((f) => f.fileTypes.includes(fileType));
  return all.find((f) => f.recordLength === recordLength && !f.variantOf) ?? all.find((f) => f.recordLength === recordLength) ?? all.find((f) => !f.variantOf);
}

export const KNOWN_FILE_TYPES: readonly string[] = ['21', '22', '23', '24', '31', '32', '33', '41', '42', '51', '52', '61', '71', '81', '91'];
