import { createHash } from 'node:crypto';
import { createSpoolReadStream } from './encrypted-file.ts';

/** SHA-256 and size of a spool file's content (its plaintext, when it is encrypted at rest). */
export async function sha256File(p: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of await createSpoolReadStream(p, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
