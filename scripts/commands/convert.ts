// `tsunagi convert`: re-lay a file into another layout, code page or framing.
import { existsSync } from 'node:fs';
import { encryptedFileHint } from '../../spool/encrypted-file.ts';
import { EXIT_OK, EXIT_REJECTED, UsageError, parseCommandArgs, type Command } from '../cli-kit.ts';
import { ENCODINGS, FRAMINGS } from '../../formats/layouts.ts';
import { convertFile, FormatError, type Encoding, type Framing } from '../../formats/index.ts';
import { checkChoice, checkLayoutName } from './validate.ts';
import { writeWhole } from '../lib/whole-output.ts';

const usage = 'tsunagi convert IN --from LAYOUT --to LAYOUT --out OUT [--in-encoding E] [--in-framing F] [--out-encoding E] [--out-framing F]';

export const command: Command = {
  summary: 'convert a file between layouts, code pages and framings (trailer recomputed)',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' },
      'in-encoding': { type: 'string' }, 'in-framing': { type: 'string' }, 'out-encoding': { type: 'string' }, 'out-framing': { type: 'string' },
    }, usage);
    if (positionals.length !== 1) throw new UsageError(`give exactly one input file\nusage: ${usage}`);
    for (const flag of ['from', 'to', 'out'] as const) if (!values[flag]) throw new UsageError(`--${flag} is required\nusage: ${usage}`);
    const input = positionals[0]!;
    if (!existsSync(input)) throw new UsageError(`no such file: ${input}`);
    const encrypted = await encryptedFileHint(input);
    if (encrypted) throw new UsageError(encrypted);
    try {
      const r = await writeWhole(values.out!, (temp) => convertFile(input, {
        from: checkLayoutName(values.from, '--from'), to: checkLayoutName(values.to, '--to')!,
        inEncoding: checkChoice<Encoding>(values['in-encoding'], ENCODINGS, '--in-encoding'),
        inFraming: checkChoice<Framing>(values['in-framing'], FRAMINGS, '--in-framing'),
        outEncoding: checkChoice<Encoding>(values['out-encoding'], ENCODINGS, '--out-encoding'),
        outFraming: checkChoice<Framing>(values['out-framing'], FRAMINGS, '--out-framing'),
      }, temp));
      process.stdout.write(`wrote ${values.out}: ${r.records} records (${r.dataRecords} data) as ${r.layout}, ${r.encoding}, ${r.framing}\n`);
      return EXIT_OK;
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      process.stderr.write(`tsunagi convert: ${err.code} ${err.message}\n`);
      return EXIT_REJECTED;
    }
  },
};
