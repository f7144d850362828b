// What the utility flows share: the vault of the running centre, which merchant number belongs to
// which utility, reading a file in its standard layout whatever layout the partner uses, and
// writing one outbound file (22, 24, 41) in its receiver's layout and code page.
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  blankRecord, buildHeader, encodeField, familyOfLayoutName, getFamily, getMapping, openSource, snapshotFields, streamCanonical, TotalsAccumulator,
  FamilyFileWriter, type CompiledMapping, type Family, type FieldDef,
} from '../../formats/index.ts';
import { codeTypeOf } from '../../formats/codepages/index.ts';
import { temporaryPathFor } from '../../spool/atomic.ts';
import type { Ledger } from '../../spool/ledger/index.ts';
import { selectByKeysRaw, withRawSqlite } from '../../spool/ledger/sqlite-raw.ts';
import { sha256File } from '../../spool/checksum.ts';
import { KeyRing } from '../../spool/keys.ts';
import { tokyoDate, tokyoTime } from '../../spool/tree.ts';
import { Vault } from '../../spool/vault/vault.ts';
import type { Centre } from '../centre.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { publishOutbounds, type OutboundPlan, type PublishedOutbound } from '../outbound.ts';
import { vaultKeySources } from './config.ts';

const vaults = new WeakMap<Centre, Promise<Vault>>();

/** The centre's card vault (opened once per centre). */
export function vaultOf(centre: Centre): Promise<Vault> {
  let v = vaults.get(centre);
  if (!v) {
    const cfg = vaultKeySources(centre.config);
    if (!cfg) throw new Error(`${centre.config.file}: utility billing needs vault.kek (the key-encryption key)`);
    v = Vault.open(centre.ledger, centre.keys ?? KeyRing.load(cfg.kek, cfg.retiredKeks));
    v.catch(() => vaults.delete(centre));
    vaults.set(centre, v);
  }
  return v;
}

export interface UtilityMerchant {
  partner: PartnerConfig;
  cardCompanyCode: string;
}

const merchantMaps = new WeakMap<object, Map<string, UtilityMerchant>>();

/** Merchant number -> the utility that bills with it at a card company. */
export function utilityMerchants(ctx: JobContext): Map<string, UtilityMerchant> {
  let m = merchantMaps.get(ctx.centre.config);
  if (!m) {
    m = new Map();
    for (const p of ctx.centre.config.partners) {
      if (p.role !== 'utility' || !p.utility) continue;
      for (const [code, no] of Object.entries(p.utility.merchantNos)) m.set(no, { partner: p, cardCompanyCode: code });
    }
    merchantMaps.set(ctx.centre.config, m);
  }
  return m;
}

export const utilities = (ctx: JobContext) => ctx.centre.config.partners.filter((p) => p.role === 'utility');
export const last4 = (cardNo: string) => cardNo.trim().slice(-4).padStart(4, '0');

export interface PartnerFormat {
  layout?: string;
  encoding?: 'sjis' | 'jis8' | 'ebcdic-kana' | 'ebcdic';
  framing?: 'none' | 'crlf' | 'lf';
}

export function formatOf(partner: PartnerConfig, fileType: string): PartnerFormat | undefined {
  return partner.formats[fileType as keyof typeof partner.formats];
}

/**
 * Streams a file's data records as fields of `standard` (a data layout), mapped from the layout the
 * partner uses. `onChunk` runs after each chunk of records (awaited), for batched ledger work.
 */
export async function readAsStandard(
  filePath: string,
  format: PartnerFormat | undefined,
  standard: string,
  onRecord: (fields: Record<string, string>, recordNo: number, canonical: Buffer) => void,
  onChunk?: () => Promise<void>,
  skip?: Set<number>,
): Promise<void> {
  const target = getFamily(familyOfLayoutName(standard).name).data;
  await streamStandard(filePath, format, standard, (rec, recordNo) => onRecord(snapshotFields(target, rec, 0), recordNo, rec), onChunk, skip);
}

/**
 * The same without decoding any field: each data record in the standard layout's bytes (the buffer
 * is reused for the next record), for the bulk flows that read a few fields by offset.
 */
