// route: splits an accepted file by destination and converts each part into the destination's
// layout and code page: 31 -> 32 per card company (each record stamped with a centreRef), 41 and
// 61 per card company or issuer, 33 and 42 back to the merchant that owns each record, 51 and 52
// out to every merchant concerned (52 at once). Outputs are published atomically and recorded;
// a retry after a crash anywhere makes the same files and finds them there.
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { splitFile, familyForFileType, type ForwardInfo, type SplitOutput } from '../../formats/index.ts';
import { temporaryPathFor } from '../../spool/atomic.ts';
import { archiveFile } from '../../spool/archive.ts';
import { sha256File } from '../../spool/checksum.ts';
import { tokyoDate, tokyoTime } from '../../spool/tree.ts';
import type { Knex } from 'knex';
import { flushLedger, writeTransaction, type FileRow } from '../../spool/ledger/index.ts';
import type { PartnerConfig } from '../config.ts';
import type { Handler, JobContext } from '../context.ts';
import { planOutbound, publishOutbounds, requestDeliveries, type PublishedOutbound } from '../outbound.ts';
import { FORWARDED_TYPE, routeKindOf } from '../routing.ts';
import { ensureRejectNotice, rejectsPath } from './ingest.ts';
import { SentRecordWriter, recordResults, type ReturnedResult } from '../sent-records.ts';
import { maskCardNumber } from '../../formats/index.ts';
import { loadTerminalFile } from '../terminal.ts';
import { routeUtilityFile, utilityAnswersFor, utilityEffectsOf } from '../utility/route.ts';

type RouteOf = (fields: Readonly<Record<string, string>>) => string | string[] | null;

function routerFor(ctx: JobContext, fileType: string): RouteOf {
  const { companyByCode, merchantByNo, merchantsByCompanyCode } = ctx.routes;
  switch (routeKindOf(fileType)) {
    case 'by-company': {
      const key = fileType === '61' ? 'issuerCode' : 'cardCompanyCode';
      return (f) => companyByCode.get(f[key]!)?.id ?? null;
    }
    case 'by-merchant':
      return (f) => merchantByNo.get(f.merchantNo!.trim())?.id ?? null;
    case 'fan-out':
      return (f) => {
        const target = f.targetMerchantNo!.trim();
        if (target) return merchantByNo.get(target)?.id ?? null;
        return (merchantsByCompanyCode.get(f.cardCompanyCode!) ?? []).map((p) => p.id);
      };
    default:
      return () => null;
  }
}

