// reconcile: sent vs returned, terminal vs sales and file totals for one business date
// (input.date, YYYYMMDD; default yesterday in Tokyo, the last whole day): a CSV report under the
// spool and a summary in the ledger.
import { tokyoDate } from '../../spool/tree.ts';
import type { Handler } from '../context.ts';
import { addDays } from '../jmanager/periods.ts';
import { runReconciliation } from '../reconcile/run.ts';

export const reconcile: Handler = async (input, ctx) => {
  await runReconciliation(ctx, typeof input.date === 'string' ? input.date : addDays(tokyoDate(ctx.now()), -1));
};
