// sweep: the safety net under at-least-once queues. Whatever sits in a non-final state with no
// live process to move it (a crash, a lost Redis, a killed worker) gets its job again, at once:
// holders are recorded (jobs/recovery.ts), so no lease has to run out first. Job ids are
// deterministic, so re-enqueueing work that is already queued is a no-op. Leftovers of settled
// files (rejects lists, temporaries) are removed.
import type { Handler } from '../context.ts';
import { recoverOrphans, removeLeftovers } from '../recovery.ts';
import { hulftSendingLeaseMs } from '../../protocols/hulft/config.ts';

/** Temporaries untouched this long are nobody's (a writer keeps writing to its temporary). */
const TEMPORARY_AGE_MS = 10 * 60_000;

export const sweep: Handler = async (_input, ctx) => {
  const { centre } = ctx;
  const report = await recoverOrphans(ctx, { honourHolders: centre.config.queue === 'embedded' });
  const othersAtWork = report.held.some((h) => h.state === 'received' || h.state === 'accepted');
  await removeLeftovers(ctx, { temporariesBefore: Date.now() - TEMPORARY_AGE_MS, othersAtWork });
  // A push whose outcome stayed unknown (HULFT rc 4, no post-send report): the operator decides.
  for (const f of await centre.files.list({ state: 'unknown' })) {
    if (Date.now() - f.updated_at < 2 * hulftSendingLeaseMs(centre.config.hulft)) continue;
    centre.log.error({ alert: 'delivery-unknown-stale', fileId: f.id, partner: f.partner_id }, 'delivery outcome still unknown: check the partner (HULFT 配信履歴), then tsunagi resend or leave it');
  }
  if (report.recovered || report.requeued) centre.log.info({ recovered: report.recovered, requeued: report.requeued, held: report.held.length }, 'sweep re-enqueued stuck work');
};
