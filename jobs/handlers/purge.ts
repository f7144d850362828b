// purge: retention. Only archived files are ever removed, after the partner's (or the centre's)
// retention period; the ledger keeps their history and notes when the bytes went.
import { pruneEmptyArchiveDirs, removeArchived } from '../../spool/archive.ts';
import type { Handler } from '../context.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { purgeTerminalHistory } from '../jmanager/aggregates.ts';
import { addDays } from '../jmanager/periods.ts';
import { RestartStore, partialsRoot } from '../../protocols/zengin/restart-store.ts';
import { purgeOrphans } from '../../spool/orphans.ts';
import { pruneAudit } from '../../spool/ledger/audit.ts';

export interface PurgeResult {
  purged: number;
  bytes: number;
  /** Jmanager aggregate rows and terminal transactions past the retention */
  aggregates: number;
  transactions: number;
  /** 全銀 partial files that no restart resumed */
  partials: number;
  /** temporaries that no upload or publish will finish */
  orphans: number;
  /** audit rows past the audit retention, removed behind a checkpoint */
  auditRows: number;
}

/** A 全銀 partial file not resumed within this long is abandoned by its sender. */
export const PARTIAL_MAX_AGE_MS = 7 * 86400_000;

export async function purgeArchive(ctx: Parameters<Handler>[1], now = ctx.now().getTime()): Promise<PurgeResult> {
  const { centre } = ctx;
  let purged = 0;
  let bytes = 0;
  for (const partner of centre.config.partners) {
    const days = partner.retentionDays ?? centre.config.retentionDays;
    const cutoff = now - days * 86400_000;
    const rows = await centre.ledger
      .db('files')
      .where({ partner_id: partner.id })
      .whereNotNull('archived_at')
      .whereNull('purged_at')
      .where('archived_at', '<', cutoff)
      .select('id', 'path', 'size');
    for (const row of rows as { id: string; path: string | null; size: number | string | null }[]) {
      if (row.path) await removeArchived(row.path);
      await centre.files.update(row.id, { purged_at: now, path: null });
      purged++;
      bytes += Number(row.size ?? 0);
    }
  }
  await pruneEmptyArchiveDirs(centre.spool);
  if (purged) centre.log.info({ purged, bytes }, 'archive purged');
  // Terminal history follows the centre's retention: business dates older than that many days go.
  const history = await purgeTerminalHistory(centre.ledger, addDays(tokyoDate(new Date(now)), -centre.config.retentionDays));
  if (history.aggregates || history.transactions) centre.log.info(history, 'terminal history purged');
  // Real time: partial files carry file-system times.
  const partials = await new RestartStore(partialsRoot(centre.spool.work)).purgeOlderThan(PARTIAL_MAX_AGE_MS);
  if (partials) centre.log.info({ partials }, 'abandoned 全銀 partial files removed');
  const orphaned = await purgeOrphans(centre.spool, centre.config.partners.map((p) => p.id), centre.config.uploads.orphanGraceHours * 3600_000);
  if (orphaned.length) centre.log.info({ orphans: orphaned.length, paths: orphaned.slice(0, 20) }, 'orphaned temporary files removed');
  // The audit trail keeps its own, longer retention; a broken chain is never pruned (it throws,
  // and the job fails with the row that broke it).
  const audit = await pruneAudit(centre.ledger, now - centre.config.audit.retentionDays * 86400_000);
  if (audit.pruned) centre.log.info({ auditRows: audit.pruned, checkpoint: audit.checkpoint }, 'audit rows pruned behind a checkpoint');
  return { purged, bytes, ...history, partials, orphans: orphaned.length, auditRows: audit.pruned };
}

export const purge: Handler = async (_input, ctx) => {
  await purgeArchive(ctx);
};
