import { ENCODINGS } from '../../jobs/config.ts';
import { hulftFormatItems } from '../../protocols/hulft/defs.ts';
import { formatTable, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi hulft-format LAYOUT [--encoding E] [--json]';

export const command: Command = {
  summary: 'list a layout\'s items as HULFT フォーマット情報 (C→X, K→N or M, N→9, P→P, Z→S) for format transfer',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { encoding: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw new UsageError(`expected one LAYOUT\nusage: ${usage}`);
    if (values.encoding !== undefined && !(ENCODINGS as readonly string[]).includes(values.encoding)) throw new UsageError(`--encoding: one of ${ENCODINGS.join(', ')}`);
    let items;
    try {
      items = hulftFormatItems(positionals[0]!, values.encoding);
    } catch (err) {
      throw new UsageError(`unknown layout '${positionals[0]}': ${(err as Error).message}`);
    }
    if (values.json) {
      for (const i of items) printJson(i);
      return 0;
    }
    process.stdout.write(formatTable(items.map((i) => ({ record: i.recordType, layout: i.layout, item: i.field, offset: i.offset, length: i.length, type: i.ourType, hulft: i.hulftType })), ['record', 'layout', 'item', 'offset', 'length', 'type', 'hulft']));
    return 0;
  },
};
