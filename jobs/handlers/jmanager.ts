// jmanager: builds the 71 aggregate files per head office and cycle (issue 5).
import type { Handler } from '../context.ts';

export const jmanager: Handler = async (_input, ctx) => {
  ctx.centre.log.debug('jmanager: no head office aggregates configured yet');
};
