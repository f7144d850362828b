// Jmanager return cycles: D daily (the previous day), F five-day (1-5, 6-10, 11-15, 16-20, 21-25,
// 26-end of month), H half-month (1-15, 16-end), M month. Dates are YYYYMMDD calendar days.
export type Cycle = 'D' | 'F' | 'H' | 'M';
export const CYCLES: readonly Cycle[] = ['D', 'F', 'H', 'M'];

export interface Period {
  cycle: Cycle;
  from: string;
  to: string;
}

const DAY = 86_400_000;

export function parseYmd(ymd: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(ymd);
  const t = m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!) : NaN;
  // Date.UTC rolls 20261301 over into 2027-01-01: the year, month and day must all come back as given.
  const back = new Date(t);
  if (!m || Number.isNaN(t) || back.getUTCFullYear() !== +m[1]! || back.getUTCMonth() + 1 !== +m[2]! || back.getUTCDate() !== +m[3]!) throw new Error(`'${ymd}' is not a real YYYYMMDD date`);
  return t;
}

export function formatYmd(t: number): string {
  return new Date(t).toISOString().slice(0, 10).replaceAll('-', '');
}

export function addDays(ymd: string, days: number): string {
  return formatYmd(parseYmd(ymd) + days * DAY);
}

export function daysInMonth(year: number, month1: number): number {
  return new Date(Date.UTC(year, month1, 0)).getUTCDate();
}

/** The period of `cycle` that contains `day`. */
export function periodContaining(cycle: Cycle, day: string): Period {
  parseYmd(day);
  const ym = day.slice(0, 6);
  const d = +day.slice(6);
  const last = daysInMonth(+day.slice(0, 4), +day.slice(4, 6));
  const range = (a: number, b: number): Period => ({ cycle, from: ym + String(a).padStart(2, '0'), to: ym + String(b).padStart(2, '0') });
  switch (cycle) {
    case 'D':
      return { cycle, from: day, to: day };
    case 'F': {
      const start = Math.min(Math.floor((d - 1) / 5), 5) * 5 + 1;
      return range(start, start === 26 ? last : start + 4);
    }
    case 'H':
      return d <= 15 ? range(1, 15) : range(16, last);
    case 'M':
      return range(1, last);
  }
}

/** The latest period of `cycle` that ended before `runDate` (the run's own day is never complete). */
export function lastCompletedPeriod(cycle: Cycle, runDate: string): Period {
  const yesterday = addDays(runDate, -1);
  const p = periodContaining(cycle, yesterday);
  if (p.to === yesterday) return p;
  // Yesterday is inside an open period: the one before it ended on the day before that period began.
  return periodContaining(cycle, addDays(p.from, -1));
}
