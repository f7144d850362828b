// ingest: validates a received file, refuses duplicates (E108), accepts or rejects it, and sends
// the sender a 91 rejection notice for every error found.
import { writeFile, rm } from 'node:fs/promises';
import { openSpoolFile } from '../../spool/encrypted-file.ts';
import path from 'node:path';
import { validateFile, sniffHeader, writeRejectNotice, makeDuplicateFileError, FormatError, type ValidationReport } from '../../formats/index.ts';
import { sha256File } from '../../spool/checksum.ts';
import { encryptClaimedFile } from '../../spool/claim.ts';
import { archiveFile } from '../../spool/archive.ts';
import { isUniqueViolation, writeTransaction, type FileRow } from '../../spool/ledger/index.ts';
import { recordFileErrorsIn } from '../../spool/ledger/file-errors.ts';
import { publishFile, temporaryPathFor } from '../../spool/atomic.ts';
import { jobId, type Handler, type JobContext } from '../context.ts';
import { planOutbound, publishOutbound, requestDelivery } from '../outbound.ts';
import { tokyoDate } from '../../spool/tree.ts';

/** The record numbers that validation rejected, kept beside the work file for the route job. */
export function rejectsPath(ctx: JobContext, fileId: string): string {
  return path.join(ctx.centre.spool.work, `${fileId}.rejects.json`);
}

/**
 * Written durably before the file is accepted: a route after a power loss must skip the same
 * records. None rejected (the common case) writes nothing: a missing file reads as none.
 */
async function writeRejects(ctx: JobContext, fileId: string, recordNos: readonly number[]): Promise<void> {
  const final = rejectsPath(ctx, fileId);
  if (recordNos.length === 0) return void (await rm(final, { force: true }));
  const temp = temporaryPathFor(final);
  await writeFile(temp, JSON.stringify(recordNos), { mode: 0o600 });
  await publishFile(temp, final);
}

