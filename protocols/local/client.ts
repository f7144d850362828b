// The `local` adapter: a partner that shares a disk or a mount with us. push copies into its folder
// under a temporary name and renames; pull copies from it.
import { copyFile, readdir, stat, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { assertSafeFileName } from '../../spool/landing.ts';
import { publishFile } from '../../spool/atomic.ts';
import type { ProtocolClient, RemoteFile, TransferResult } from '../contract.ts';
import { isTemporaryName } from '../../spool/tree.ts';

export const localEndpointSchema = z.object({
  protocol: z.literal('local'),
  /** The partner's folder we push into. */
  path: z.string().min(1),
  /** The partner's folder we pull from (defaults to `path`). */
  pullPath: z.string().min(1).optional(),
});
export type LocalEndpoint = z.infer<typeof localEndpointSchema>;

export class LocalClient implements ProtocolClient {
  constructor(private readonly endpoint: LocalEndpoint) {}

  async push(localPath: string, remoteName: string): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const finalPath = path.join(this.endpoint.path, remoteName);
    // One temporary name per remote name: a push interrupted mid-copy (a killed worker) leaves its
    // temporary behind, and the retry, under the same name, overwrites and renames it away.
    const temp = path.join(this.endpoint.path, `.${remoteName}.part`);
    try {
      await copyFile(localPath, temp);
      await publishFile(temp, finalPath);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    const [sent, landed] = await Promise.all([stat(localPath), stat(finalPath)]);
    if (sent.size !== landed.size) throw new Error(`local push ${remoteName}: size ${landed.size} at the partner, ${sent.size} sent`);
    return { remoteName, bytes: landed.size };
  }

  async pull(remoteName: string, localPath: string): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const source = path.join(this.endpoint.pullPath ?? this.endpoint.path, remoteName);
    await copyFile(source, localPath);
    const [a, b] = await Promise.all([stat(source), stat(localPath)]);
    if (a.size !== b.size) throw new Error(`local pull ${remoteName}: got ${b.size} of ${a.size} bytes`);
    return { remoteName, bytes: b.size };
  }

  async list(): Promise<RemoteFile[]> {
    const dir = this.endpoint.pullPath ?? this.endpoint.path;
    const entries = await readdir(dir, { withFileTypes: true });
    const files: RemoteFile[] = [];
    for (const e of entries) {
      if (!e.isFile() || isTemporaryName(e.name)) continue;
      const s = await stat(path.join(dir, e.name));
      files.push({ name: e.name, size: s.size, modifiedAt: s.mtimeMs });
    }
    return files.sort((a, b) => a.name.localeCompare(b.name));
  }

  async close(): Promise<void> {}
}
