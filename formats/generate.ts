// Realistic test files: valid Luhn card numbers from the card brands' published test ranges,
// plausible merchants, stores, terminals and amounts, half-width kana text; and, on request,
// planted errors whose exact position and code are returned so tests can assert them.
import { luhnCheckDigit } from './card.ts';
import { canonicalToEncoding, codeTypeOf } from './codepages/index.ts';
import type { ErrorCode } from './errors.ts';
import { blankRecord, encodeField } from './field-codec.ts';
import { buildEnd, buildHeader } from './header.ts';
import { familyForFileType, familyOfLayoutName, getFamily, type Encoding, type Family, type Framing } from './layouts.ts';
import { getMapping } from './mapping.ts';
import { RecordFileWriter, lineEndLength } from './record-io.ts';
import { TotalsAccumulator } from './totals.ts';

export interface GenerateOptions {
  records: number;
  seed?: number;
  /** plant known errors (about one per 20 records, at least one of each kind the type has) */
  errors?: boolean;
  /** layout family; default the standard one for the fileType */
  layout?: string;
  encoding?: Encoding;
  framing?: Framing;
  /** merchant number(s) to use; records cycle through them */
  merchantNo?: string | string[];
  senderCode?: string;
  senderName?: string;
  receiverCode?: string;
  fileSeq?: number;
  /** card company codes to spread records over (routing keys of 31/32/33/41/42/51/52/81/71) */
  cardCompanyCodes?: string[];
  /** issuer codes for 61 */
  issuerCodes?: string[];
  /** the file's creation date, YYYYMMDD; use dates fall in the 7 days before it */
  createdDate?: string;
  /** write here; without it the bytes are returned */
  out?: string;
}

export interface PlantedError { recordNo: number; bytePos: number; code: ErrorCode; field: string }

export interface GenerateResult {
  fileType: string;
  family: string;
  recordCount: number;
  planted: PlantedError[];
  totals: Record<string, number | string>;
  path?: string;
  bytes?: Buffer;
}

/** mulberry32: small, fast and deterministic for a seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Test ranges published by the brands (Visa, Mastercard, JCB, Amex, Diners): prefix and length. */
const TEST_BINS: [string, number][] = [['411111', 16], ['401288', 16], ['555555', 16], ['510510', 16], ['353011', 16], ['356600', 16], ['378282', 15], ['305693', 14]];
const HOLDER_NAMES = ['ﾔﾏﾀﾞ ﾀﾛｳ', 'ｽｽﾞｷ ﾊﾅｺ', 'ｻﾄｳ ｲﾁﾛｳ', 'ﾀﾅｶ ﾐﾁｺ', 'ﾜﾀﾅﾍﾞ ｹﾝ', 'ｺﾊﾞﾔｼ ﾕｳｺ'];
/** A utility's customer number (需要家番号): a letter first, so that it never looks like a card number. */
export const customerNoOf = (i: number) => `K${String(i + 1).padStart(13, '0')}`;
/** A bill number, unique per utility and month: YYMM then a sequence. */
export const billNoOf = (month: string, i: number) => `${month.slice(2)}${String(i + 1).padStart(8, '0')}`;
const KANA_WORDS = ['ｼｮｳﾋﾝ', 'ｶﾞｯｺｳ', 'ﾃﾞﾝｷ', 'ﾊﾟﾝ', 'ｺｰﾋｰ', 'ｻｰﾋﾞｽ', 'ﾎﾃﾙ', 'ｶﾞｿﾘﾝ'];
const DAY = 86_400_000;

function dateOffset(yyyymmdd: string, days: number): string {
  const t = Date.UTC(+yyyymmdd.slice(0, 4), +yyyymmdd.slice(4, 6) - 1, +yyyymmdd.slice(6, 8)) + days * DAY;
  return new Date(t).toISOString().slice(0, 10).replaceAll('-', '');
}

type Values = Record<string, string>;
type Plant = { code: ErrorCode; field: string; apply: (v: Values, ctx: { earlier: Values[] }) => void; raw?: (rec: Buffer, off: number) => void };

