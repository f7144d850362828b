// An operator's resend: an outbound file that failed (or that a partner lost) goes out again,
// from the archive if it was archived, under the same name.
import { copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { publishFile, temporaryPathFor } from '../spool/atomic.ts';
import { jobId } from './context.ts';
import type { Engine } from './engine.ts';
import { supersedePendingAs2 } from '../protocols/as2/store.ts';

export class ResendError extends Error {}

export async function resendFile(engine: Engine, fileId: string, operator = process.env.USER ?? 'operator'): Promise<void> {
  const { centre } = engine.ctx;
  const file = await centre.files.get(fileId);
  if (!file) throw new ResendError(`file ${fileId} is not in the ledger`);
  if (file.direction !== 'out') throw new ResendError(`file ${fileId} is an inbound file; resend one of its outbound files (tsunagi show ${fileId})`);
  if (file.state !== 'failed' && file.state !== 'sent' && file.state !== 'unknown') throw new ResendError(`file ${fileId} is ${file.state}; only failed, sent or unknown files can be resent`);
  if (file.purged_at || !file.path) throw new ResendError(`file ${fileId}: its bytes were purged from the archive`);
  let current = file.path;
  const outboundPath = path.join(centre.spool.outbound(file.partner_id), file.name);
  if (current !== outboundPath) {
    const temp = temporaryPathFor(outboundPath);
    try {
      await copyFile(current, temp);
      await publishFile(temp, outboundPath);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    current = outboundPath;
  }
  if (centre.partner(file.partner_id).delivery.protocol === 'as2') await supersedePendingAs2(centre.ledger, file.partner_id, file.name); // a new Message-ID
  await centre.files.transition(file.id, file.state, 'ready', `resend requested by ${operator}`, { path: current, archived_at: null, attempts: 0, next_attempt_at: null });
  await engine.enqueue({ kind: 'deliver', input: { fileId: file.id, force: true, scheduled: true }, jobId: jobId('deliver', file.id, 'resend', Date.now()) });
}
