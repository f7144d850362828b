import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { formatTable, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';
import { formatTokyo } from '../time-format.ts';
import { hulftCodes, transfersOfFile } from '../../protocols/hulft/ledger.ts';

const usage = 'tsunagi show FILE_ID [--json] [--config FILE]';

export const command: Command = {
  summary: "one file's whole history: row, transitions, deliveries, derived files",
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one FILE_ID\nusage: ${usage}`);
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn' }) });
    try {
      const file = await centre.files.get(positionals[0]!);
      if (!file) throw new UsageError(`file ${positionals[0]} is not in the ledger`);
      const transitions = await centre.files.history(file.id);
      const deliveries = (await centre.ledger.db('deliveries').where({ file_id: file.id }).orderBy('id')).map((d: Record<string, unknown>) => ({
        ...d,
        started_at: Number(d.started_at),
        finished_at: d.finished_at === null ? null : Number(d.finished_at),
      }));
      const children = await centre.files.list({ parentId: file.id });
      // What HULFT told the jobs about this file's transfers (完了コード-詳細コード, count, size, msg0).
      const hulft = (await transfersOfFile(centre.ledger.db, file.id)).map((h) => ({ ...h, codes: hulftCodes(h) }));
      if (values.json) {
        printJson({ file, transitions, deliveries, children, hulft });
        return 0;
      }
      const out = process.stdout;
      for (const [k, v] of Object.entries(file)) out.write(`${k.padEnd(16)} ${k.endsWith('_at') ? formatTokyo(v as number) : (v ?? '')}\n`);
      out.write('\ntransitions\n');
      out.write(formatTable(transitions.map((t) => ({ ...t, at: formatTokyo(t.at), from: t.from_state ?? '-', to: t.to_state })), ['at', 'from', 'to', 'actor', 'reason']));
      if (deliveries.length) {
        out.write('\ndeliveries\n');
        out.write(formatTable(deliveries.map((d) => ({ ...d, started: formatTokyo(d.started_at as number) })), ['attempt', 'protocol', 'remote_name', 'started', 'outcome', 'bytes', 'error']));
      }
      if (hulft.length) {
        out.write('\nhulft\n');
        out.write(formatTable(hulft.map((h) => ({ ...h, at: formatTokyo(h.created_at), file_id: h.hulft_file_id, codes: h.codes || '-', count: h.record_count })), ['at', 'direction', 'file_id', 'host', 'rc', 'codes', 'count', 'size', 'msg0', 'outcome']));
      }
      if (children.length) {
        out.write('\nderived files\n');
        out.write(formatTable(children, ['id', 'partner_id', 'file_type', 'state', 'record_count', 'name']));
      }
    } finally {
      await centre.close();
    }
    return 0;
  },
};
