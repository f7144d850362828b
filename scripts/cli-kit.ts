// Shared pieces of every CLI command: exit codes, usage errors, argument parsing and output.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const EXIT_OK = 0;
export const EXIT_USAGE = 2;
/** Finished, but some file or record was rejected or failed. */
export const EXIT_REJECTED = 3;

/** Bad usage or bad config: the CLI prints the message and exits 2. */
export class UsageError extends Error {}

export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs that turns unknown flags and missing values into a UsageError. */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${usage}`);
  }
}

/** A plain text table for people; scripts use --json. */
export function formatTable(rows: object[], columns: string[]): string {
  const cells = (rows as Record<string, unknown>[]).map((row) => columns.map((c) => (row[c] === null || row[c] === undefined ? "" : String(row[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}
