// tsunagi hulft-sent (§2.5): HULFT's 配信後ジョブ (JOBID / EJOBID) reports how a transfer ended.
// It finds the attempt by msg0 (else by the file name utlsend was given), keeps the 完了コード and
// 詳細コード, and settles a file whose push timed out ('unknown'): sent on 0, failed otherwise.
// Running it twice changes nothing the second time.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { archiveFile } from '../../spool/archive.ts';
import { StateConflictError, writeTransaction, type FilesRepository, type Ledger } from '../../spool/ledger/index.ts';
import type { SpoolTree } from '../../spool/tree.ts';
import type { HulftPartner } from './client.ts';
import { normaliseTransfer, updateTransfer, type HulftTransferRow } from './ledger.ts';
import { HulftJobError } from './receive.ts';

export interface SentJobArgs {
  fileId: string;
  host: string;
  file?: string;
  status: string;
  detail?: string;
  count?: string;
  msg0?: string;
  vars?: Record<string, string>;
}

export interface SentDeps {
  ledger: Ledger;
  files: FilesRepository;
  spool: SpoolTree;
  log: Logger;
  partners: HulftPartner[];
  sendDir: string;
  /** How long to wait for a push that just timed out to reach 'unknown' (the deliver job is about to record it). */
  waitForUnknownMs?: number;
}

export interface SentOutcome {
  outcome: 'sent' | 'failed' | 'recorded' | 'not-found';
  fileId?: string;
}

async function findAttempt(ledger: Ledger, partnerId: string, args: SentJobArgs): Promise<HulftTransferRow | undefined> {
  const base = () => ledger.db('hulft_transfers').where({ direction: 'send', partner_id: partnerId, hulft_file_id: args.fileId }).orderBy('id', 'desc');
  let row = args.msg0 ? await base().where({ msg0: args.msg0 }).first() : undefined;
  if (!row && args.file) row = await base().where({ hulft_file_name: args.file }).first();
  return row ? normaliseTransfer(row) : undefined;
}

export async function settleHulftSend(deps: SentDeps, args: SentJobArgs): Promise<SentOutcome> {
  const { ledger, files, log } = deps;
  const partner = deps.partners.find((p) => p.hulft.host.toUpperCase() === args.host.toUpperCase() && p.hulft.send.some((d) => d.fileId === args.fileId));
  if (!partner) throw new HulftJobError(2, `no partner with HULFT host '${args.host}' has a send definition for file ID '${args.fileId}'`);
  const step = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof HulftJobError) throw err;
      throw new HulftJobError(5, `ledger: ${(err as Error).message}`);
    }
  };
  const attempt = await step(() => findAttempt(ledger, partner.id, args));
  if (!attempt) {
    log.warn({ partner: partner.id, fileId: args.fileId, msg0: args.msg0, file: args.file }, 'hulft-sent: no send attempt of tsunagi matches (sent by someone else?)');
    return { outcome: 'not-found' };
  }
  const detail = args.detail ?? null;
  if (attempt.status !== args.status || attempt.detail !== detail) {
    await step(() =>
      updateTransfer(ledger.db, attempt.id, {
        status: args.status,
        detail,
        record_count: args.count !== undefined && /^\d+$/.test(args.count) ? Number(args.count) : attempt.record_count,
        job_vars: args.vars && Object.keys(args.vars).length ? JSON.stringify(args.vars).slice(0, 2000) : attempt.job_vars,
      }),
    );
  }
  if (!attempt.file_id) return { outcome: 'recorded' };
  let file = await step(() => files.get(attempt.file_id!));
  // utlsend just returned 4 and the deliver job is recording 'unknown': wait for it, then settle.
  const until = Date.now() + (deps.waitForUnknownMs ?? 15_000);
  while (file && file.state === 'sending' && Date.now() < until) {
    const row = normaliseTransfer(await step(() => ledger.db('hulft_transfers').where({ id: attempt.id }).first()));
    // Still inside utlsend, or settled by it: the client reads the codes recorded above itself.
    if (row.outcome !== 'unknown') break;
    await new Promise((r) => setTimeout(r, 200));
    file = await step(() => files.get(attempt.file_id!));
  }
  if (!file || file.state !== 'unknown') return { outcome: 'recorded', fileId: attempt.file_id };
  const codes = `${args.status}-${detail ?? ''}`;
  try {
    if (args.status === '0') {
      await step(() =>
        writeTransaction(ledger, async (trx) => {
          if (attempt.delivery_id) await trx('deliveries').where({ id: attempt.delivery_id }).update({ finished_at: Date.now(), outcome: 'ok', bytes: attempt.size });
          await files.transition(file!.id, 'unknown', 'sent', `HULFT post-send job reported ${codes} (${attempt.msg0 ?? 'no msg0'})`, {}, trx);
        }),
      );
      await updateTransfer(ledger.db, attempt.id, { outcome: 'ok', finished_at: Date.now() });
      if (file.path) {
        const archived = await archiveFile(deps.spool, file.path, `${file.id}@${file.partner_id}@${path.basename(file.path)}`);
        await files.update(file.id, { path: archived, archived_at: Date.now() });
      }
      await removeLinks(ledger, deps.sendDir, file.id);
      log.info({ fileId: file.id, partner: partner.id, codes, msg0: attempt.msg0 }, 'HULFT send settled: sent');
      return { outcome: 'sent', fileId: file.id };
    }
    await step(() =>
      writeTransaction(ledger, async (trx) => {
        if (attempt.delivery_id) await trx('deliveries').where({ id: attempt.delivery_id }).update({ finished_at: Date.now(), outcome: 'error', error: `HULFT ${codes}` });
        await files.transition(file!.id, 'unknown', 'failed', `HULFT post-send job reported ${codes} (${attempt.msg0 ?? 'no msg0'})`, {}, trx);
      }),
    );
    await updateTransfer(ledger.db, attempt.id, { outcome: 'error', finished_at: Date.now() });
    log.error({ alert: 'delivery-failed', fileId: file.id, partner: partner.id, codes }, 'HULFT send settled: failed; resend with `tsunagi resend`');
    return { outcome: 'failed', fileId: file.id };
  } catch (err) {
    if (err instanceof HulftJobError && err.message.includes('cannot move')) return { outcome: 'recorded', fileId: file.id };
    if (err instanceof StateConflictError) return { outcome: 'recorded', fileId: file.id };
    throw err;
  }
}

async function removeLinks(ledger: Ledger, sendDir: string, fileId: string): Promise<void> {
  const rows = (await ledger.db('hulft_transfers').where({ direction: 'send', file_id: fileId }).select('hulft_file_name')) as { hulft_file_name: string | null }[];
  for (const r of rows) if (r.hulft_file_name && path.dirname(r.hulft_file_name) === path.resolve(sendDir)) await rm(r.hulft_file_name, { force: true });
}