export async function generateFile(fileType: string, opts: GenerateOptions): Promise<GenerateResult> {
  const family = opts.layout ? familyOfLayoutName(opts.layout) : familyForFileType(fileType);
  if (!family) throw new Error(`no layout for fileType ${fileType}`);
  if (!family.fileTypes.includes(fileType)) throw new Error(`layout ${family.name} does not carry fileType ${fileType}`);
  const encoding = opts.encoding ?? family.encoding;
  const framing = opts.framing ?? family.framing;
  const rnd = seededRandom(opts.seed ?? 1);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const digits = (n: number) => { let s = ''; for (let i = 0; i < n; i++) s += String(Math.floor(rnd() * 10)); return s; };
  const createdDate = opts.createdDate ?? '20250401';
  const merchants = [opts.merchantNo ?? ['100000000000001', '100000000000002', '100000000000003']].flat();
  const companies = opts.cardCompanyCodes ?? ['001', '002', '003', '004', '005'];
  const issuers = opts.issuerCodes ?? ['101', '102', '103'];
  const card = () => { const [bin, len] = pick(TEST_BINS); const body = bin + digits(len - 7); return body + luhnCheckDigit(body); };

  const header = buildHeader({
    fileType, codeType: codeTypeOf(encoding), senderCode: opts.senderCode ?? '1000000001', senderName: opts.senderName ?? 'ﾂﾅｷﾞ ｼｮｳｼﾞ(ｶ',
    createdDate, createdTime: '235900', receiverCode: opts.receiverCode ?? '9000000000',
    periodFrom: dateOffset(createdDate, -7), periodTo: dateOffset(createdDate, -1), fileSeq: String(opts.fileSeq ?? 1),
    cycle: fileType === '71' ? 'D' : '',
  }, family.recordLength);

  // A variant (e.g. sales.company120) is generated as its standard record, then mapped.
  const base = family.variantOf ? getFamily(family.variantOf) : family;
  const mapping = base === family ? null : getMapping(base.data.name, family.data.name);
  const mapped = blankRecord(family.data);
  const makeValues = recordMaker(fileType, base, { int, pick, digits, card, merchants, companies, issuers, createdDate });
  const plants = opts.errors ? plantsFor(family, base, encoding) : [];
  const planted: PlantedError[] = [];
  const step = plants.length ? Math.max(2, Math.floor(opts.records / (plants.length + 1))) : 0;
  const earlier: Values[] = [];

  const totals = new TotalsAccumulator(family);
  const stride = family.recordLength + lineEndLength(framing);
  const writer = opts.out ? new RecordFileWriter(opts.out, framing) : null;
  const chunks: Buffer[] = [];
  const outRec = Buffer.alloc(family.recordLength);
  const emit = (canon: Buffer, layout: Family['data']) => {
    canonicalToEncoding(encoding, layout, canon, 0, outRec, 0);
    if (writer) writer.write(outRec);
    else chunks.push(Buffer.concat([outRec, Buffer.from(framing === 'crlf' ? '\r\n' : framing === 'lf' ? '\n' : '')]));
  };
  try {
    emit(header, family.header);
    const rec = blankRecord(base.data);
    for (let i = 0; i < opts.records; i++) {
      const v = makeValues(i);
      const plantIndex = step ? i / step - 1 : -1;
      const plant = Number.isInteger(plantIndex) && plantIndex >= 0 && plantIndex < plants.length ? plants[plantIndex]! : null;
      if (plant) plant.apply(v, { earlier });
      rec.fill(0x20);
      for (const f of base.data.fields) {
        const value = f.name === 'recordType' ? '2' : v[f.name];
        if (value === undefined) { rec.fill(f.type === 'C' ? 0x20 : 0x30, f.offset, f.offset + f.length); if (f.type === 'P' || f.type === 'K') encodeField(f.type === 'P' ? '0' : '', rec, 0, f); continue; }
        encodeField(value, rec, 0, f);
      }
      if (plant?.raw) plant.raw(rec, 0);
      const out = mapping ? (mapping.apply(rec, 0, mapped, 0), mapped) : rec;
      if (plant) {
        const f = family.data.byName.get(plant.field);
        planted.push({ recordNo: i + 2, bytePos: f && plant.code !== 'E303' ? f.offset + 1 : 0, code: plant.code, field: plant.code === 'E303' ? '' : plant.field });
      }
      if (i < 16) earlier.push(v);
      totals.add(out, 0);
      emit(out, family.data);
    }
    const trailer = blankRecord(family.trailer);
    totals.writeInto(trailer);
    emit(trailer, family.trailer);
    emit(buildEnd(family.recordLength), family.end);
    writer?.close();
  } catch (err) {
    writer?.abandon();
    throw err;
  }
  void stride;
  return {
    fileType, family: family.name, recordCount: opts.records, planted, totals: totals.values(),
    ...(opts.out ? { path: opts.out } : { bytes: Buffer.concat(chunks) }),
  };
}

