// Business dates: every date an operator gives or a job derives is a real calendar day, judged by
// the one centre clock (TSUNAGI_NOW when pinned), and never a day that has not begun yet.
import { tokyoDate } from '../spool/tree.ts';
import { parseYmd } from './jmanager/periods.ts';
import { centreClock } from './runtime.ts';

export class BusinessDateError extends Error {}

/** Today in Asia/Tokyo by the centre clock. */
export function centreToday(now: Date = centreClock()()): string {
  return tokyoDate(now);
}

/** `date` if it is a real YYYYMMDD that is not after today on the centre clock; else BusinessDateError. */
export function checkBusinessDate(date: unknown, now: Date, what = 'date'): string {
  if (typeof date !== 'string') throw new BusinessDateError(`${what}: expected a YYYYMMDD date`);
  try {
    parseYmd(date);
  } catch {
    throw new BusinessDateError(`${what} '${date}': expected a real YYYYMMDD date`);
  }
  const today = tokyoDate(now);
  if (date > today) throw new BusinessDateError(`${what} '${date}' is in the future (today is ${today} on the centre clock); a future business date would build files for days that have not happened`);
  return date;
}
