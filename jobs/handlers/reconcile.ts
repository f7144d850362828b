// reconcile: sent vs returned, terminal vs sales and file totals for one business date
// (input.date, YYYYMMDD; default yesterday in Tokyo, the last whole day): a CSV report under the
// spool and a summary in the ledger.
import { tokyoDate } from '../../spool/tree.ts';
import type { Handler } from '../context.ts';
import { addDays } from '../jmanager/periods.ts';
import { reconcileWithRechecks } from '../reconcile/run.ts';
import { checkBusinessDate } from '../business-day.ts';

export const reconcile: Handler = async (input, ctx) => {
  await reconcileWithRechecks(ctx, input.date === undefined ? addDays(tokyoDate(ctx.now()), -1) : checkBusinessDate(input.date, ctx.now(), 'reconciliation date'));
};