interface Tools {
  int: (lo: number, hi: number) => number;
  pick: <T>(xs: readonly T[]) => T;
  digits: (n: number) => string;
  card: () => string;
  merchants: string[];
  companies: string[];
  issuers: string[];
  createdDate: string;
}

function recordMaker(fileType: string, family: Family, t: Tools): (i: number) => Values {
  const { int, pick, digits, card, merchants, companies, issuers, createdDate } = t;
  const useDate = (i: number) => dateOffset(createdDate, -1 - (Math.floor(i / 4_999_950) % 7));
  const terminalOf = (i: number) => `TRM${String(i % 50).padStart(4, '0')}00001`;
  const slipOf = (i: number) => String((Math.floor(i / 50) % 99_999) + 1);
  const time = () => `${String(int(8, 21)).padStart(2, '0')}${String(int(0, 59)).padStart(2, '0')}${String(int(0, 59)).padStart(2, '0')}`;
  const method = () => { const r = int(1, 100); return r <= 80 ? ['10', '00'] : r <= 90 ? ['61', pick(['03', '06', '10', '12'])] : r <= 95 ? ['21', '00'] : ['80', '00']; };
  const txn = () => { const r = int(1, 100); return r <= 90 ? '10' : r <= 95 ? '20' : '30'; };
  switch (family.name.split('.')[0]) {
    case 'sales':
      return (i) => {
        const txnType = txn();
        const [paymentMethod, installments] = method();
        const date = useDate(i);
        const refund = txnType !== '10';
        const v: Values = {
          cardCompanyCode: companies[i % companies.length]!, merchantNo: merchants[i % merchants.length]!, storeCode: `ST${String(i % 50 >> 2).padStart(4, '0')}`,
          terminalId: terminalOf(i), slipNo: slipOf(i), txnType, cardNo: card(), expiry: `${int(27, 31)}${String(int(1, 12)).padStart(2, '0')}`,
          useDate: date, useTime: time(), paymentMethod, installments, amount: String(int(1, 5000) * 100), taxShipping: '0',
          approvalNo: digits(7), productCode: '0990000', entryMode: pick(['IC', 'MS', 'CL', 'MN']),
          origSlipNo: refund ? String(int(1, 99_999)) : '0', origUseDate: refund ? dateOffset(date, -int(1, 20)) : '0',
          merchantRef: `${pick(KANA_WORDS)} ${i % 10_000}`,
        };
        if (fileType !== '31') { v.centreRef = String(1_000_000 + i); v.centreDate = createdDate; }
        if (fileType === '33') { v.resultCode = pick(['00', '00', '00', '10', '11']); v.payoutDate = dateOffset(createdDate, 30); }
        return v;
      };
    case 'validity':
      return (i) => {
        const v: Values = { cardCompanyCode: companies[i % companies.length]!, merchantNo: merchants[i % merchants.length]!, customerNo: `C${String(i + 1).padStart(12, '0')}`, cardNo: card(), expiry: `${int(26, 31)}${String(int(1, 12)).padStart(2, '0')}`, inquiryType: pick(['1', '2']), newExpiry: '0' };
        if (fileType === '42') {
          v.resultCode = pick(['000', '000', '000', 'G12', 'G54']);
          if (v.resultCode === '000' && v.inquiryType === '2' && int(1, 4) === 1) { v.newCardNo = card(); v.newExpiry = `${int(30, 33)}12`; }
        }
        return v;
      };
    case 'invalid':
      return (i) => ({ cardCompanyCode: companies[i % companies.length]!, cardNo: card(), expiry: pick(['0000', '2812', '2906']), action: pick(['1', '1', '1', '2']), reason: pick(['01', '02', '03', '04', '05', '09']), registeredDate: dateOffset(createdDate, -1), listUntil: dateOffset(createdDate, 180), targetMerchantNo: i % 5 === 0 ? merchants[0]! : '' });
    case 'gift':
      return (i) => { const face = pick([500, 1000, 5000, 10000]); const q = int(1, 5); return { issuerCode: issuers[i % issuers.length]!, merchantNo: merchants[i % merchants.length]!, storeCode: `ST${String(i % 12).padStart(4, '0')}`, handledDate: useDate(i), txnType: pick(['10', '10', '10', '30']), certType: pick(['01', '02']), certNo: digits(16), faceValue: String(face), quantity: String(q), amount: String(face * q) }; };
    case 'terminal':
      return (i) => { const [paymentMethod, installments] = method(); const c = card(); return { merchantNo: merchants[i % merchants.length]!, storeCode: `ST${String(i % 50 >> 2).padStart(4, '0')}`, terminalId: terminalOf(i), txnDate: useDate(i), txnTime: time(), slipNo: slipOf(i), cardCompanyCode: companies[i % companies.length]!, paymentKind: pick(['1', '1', '1', '2', '3', '4']), txnType: txn(), paymentMethod, installments, amount: String(int(1, 5000) * 100), approvalNo: digits(7), maskedCardNo: c.slice(0, 6) + '*'.repeat(c.length - 10) + c.slice(-4), entryMode: pick(['IC', 'CL']) }; };
    case 'jmanager':
      return (i) => {
        const sc = int(1, 50), sa = sc * int(5, 50) * 100, vc = int(0, 3), va = vc * 1000, rc = int(0, 2), ra = rc * 1500;
        const net = sa - va - ra;
        return { storeCode: `ST${String(i % 12).padStart(4, '0')}`, merchantNo: merchants[0]!, terminalId: i % 4 === 0 ? '' : `TRM${String(i % 50).padStart(4, '0')}00001`, businessDate: dateOffset(createdDate, -1), cardCompanyCode: companies[i % companies.length]!, paymentKind: '1', paymentMethod: '10', saleCount: String(sc), saleAmount: String(sa), voidCount: String(vc), voidAmount: String(va), returnCount: String(rc), returnAmount: String(ra), netSign: net < 0 ? '-' : '+', netAmount: String(Math.abs(net)) };
      };
    case 'reject':
      return (i) => ({ recordNo: String(i + 2), bytePos: '50', errorCode: 'E204', fieldName: 'cardNo', detail: 'Luhn check fails' });
    case 'registration':
      if (family.name === 'registration.result') {
        return (i) => { const r = int(1, 10); return { customerNo: customerNoOf(i), event: r <= 8 ? '1' : r === 9 ? '2' : '3', resultCode: r <= 7 ? '000' : r <= 8 ? pick(['R01', 'R03', 'R04']) : r === 9 ? '000' : 'G12', cardLast4: r === 8 ? '0000' : digits(4), eventDate: createdDate }; };
      }
      return (i) => {
        const r = int(1, 20);
        const action = r <= 18 ? '1' : r === 19 ? '2' : '3';
        return {
          action, customerNo: customerNoOf(i), cardCompanyCode: companies[i % companies.length]!, cardNo: action === '3' ? '' : card(),
          expiry: action === '3' ? '0000' : `${int(28, 33)}${String(int(1, 12)).padStart(2, '0')}`, holderName: pick(HOLDER_NAMES), applicationDate: dateOffset(createdDate, -int(1, 30)),
        };
      };
    case 'billing': {
      const month = createdDate.slice(0, 6);
      if (family.name === 'billing.result') {
        return (i) => { const code = pick(['00', '00', '00', '00', '12', 'NR', 'NC']); const charged = code.startsWith('N') ? '' : 'x'; return { customerNo: customerNoOf(i), billingMonth: month, billNo: billNoOf(month, i), amount: String(int(5, 300) * 100), resultCode: code, cardLast4: charged ? digits(4) : '0000', centreRef: charged ? String(1_000_000 + i) : '0' }; };
      }
      // use dates spread over the month's days up to the file's date (at most 28), so that no date
      // needs more than 99999 slip numbers and none is after the file was made
      const days = Math.max(1, Math.min(28, Number(createdDate.slice(6, 8))));
      return (i) => ({ customerNo: customerNoOf(i), billingMonth: month, billingKind: pick(['1', '1', '2', '3', '9']), amount: String(int(5, 300) * 100), useDate: `${month}${String(1 + (i % days)).padStart(2, '0')}`, billNo: billNoOf(month, i) });
    }
  }
  throw new Error(`no generator for ${family.name}`);
}