async function readRejects(ctx: JobContext, fileId: string): Promise<number[]> {
  try {
    return JSON.parse(await readFile(rejectsPath(ctx, fileId), 'utf8')) as number[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function splitAndPublish(ctx: JobContext, file: FileRow, sender: PartnerConfig, alsoCommit?: (trx: Knex.Transaction, outputIds: readonly string[]) => Promise<void>): Promise<string[]> {
  const { centre } = ctx;
  const fileType = file.file_type!;
  const outType = FORWARDED_TYPE[fileType]!;
  const now = ctx.now();
  const centreDate = tokyoDate(now);
  const format = sender.formats[fileType as keyof typeof sender.formats];
  const defaultLayout = familyForFileType(outType)!.name;
  const plans = new Map<string, ReturnType<typeof planOutbound>>();
  const planFor = (destId: string) => {
    let plan = plans.get(destId);
    if (!plan) {
      plan = planOutbound(ctx, file, ctx.routes.byId.get(destId)!, outType);
      plans.set(destId, plan);
    }
    return plan;
  };
  const skipRecordNos = await readRejects(ctx, file.id);
  const results = fileType === '33' ? [] as ReturnedResult[] : undefined;
  const sent = fileType === '31' ? await SentRecordWriter.open(centre.ledger, file.id, centreDate, (destId) => planFor(destId).id) : undefined;
  const outputs: SplitOutput[] = await splitFile(file.path!, {
    sourceLayout: format?.layout,
    encoding: format?.encoding,
    framing: format?.framing,
    skipRecordNos,
    routeOf: routerFor(ctx, fileType),
    targetFormat(destId) {
      const dest = ctx.routes.byId.get(destId)!;
      const f = dest.formats[outType as keyof typeof dest.formats];
      return { layout: f?.layout ?? defaultLayout, encoding: f?.encoding, framing: f?.framing, fileType: outType };
    },
    header: {
      senderCode: centre.config.centre.code,
      senderName: centre.config.centre.name,
      createdDate: centreDate,
      createdTime: tokyoTime(now),
      receiverCode: (destId) => ctx.routes.byId.get(destId)!.code,
      fileSeq: (destId) => planFor(destId).fileSeq,
    },
    stampCentreRef: fileType === '31' ? { start: BigInt(file.centre_ref_start!), centreDate } : undefined,
    outputPath: (destId) => temporaryPathFor(path.join(centre.spool.outbound(destId), planFor(destId).name)),
    syncOutputs: false, // publishOutbounds fsyncs each before its rename, on the thread pool rather than blocking this thread
    onForward(destId, fields, info: ForwardInfo) {
      sent?.add(destId, fields, info);
      if (results && fields.centreRef && /^\d+$/.test(fields.centreRef)) results.push(returnedResult(fields));
    },
  }).catch(async (err: unknown) => {
    await sent?.abandon();
    throw err;
  });
  try {
    await sent?.settle();
    const answers = results ? await utilityAnswersFor(ctx, file, sender, new Set(skipRecordNos)) : undefined;
    if (answers) results!.push(...answers.results);
    if (results) await recordResults(centre.ledger, file.id, results, centreDate);
    const ids: string[] = answers?.outputs ?? [];
    const published: PublishedOutbound[] = [];
    for (const out of outputs) {
      const { sha256, size } = await sha256File(out.path);
      published.push({
        plan: planFor(out.destinationId),
        partner: ctx.routes.byId.get(out.destinationId)!,
        fileType: outType,
        tempPath: out.path,
        size,
        sha256,
        recordCount: out.recordCount,
        amountTotal: netAmount(out.totals),
        parentId: file.id,
        reason: `routed from ${file.id} (${file.name}): ${out.recordCount} records`,
      });
    }
    ids.push(...published.map((p) => p.plan.id));
    // The outputs' rows, what was sent (packed) and, when the caller asks, the source's 'routed':
    // one commit (the caller flushes it before the source leaves work/).
    await publishOutbounds(ctx, published, {
      lazy: true,
      async inTransaction(trx) {
        await sent?.finish(trx);
        await alsoCommit?.(trx, ids);
      },
    });
    return ids;
  } catch (err) {
    await Promise.all(outputs.map((o) => rm(o.path, { force: true })));
    throw err;
  }
}

/** What reconciliation keeps of a returned 33 record (the merchant's standard layout); masked card. */
function returnedResult(f: Record<string, string>): ReturnedResult {
  const amount = Number(f.amount);
  return {
    centreRef: f.centreRef!, resultCode: f.resultCode ?? '', amount: Number.isFinite(amount) ? Math.abs(amount) : undefined,
    merchantNo: f.merchantNo?.trim(), terminalId: f.terminalId?.trim(), slipNo: f.slipNo, useDate: f.useDate,
    maskedCardNo: f.cardNo ? maskCardNumber(f.cardNo) : undefined,
  };
}

function netAmount(totals: Record<string, number | string>): number | null {
  const n = (k: string) => Number(totals[k] ?? 0);
  if (totals.saleAmount !== undefined) return n('saleAmount') - n('refundAmount');
  if (totals.netAmount !== undefined) return n('netAmount');
  if (totals.amountTotal !== undefined) return n('amountTotal');
  return null;
}

export const route: Handler = async (input, ctx) => {
  const { centre } = ctx;
  const file = await centre.files.get(String(input.fileId));
  if (file?.state === 'routed') {
    // Done already; but a crash between the 'routed' commit and the delivery requests below would
    // leave its outputs waiting for the sweeper: ask again (deterministic job ids make it a no-op).
    await requestDeliveries(ctx, file.id, (await centre.files.list({ parentId: file.id, direction: 'out', state: 'ready' })).map((out) => out.id));
    return;
  }
  if (!file || file.state !== 'accepted' || !file.path) return; // done already
  await ensureRejectNotice(ctx, file);
  const sender = centre.partner(file.partner_id);
  const kind = routeKindOf(file.file_type ?? '');
  let outputs: string[] = [];
  let reason: string;
  let routed = false;
  if (kind === 'terminal') {
    const loaded = await loadTerminalFile(ctx, file);
    reason = `loaded ${loaded} terminal transactions`;
  } else if (kind === 'utility') {
    outputs = await routeUtilityFile(ctx, file, sender, new Set(await readRejects(ctx, file.id))); // writes its 32s itself (jobs/utility/billing.ts)
    reason = `utility ${file.file_type} into ${outputs.length} files`;
  } else if (kind === 'none') {
    reason = `nothing to route for file type ${file.file_type}`;
  } else {
    // 42 answers to a utility's validity check update the vault; 51/52 feed registration's R06
    const effects = await utilityEffectsOf(ctx, file, sender, new Set(await readRejects(ctx, file.id)));
    const routedReason = (outputIds: readonly string[]) => `routed into ${effects.length + outputIds.length} files`;
    const ids = await splitAndPublish(ctx, file, sender, (trx, outputIds) => centre.files.transition(file.id, 'accepted', 'routed', routedReason(outputIds), {}, trx));
    outputs = [...effects, ...ids];
    reason = routedReason(ids);
    routed = true;
  }
  if (!routed) await writeTransaction(centre.ledger, (trx) => centre.files.transition(file.id, 'accepted', 'routed', reason, {}, trx), { lazy: true });
  // 'routed' is durable before the file leaves work/: after a power loss the ledger must not
  // send a retried route to a path that is gone.
  await flushLedger(centre.ledger);
  const archived = await archiveFile(centre.spool, file.path, path.basename(file.path));
  await centre.files.update(file.id, { path: archived, archived_at: Date.now() }, { losable: true }); // lost: as a kill just before it (the file is in the archive)
  await rm(rejectsPath(ctx, file.id), { force: true });
  await requestDeliveries(ctx, file.id, outputs);
  centre.log.info({ fileId: file.id, partner: sender.id, fileType: file.file_type, outputs: outputs.length }, 'file routed');
};
