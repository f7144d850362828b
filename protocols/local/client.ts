// The `local` adapter: a partner that shares a disk or a mount with us. push copies into its folder
// under a temporary name and renames (protocols/staged-push.ts); pull copies from it.
import { copyFile, readdir, stat, rm, rename } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { assertSafeFileName } from '../../spool/landing.ts';
import { fsyncDir } from '../../spool/atomic.ts';
import { copyOutOfSpool, spoolFileSize } from '../../spool/encrypted-file.ts';
import type { InterruptedPush, ProtocolClient, PushOptions, RemoteFile, TransferResult } from '../contract.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import { remoteTemporaryName } from '../sftp/serial.ts';
import { resumeStagedPush, stagedPush, type RemoteFolder, type ResumeOutcome } from '../staged-push.ts';

export const localEndpointSchema = z.object({
  protocol: z.literal('local'),
  /** The partner's folder we push into. */
  path: z.string().min(1),
  /** The partner's folder we pull from (defaults to `path`). */
  pullPath: z.string().min(1).optional(),
});
export type LocalEndpoint = z.infer<typeof localEndpointSchema>;

/** A folder on this machine as a RemoteFolder: durable copies and renames (fsync file and folder). */
export function localFolder(dir: string): RemoteFolder {
  const at = (name: string) => path.join(dir, name);
  return {
    async size(name) {
      try {
        return (await stat(at(name))).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async upload(localPath, name) {
      // Decrypted here, as the bytes leave to the partner (an encrypted spool file streams out).
      await copyOutOfSpool(localPath, at(name));
    },
    async rename(from, to) {
      await rename(at(from), at(to));
      await fsyncDir(dir);
    },
    async remove(name) {
      await rm(at(name), { force: true });
    },
  };
}

export class LocalClient implements ProtocolClient {
  constructor(private readonly endpoint: LocalEndpoint) {}

  async push(localPath: string, remoteName: string, options: PushOptions = {}): Promise<TransferResult> {
    assertSafeFileName(remoteName);
    const size = await spoolFileSize(localPath);
    return stagedPush(localFolder(this.endpoint.path), localPath, size, remoteName, { tempName: options.tempName ?? remoteTemporaryName(remoteName), journal: options.journal, protocol: 'local' });
  }

  async resume(localPath: string, remoteName: string, interrupted: InterruptedPush): Promise<ResumeOutcome> {
    assertSafeFileName(remoteName);
    assertSafeFileName(interrupted.tempName);
    const size = await spoolFileSize(localPath);
    return resumeStagedPush(localFolder(this.endpoint.path), remoteName, size, interrupted.phase, interrupted.tempName, 'local');
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