/** The errors planted for a family: each makes exactly one known error. */
function plantsFor(family: Family, base: Family, encoding: Encoding): Plant[] {
  const has = (n: string) => family.data.byName.has(n) && base.data.byName.has(n);
  const plants: Plant[] = [];
  const add = (code: ErrorCode, field: string, apply: Plant['apply'], raw?: Plant['raw']) => { if (has(field)) plants.push({ code, field, apply, raw }); };
  const cardCheck = family.data.byName.get('cardNo')?.check;
  if (cardCheck === 'card' || cardCheck === 'cardOrBlank') add('E204', 'cardNo', (v) => { const c = v.cardNo!; v.cardNo = c.slice(0, -1) + String((+c.slice(-1) + 1) % 10); });
  for (const d of ['useDate', 'handledDate', 'registeredDate', 'txnDate', 'businessDate']) add('E202', d, (v) => { v[d] = base.data.byName.get(d)!.length === 6 ? '250230' : '20250230'; });
  for (const t of ['useTime', 'txnTime']) add('E203', t, (v) => { v[t] = '256000'; });
  for (const c of ['txnType', 'inquiryType', 'action', 'paymentKind']) add('E206', c, (v) => { v[c] = c === 'txnType' ? '40' : '9'; });
  if (has('installments')) add('E207', 'installments', (v) => { v.paymentMethod = '10'; v.installments = '03'; });
  if (has('origSlipNo')) add('E209', 'origSlipNo', (v) => { v.txnType = '20'; v.origSlipNo = '0'; v.origUseDate = v.useDate!; });
  if (has('expiry') && has('useDate')) add('E205', 'expiry', (v) => { v.expiry = '2001'; });
  if (family.data.byName.get('amount')?.check === 'nonzero') add('E208', 'amount', (v) => { v.amount = '0'; if (has('faceValue')) v.faceValue = '0'; });
  if (has('slipNo') && family.data.byName.get('slipNo')!.type === 'N') {
    const f = base.data.byName.get('slipNo')!;
    add('E201', 'slipNo', () => {}, (rec) => { rec.write('1A', f.offset + f.length - 2, 'latin1'); });
  }
  if (encoding === 'sjis') {
    const text = ['merchantRef', 'certNo', 'customerNo', 'targetMerchantNo', 'approvalNo'].find(has);
    if (text) {
      const f = base.data.byName.get(text)!;
      add('E210', text, () => {}, (rec) => { Buffer.from([0x83, 0x65, 0x83, 0x58, 0x83, 0x67]).copy(rec, f.offset); }); // テスト
    }
  }
  const dupKey = family.rules.find((r) => r.rule === 'duplicate');
  if (dupKey && 'fields' in dupKey) {
    plants.push({ code: 'E303', field: '', apply: (v, { earlier }) => { for (const k of dupKey.fields) v[k] = earlier[1]![k]!; } });
  }
  return plants;
}
