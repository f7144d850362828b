// Command outputs appear whole or not at all: written under a temporary name beside the target,
// renamed over it only once complete; on any failure the temporary file goes and the target (if
// there was one) is left as it was.
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';

export async function writeWhole<T>(outPath: string, write: (tempPath: string) => Promise<T>): Promise<T> {
  const temp = path.join(path.dirname(outPath), `.${path.basename(outPath)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  try {
    const result = await write(temp);
    await rename(temp, outPath);
    return result;
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * A reader that went away (`tsunagi validate --json | head`) is the end of the output, not an
 * error: stop quietly instead of printing EPIPE with a stack.
 */
export function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
}
