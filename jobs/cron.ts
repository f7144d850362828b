// Cron patterns for schedules (5 fields, Asia/Tokyo). Patterns that set both day-of-month and
// day-of-week are refused: node-cron ANDs them and BullMQ's parser ORs them.
const FIELD_RANGES: [number, number][] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];

function checkField(field: string, [min, max]: [number, number], which: string): string | null {
  for (const part of field.split(',')) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) return `${which} '${part}' is not a number, range, list or step`;
    const values = [m[2], m[3]].filter((v): v is string => v !== undefined).map(Number);
    if (values.some((v) => v < min || v > max)) return `${which} '${part}' is outside ${min}-${max}`;
    if (m[4] !== undefined && Number(m[4]) === 0) return `${which} '${part}' has a zero step`;
  }
  return null;
}

/** Returns why a pattern is refused, or null when it is fine. */
export function cronProblem(pattern: string): string | null {
  const fields = pattern.trim().split(/\s+/);
  if (fields.length !== 5) return `expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  const names = ['minute', 'hour', 'day-of-month', 'month', 'day-of-week'];
  for (let i = 0; i < 5; i++) {
    const problem = checkField(fields[i]!, FIELD_RANGES[i]!, names[i]!);
    if (problem) return problem;
  }
  if (fields[2] !== '*' && fields[4] !== '*') return 'sets both day-of-month and day-of-week, which node-cron and BullMQ read differently; use one of them';
  return null;
}
