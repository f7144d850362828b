import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { FILE_STATES, type FileState } from '../../spool/ledger/index.ts';
import { formatTable, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';
import { tokyoDayRange, formatTokyo } from '../time-format.ts';

const usage = 'tsunagi files [--partner ID] [--state STATE] [--date YYYYMMDD] [--direction in|out] [--limit N] [--json] [--config FILE]';

export const command: Command = {
  summary: 'list files in the ledger',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(
      argv,
      {
        config: { type: 'string' },
        partner: { type: 'string' },
        state: { type: 'string' },
        date: { type: 'string' },
        direction: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    if (values.state && !FILE_STATES.includes(values.state as FileState)) throw new UsageError(`--state: expected one of ${FILE_STATES.join(', ')}`);
    if (values.direction && values.direction !== 'in' && values.direction !== 'out') throw new UsageError('--direction: expected in or out');
    const range = values.date ? tokyoDayRange(values.date) : undefined;
    const limit = values.limit ? Number(values.limit) : undefined;
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new UsageError('--limit: expected a positive integer');
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn' }) });
    try {
      const rows = await centre.files.list({
        partnerId: values.partner,
        state: values.state as FileState | undefined,
        direction: values.direction as 'in' | 'out' | undefined,
        fromMs: range?.from,
        toMs: range?.to,
        limit,
      });
      if (values.json) {
        for (const row of rows) printJson(row);
      } else {
        process.stdout.write(
          formatTable(
            rows.map((r) => ({ ...r, created: formatTokyo(r.created_at), records: r.record_count ?? '', rejected: r.rejected_count ?? '' })),
            ['id', 'partner_id', 'direction', 'file_type', 'state', 'records', 'rejected', 'created', 'name'],
          ),
        );
      }
    } finally {
      await centre.close();
    }
    return 0;
  },
};
