// What the utility flows share: the vault of the running centre, which merchant number belongs to
// which utility, reading a file in its standard layout whatever layout the partner uses, and
// writing one outbound file (22, 24, 41) in its receiver's layout and code page.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  blankRecord, buildHeader, encodeField, familyOfLayoutName, getFamily, getMapping, openSource, snapshotFields, streamCanonical, TotalsAccumulator,
  FamilyFileWriter, type CompiledMapping, type Family,
} from '../../formats/index.ts';
import { codeTypeOf } from '../../formats/codepages/index.ts';
import { temporaryPathFor } from '../../spool/atomic.ts';
import { sha256File } from '../../spool/checksum.ts';
import { KeyRing } from '../../spool/keys.ts';
import { tokyoDate, tokyoTime } from '../../spool/tree.ts';
import { Vault } from '../../spool/vault/vault.ts';
import type { Centre } from '../centre.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { publishOutbound, type OutboundPlan } from '../outbound.ts';
import { vaultKeySources } from './config.ts';

const vaults = new WeakMap<Centre, Promise<Vault>>();

/** The centre's card vault (opened once per centre). */
export function vaultOf(centre: Centre): Promise<Vault> {
  let v = vaults.get(centre);
  if (!v) {
    const cfg = vaultKeySources(centre.config);
    if (!cfg) throw new Error(`${centre.config.file}: utility billing needs vault.kek (the key-encryption key)`);
    v = Vault.open(centre.ledger, KeyRing.load(cfg.kek, cfg.retiredKeks));
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
  const src = await openSource(filePath, { layout: format?.layout, encoding: format?.encoding, framing: format?.framing });
  const target = getFamily(familyOfLayoutName(standard).name).data;
  const mapping: CompiledMapping = getMapping(src.family.data.name, target.name);
  const rec = Buffer.alloc(target.recordLength);
  await streamCanonical(src, (buf, off, recordNo, type) => {
    if (type !== '2' || skip?.has(recordNo)) return;
    mapping.apply(buf, off, rec, 0);
    onRecord(snapshotFields(target, rec, 0), recordNo, rec);
  }, onChunk);
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
    const trailer = blankRecord(this.family.trailer);
    this.totals.writeInto(trailer);
    this.writer.finish(trailer);
    try {
      const { sha256, size } = await sha256File(this.tempPath);
      await publishOutbound(ctx, {
        plan: this.plan, partner: this.partner, fileType: this.fileType, tempPath: this.tempPath, size, sha256,
        recordCount: this.count, amountTotal: this.amount || null, parentId, reason,
      });
    } catch (err) {
      await rm(this.tempPath, { force: true });
      throw err;
    }
    return this.plan.id;
  }

  abandon(): void {
    this.writer.abandon();
  }
}
