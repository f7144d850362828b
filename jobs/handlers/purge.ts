// purge: retention. Only archived files are ever removed, after the partner's (or the centre's)
// retention period; the ledger keeps their history and notes when the bytes went.
import { pruneEmptyArchiveDirs, removeArchived } from '../../spool/archive.ts';
import type { Handler } from '../context.ts';

export interface PurgeResult {
  purged: number;
  bytes: number;
}

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
      if (row.path) await removeArchived([row.path]);
      await centre.files.update(row.id, { purged_at: now, path: null });
      purged++;
      bytes += Number(row.size ?? 0);
    }
  }
  await pruneEmptyArchiveDirs(centre.spool);
  if (purged) centre.log.info({ purged, bytes }, 'archive purged');
  return { purged, bytes };
}

export const purge: Handler = async (_input, ctx) => {
  await purgeArchive(ctx);
};
