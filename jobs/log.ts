// Logging: pino JSON to stdout (pretty when stdout is a terminal). Every line passes through the
// card-number redaction on its way out, whatever logged it: messages, fields, error stacks.
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { redactCardNumbers, redactDeep } from '../formats/index.ts';

export { redactCardNumbers as redact };

/** A pino destination that redacts each serialized line before handing it on. */
export function redactingStream(target: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      const line = chunk.toString();
      let safe: string;
      try {
        safe = JSON.stringify(redactDeep(JSON.parse(line))) + '\n';
      } catch {
        safe = redactCardNumbers(line);
      }
      target.write(safe, () => done());
    },
  });
}

export interface LoggerOptions {
  level?: string;
  /** Where JSON lines go; default stdout (pretty-printed when it is a terminal). */
  destination?: NodeJS.WritableStream;
  name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  // Worker threads and child processes log where their parent does: they read TSUNAGI_LOG_TO.
  if (options.destination === process.stderr) process.env.TSUNAGI_LOG_TO = 'stderr';
  const toStderr = process.env.TSUNAGI_LOG_TO === 'stderr';
  const stream = toStderr ? process.stderr : process.stdout;
  const target =
    options.destination ?? (stream.isTTY ? pretty({ colorize: true, translateTime: 'SYS:standard', destination: toStderr ? 2 : 1, sync: true }) : stream);
  return pino(
    {
      level: options.level ?? process.env.TSUNAGI_LOG_LEVEL ?? 'info',
      name: options.name ?? 'tsunagi',
      // ISO time, not epoch ms: a 13-digit number could pass the Luhn check and be masked.
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { pid: process.pid },
    },
    redactingStream(target),
  );
}