async function readHead(p: string): Promise<Buffer> {
  const fh = await openSpoolFile(p);
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function unreadable(file: FileRow, err: FormatError): ValidationReport {
  return {
    path: file.path ?? '',
    header: null,
    family: null,
    encoding: null,
    framing: null,
    recordLength: null,
    errors: [{ recordNo: 1, bytePos: 0, code: err.code, field: '', detail: err.message.slice(0, 60) }],
    errorCount: 1,
    recordCount: 0,
    acceptedCount: 0,
    rejectedCount: 0,
    fileRejected: true,
    rejectedRecordNos: [],
    totals: {},
    acceptedTotals: {},
    groups: 0,
    bytes: file.size ?? 0,
  };
}

async function validate(ctx: JobContext, file: FileRow): Promise<ValidationReport> {
  const partner = ctx.centre.partner(file.partner_id);
  let fileType: string;
  try {
    fileType = sniffHeader(await readHead(file.path!)).fileType;
  } catch (err) {
    if (err instanceof FormatError) return unreadable(file, err);
    throw err;
  }
  const format = partner.formats[fileType as keyof typeof partner.formats];
  const byCompany = ['31', '41', '61'].includes(fileType);
  try {
    return await validateFile(file.path!, {
      layout: format?.layout,
      encoding: format?.encoding,
      framing: format?.framing,
      policy: partner.rejectPolicy,
      allowedFileTypes: partner.send,
      routeCodes: byCompany ? new Set(ctx.routes.companyByCode.keys()) : undefined,
      ownMerchantNos: partner.role === 'merchant' ? new Set(partner.merchantNos) : undefined,
      today: tokyoDate(ctx.now()),
      maxErrors: ctx.centre.config.maxErrorsPerFile,
    });
  } catch (err) {
    if (err instanceof FormatError) return unreadable(file, err);
    throw err;
  }
}

/** Publishes the 91 rejection notice for the sender and asks for its delivery. */
async function sendRejectNotice(ctx: JobContext, file: FileRow, report: ValidationReport): Promise<void> {
  const partner = ctx.centre.partner(file.partner_id);
  const plan = planOutbound(ctx, file, partner, '91');
  const temp = temporaryPathFor(path.join(ctx.centre.spool.outbound(partner.id), plan.name));
  const format = partner.formats['91'];
  let written: { records: number };
  try {
    written = await writeRejectNotice(
      report,
      {
        centreCode: ctx.centre.config.centre.code,
        centreName: ctx.centre.config.centre.name,
        receiverCode: partner.code,
        fileSha256: file.sha256 ?? '',
        createdAt: ctx.now(),
        fileSeq: plan.fileSeq,
        encoding: format?.encoding,
        framing: format?.framing,
        maxErrors: ctx.centre.config.maxErrorsPerFile,
      },
      temp,
    );
    const { sha256, size } = await sha256File(temp);
    await publishOutbound(ctx, {
      plan,
      partner,
      fileType: '91',
      tempPath: temp,
      size,
      sha256,
      recordCount: written.records,
      amountTotal: null,
      parentId: file.id,
      reason: `rejection notice for ${file.name}: ${report.errorCount} errors`,
    });
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await requestDelivery(ctx, plan.id);
}

/** The 91 notice of a file with errors (their counts by code commit with the file's outcome). */
async function answerErrors(ctx: JobContext, file: FileRow, report: ValidationReport): Promise<void> {
  if (report.errors.length > 0) await sendRejectNotice(ctx, file, report);
}

/**
 * A kill between the 'accepted' commit and the 91 notice would lose the notice, since the next
 * step after 'accepted' is the route job: the route job calls this first. It validates the file
 * again only when the file had rejects and its notice is missing (after such a kill).
 */
export async function ensureRejectNotice(ctx: JobContext, file: FileRow): Promise<void> {
  const hadErrors = (file.rejected_count ?? 0) > 0 || (await ctx.centre.ledger.db('file_errors').where({ file_id: file.id }).first('code')) !== undefined;
  if (!hadErrors) return;
  const plan = planOutbound(ctx, file, ctx.centre.partner(file.partner_id), '91');
  if (await ctx.centre.files.get(plan.id)) return;
  const report = await validate(ctx, file);
  ctx.centre.log.warn({ fileId: file.id, partner: file.partner_id, errors: report.errorCount }, 'rejection notice missing after an interruption: sending it now');
  await answerErrors(ctx, file, report);
}

export const ingest: Handler = async (input, ctx) => {
  const { centre } = ctx;
  const file = await centre.files.get(String(input.fileId));
  if (file?.state === 'accepted') {
    // Done already, but perhaps killed before asking for the route: ask (a no-op if queued).
    await ctx.enqueue({ kind: 'route', input: { fileId: file.id }, jobId: jobId('route', file.id) });
    return;
  }
  if (!file || file.state !== 'received' || !file.path) return; // done already
  const report = await validate(ctx, file);
  await encryptClaimedFile(file.path); // a partner's own drop: encrypted now that it has been read
  const header = report.header;
  const headerFields = {
    file_type: header?.fileType ?? null,
    sender_code: header?.senderCode ?? null,
    receiver_code: header?.receiverCode ?? null,
    file_seq: header?.fileSeq ?? null,
    business_date: header?.createdDate ?? null,
  };
  const counts = {
    record_count: report.recordCount,
    accepted_count: report.fileRejected ? 0 : report.acceptedCount,
    rejected_count: report.fileRejected ? report.recordCount : report.rejectedCount,
    amount_total: amountOf(report),
  };
  // The header fields, the outcome and the error counts commit together. Acceptance is a lazy
  // commit (nothing outside the ledger depends on it before the route, which flushes the ledger
  // before it publishes anything; a power loss that takes it gives a file still 'received', and
  // validation gives the same result again). A rejection is durable before the file is archived.
  const errorCodes = () => report.errors.map((e) => e.code);
  if (!report.fileRejected && header) {
    const duplicate = await centre.files.findDuplicate({ id: file.id, senderCode: header.senderCode, fileType: header.fileType, fileSeq: header.fileSeq, sha256: file.sha256 ?? '' });
    if (duplicate) rejectAsDuplicate(report, duplicate.id);
  }
  if (!report.fileRejected) {
    await writeRejects(ctx, file.id, report.rejectedRecordNos);
    try {
      await writeTransaction(centre.ledger, async (trx) => {
        await centre.files.transition(file.id, 'received', 'accepted', `valid: ${report.acceptedCount} accepted, ${report.rejectedCount} rejected`, { ...headerFields, ...counts }, trx);
        await recordFileErrorsIn(trx, file.id, errorCodes());
      }, { lazy: true });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      rejectAsDuplicate(report, 'another file accepted at the same moment'); // lost the race to a twin
    }
  }
  await answerErrors(ctx, file, report);
  if (report.fileRejected) {
    const codes = [...new Set(report.errors.map((e) => e.code))].join(',');
    await writeTransaction(centre.ledger, async (trx) => {
      await centre.files.transition(file.id, 'received', 'rejected', `rejected: ${report.errorCount} errors (${codes})`, { ...headerFields, ...counts, accepted_count: 0, rejected_count: report.recordCount }, trx);
      await recordFileErrorsIn(trx, file.id, errorCodes());
    });
    await rm(rejectsPath(ctx, file.id), { force: true }); // written before a twin won the accept race
    const archived = await archiveFile(centre.spool, file.path, path.basename(file.path));
    await centre.files.update(file.id, { path: archived, archived_at: Date.now() }, { losable: true }); // lost: the archive still holds it (recovery's case of a kill here)
    centre.log.warn({ fileId: file.id, partner: file.partner_id, fileName: file.name, errors: report.errorCount, codes }, 'file rejected');
    return;
  }
  centre.log.info({ fileId: file.id, partner: file.partner_id, fileType: header?.fileType, accepted: report.acceptedCount, rejected: report.rejectedCount }, 'file accepted');
  await ctx.enqueue({ kind: 'route', input: { fileId: file.id }, jobId: jobId('route', file.id) });
};

function rejectAsDuplicate(report: ValidationReport, detail: string): void {
  report.errors.unshift(makeDuplicateFileError(`duplicate of ${detail}`.slice(0, 60)));
  report.errorCount++;
  report.fileRejected = true;
  // The counts are the file's: rejected whole, every data record is rejected.
  report.acceptedCount = 0;
  report.rejectedCount = report.recordCount;
}

/** The file's net amount, for the ledger row (sales trailer: sales minus refunds). */
function amountOf(report: ValidationReport): number | null {
  const t = report.totals;
  const num = (k: string) => (typeof t[k] === 'number' ? (t[k] as number) : Number(t[k] ?? NaN));
  if (t.saleAmount !== undefined) return num('saleAmount') - num('refundAmount');
  for (const k of ['amountTotal', 'netAmount']) if (t[k] !== undefined && Number.isFinite(num(k))) return num(k);
  return null;
}
