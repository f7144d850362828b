// jmanager: builds the 71 aggregate files due on the run date (input.date, YYYYMMDD; default
// today in Tokyo) for every head office and cycle, once each, and requests their delivery.
import { tokyoDate } from '../../spool/tree.ts';
import type { Handler } from '../context.ts';
import { buildDueJmanagerFiles } from '../jmanager/build.ts';
import { checkBusinessDate } from '../business-day.ts';

export const jmanager: Handler = async (input, ctx) => {
  const date = input.date === undefined ? tokyoDate(ctx.now()) : checkBusinessDate(input.date, ctx.now(), 'jmanager date');
  await buildDueJmanagerFiles(ctx, date, { force: input.force === true });
};