export async function streamStandard(
  filePath: string,
  format: PartnerFormat | undefined,
  standard: string,
  onRecord: (standardRecord: Buffer, recordNo: number) => void,
  onChunk?: () => Promise<void>,
  skip?: Set<number>,
): Promise<void> {
  const src = await openSource(filePath, { layout: format?.layout, encoding: format?.encoding, framing: format?.framing });
  const target = getFamily(familyOfLayoutName(standard).name).data;
  const mapping: CompiledMapping = getMapping(src.family.data.name, target.name);
  const rec = Buffer.alloc(target.recordLength);
  await streamCanonical(src, (buf, off, recordNo, type) => {
    if (type !== '2' || skip?.has(recordNo)) return;
    mapping.apply(buf, off, rec, 0);
    onRecord(rec, recordNo);
  }, onChunk);
}

const IN_LIST = 500;

/**
 * The rows of `table` whose `keyColumn` is one of `keys` (distinct, in any order), among the
 * rows matching `where`. On SQLite (binary order, the same as a JS sort of these ASCII-or-kana
 * keys) one range scan over the key's index fetches them when they are dense there, which is the
 * usual case of a file in customer or bill order; when the range holds more than twice as many rows
 * it falls back to IN lists. On PostgreSQL, whose collation may order the keys otherwise, IN lists.
 * Rows outside `keys` may come back; callers look rows up by key.
 */
export async function rowsByKeys<T>(ledger: Ledger, table: string, where: Record<string, string>, keyColumn: string, keys: string[], columns: readonly string[]): Promise<T[]> {
  return selectByKeys(ledger, table, where, keyColumn, keys, columns, false) as Promise<T[]>;
}

/** rowsByKeys with each row as an array of `columns`' values (cheaper per row on SQLite: no object). */
export async function rowArraysByKeys(ledger: Ledger, table: string, where: Record<string, string>, keyColumn: string, keys: string[], columns: readonly string[]): Promise<unknown[][]> {
  return selectByKeys(ledger, table, where, keyColumn, keys, columns, true) as Promise<unknown[][]>;
}

async function selectByKeys(ledger: Ledger, table: string, where: Record<string, string>, keyColumn: string, keys: string[], columns: readonly string[], arrays: boolean): Promise<unknown[]> {
  if (keys.length === 0) return [];
  const whereSql = Object.keys(where).map((c) => `${c} = ?`).join(' and ');
  const whereArgs = Object.values(where);
  if (ledger.dialect !== 'sqlite') {
    const out: unknown[] = [];
    for (let i = 0; i < keys.length; i += IN_LIST) {
      const rows = (await ledger.db(table).where(where).whereIn(keyColumn, keys.slice(i, i + IN_LIST)).select(...columns)) as Record<string, unknown>[];
      for (const r of rows) out.push(arrays ? columns.map((c) => r[c]) : r);
    }
    return out;
  }
  return withRawSqlite(ledger, (conn) => selectByKeysRaw(conn, `select ${columns.join(', ')} from ${table} where ${whereSql} and ${keyColumn}`, whereArgs, keys, arrays));
}

/**
 * Writes an opened card's number (plain[start, end), digits) into a C field and its expiry
 * (plain[expStart, expEnd), YYMM) into an N field, straight from the vault's bytes: the number is
 * never a JS string. Anything else in the bytes is refused rather than written.
 */
export function putCardBytes(rec: Buffer, cardField: FieldDef, expiryField: FieldDef, plain: Buffer, start: number, end: number, expStart: number, expEnd: number): void {
  const n = end - start;
  if (n < 12 || n > cardField.length || expEnd - expStart !== expiryField.length) throw new Error('vault entry is not a card number and expiry');
  for (let i = start; i < end; i++) if (plain[i]! < 0x30 || plain[i]! > 0x39) throw new Error('vault entry is not a card number');
  for (let i = expStart; i < expEnd; i++) if (plain[i]! < 0x30 || plain[i]! > 0x39) throw new Error('vault entry expiry is not YYMM');
  copyBytes(plain, start, rec, cardField.offset, n);
  for (let i = cardField.offset + n; i < cardField.offset + cardField.length; i++) rec[i] = 0x20;
  copyBytes(plain, expStart, rec, expiryField.offset, expEnd - expStart);
}

