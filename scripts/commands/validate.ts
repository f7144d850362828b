// `tsunagi validate FILE`: checks one fixed-width file against its layout and the spec's rules.
import { existsSync } from 'node:fs';
import { encryptedFileHint } from '../../spool/encrypted-file.ts';
import { EXIT_OK, EXIT_REJECTED, UsageError, formatTable, parseCommandArgs, type Command } from '../cli-kit.ts';
import { ENCODINGS, FRAMINGS } from '../../formats/layouts.ts';
import { familyOfLayoutName, validateFile, type Encoding, type Framing } from '../../formats/index.ts';

const usage = 'tsunagi validate FILE [--layout NAME] [--encoding sjis|jis8|ebcdic-kana|ebcdic] [--framing none|crlf|lf] [--json]';

export function checkChoice<T extends string>(value: string | undefined, choices: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined;
  if (!choices.includes(value as T)) throw new UsageError(`${flag} must be one of ${choices.join(', ')}, not '${value}'\nusage: ${usage}`);
  return value as T;
}

export function checkLayoutName(name: string | undefined, flag: string): string | undefined {
  if (name === undefined) return undefined;
  try {
    familyOfLayoutName(name);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
  return name;
}

export const command: Command = {
  summary: 'check a fixed-width file: structure, fields, totals (exit 3 when not valid)',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      layout: { type: 'string' }, encoding: { type: 'string' }, framing: { type: 'string' }, json: { type: 'boolean' },
    }, usage);
    if (positionals.length !== 1) throw new UsageError(`give exactly one FILE\nusage: ${usage}`);
    const file = positionals[0]!;
    if (!existsSync(file)) throw new UsageError(`no such file: ${file}`);
    const encrypted = await encryptedFileHint(file);
    if (encrypted) throw new UsageError(encrypted);
    const report = await validateFile(file, {
      layout: checkLayoutName(values.layout, '--layout'),
      encoding: checkChoice<Encoding>(values.encoding, ENCODINGS, '--encoding'),
      framing: checkChoice<Framing>(values.framing, FRAMINGS, '--framing'),
      policy: 'record',
    });
    if (values.json) {
      for (const e of report.errors) process.stdout.write(JSON.stringify({ recordNo: e.recordNo, bytePos: e.bytePos, code: e.code, field: e.field }) + '\n');
    } else {
      const h = report.header;
      process.stdout.write(
        `${file}: ${h ? `fileType ${h.fileType}, sender ${h.senderCode}, fileSeq ${h.fileSeq}, ` : ''}layout ${report.family ?? '?'}, ${report.encoding ?? '?'}, ${report.framing ?? '?'}\n` +
        `data records ${report.recordCount}, accepted ${report.acceptedCount}, rejected ${report.rejectedCount}${report.fileRejected ? ' (file rejected)' : ''}, errors ${report.errorCount}\n`,
      );
      if (report.errors.length) process.stdout.write(formatTable(report.errors as unknown as Record<string, unknown>[], ['recordNo', 'bytePos', 'code', 'field', 'detail']));
      if (report.errorCount > report.errors.length) process.stdout.write(`(${report.errorCount - report.errors.length} more errors not listed)\n`);
    }
    return report.errorCount > 0 ? EXIT_REJECTED : EXIT_OK;
  },
};
