// reconcile: sent vs returned vs authorised (issue 5).
import type { Handler } from '../context.ts';

export const reconcile: Handler = async (_input, ctx) => {
  ctx.centre.log.debug('reconcile: not available yet');
};