/** Copies a few bytes: a loop, where Buffer.copy costs 60-120 ns a call here, more than short copies take. */
export function copyBytes(src: Buffer, from: number, dst: Buffer, to: number, n: number): void {
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}

/** One outbound file of a standard family, written in the receiver's layout and code page. */
export class OutboundWriter {
  readonly tempPath: string;
  readonly family: Family;
  private readonly std: Family;
  private readonly mapping: CompiledMapping;
  private readonly writer: FamilyFileWriter;
  private readonly totals: TotalsAccumulator;
  private readonly mapped: Buffer;
  count = 0;
  amount = 0;
  private finished = false;

  constructor(
    ctx: JobContext,
    readonly partner: PartnerConfig,
    readonly fileType: string,
    standardFamily: string,
    readonly plan: OutboundPlan,
  ) {
    this.std = getFamily(standardFamily);
    const format = formatOf(partner, fileType);
    this.family = format?.layout ? familyOfLayoutName(format.layout) : this.std;
    const encoding = format?.encoding ?? this.family.encoding;
    this.mapping = getMapping(this.std.data.name, this.family.data.name);
    this.tempPath = temporaryPathFor(path.join(ctx.centre.spool.outbound(partner.id), plan.name));
    this.writer = new FamilyFileWriter(this.tempPath, this.family, encoding, format?.framing ?? this.family.framing);
    this.totals = new TotalsAccumulator(this.family);
    this.mapped = blankRecord(this.family.data);
    const now = ctx.now();
    const createdDate = tokyoDate(now);
    this.writer.put(buildHeader({
      fileType, codeType: codeTypeOf(encoding), senderCode: ctx.centre.config.centre.code, senderName: ctx.centre.config.centre.name,
      createdDate, createdTime: tokyoTime(now), receiverCode: partner.code, periodFrom: createdDate, periodTo: createdDate, fileSeq: plan.fileSeq,
    }, this.family.recordLength), this.family.header);
  }

  /** A blank record of the standard data layout. */
  blank(): Buffer {
    return blankRecord(this.std.data);
  }

  /** Sets fields of a standard record by name. */
  set(rec: Buffer, values: Record<string, string>): Buffer {
    for (const [k, v] of Object.entries(values)) encodeField(v, rec, 0, this.std.data.byName.get(k)!);
    return rec;
  }

  /** Writes one record given in the standard data layout. */
  put(standardRecord: Buffer, amount = 0): void {
    this.mapping.apply(standardRecord, 0, this.mapped, 0);
    this.totals.add(this.mapped, 0);
    this.writer.put(this.mapped);
    this.count++;
    this.amount += amount;
  }

  /** Finishes the file and publishes it (ledger row 'ready'); returns the outbound file id. */
  async publish(ctx: JobContext, parentId: string | null, reason: string): Promise<string> {
    const out = await this.finish(parentId, reason);
    try {
      await publishOutbounds(ctx, [out]);
    } catch (err) {
      await rm(this.tempPath, { force: true });
      throw err;
    }
    return this.plan.id;
  }

  /** Finishes the file, for the caller to publish with others (publishOutbounds). */
  async finish(parentId: string | null, reason: string): Promise<PublishedOutbound> {
    this.finished = true;
    const trailer = blankRecord(this.family.trailer);
    this.totals.writeInto(trailer);
    this.writer.finish(trailer);
    try {
      const { sha256, size } = await sha256File(this.tempPath);
      return {
        plan: this.plan, partner: this.partner, fileType: this.fileType, tempPath: this.tempPath, size, sha256,
        recordCount: this.count, amountTotal: this.amount || null, parentId, reason,
      };
    } catch (err) {
      await rm(this.tempPath, { force: true });
      throw err;
    }
  }

  /** Closes and removes the file, unless finish() has (then the caller publishes or removes it). */
  abandon(): void {
    if (this.finished) return;
    this.finished = true;
    this.writer.abandon();
    rmSync(this.tempPath, { force: true });
  }
}

/** A non-negative integer into an N field, zero-padded (encodeField without the string checks). */
export function putDigits(rec: Buffer, f: FieldDef, value: number): void {
  let v = value;
  for (let i = f.offset + f.length - 1; i >= f.offset; i--) {
    rec[i] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  }
  if (v !== 0) throw new Error(`${value} does not fit the ${f.length} digits of ${f.name}`);
}
