// deliver: pushes a ready outbound file with the destination's protocol (or leaves it for the
// partner to pull), verifies it, and retries with exponential backoff; after the retry budget it
// marks the file failed with the reason and raises an alert in the log.
import path from 'node:path';
import { archiveFile } from '../../spool/archive.ts';
import { jobId, type Handler, type JobContext } from '../context.ts';
import { remoteNameFor } from '../clients.ts';
import { StateConflictError, writeTransaction, type FileRow } from '../../spool/ledger/index.ts';

export function backoffMs(ctx: JobContext, attempts: number): number {
  return ctx.centre.config.deliver.backoffSeconds * 1000 * 2 ** Math.max(0, attempts - 1);
}

/** Whether a ready file should go now: emergency lists always; others follow the partner's schedule. */
function dueNow(file: FileRow, scheduled: boolean, hasSchedule: boolean): boolean {
  return !hasSchedule || scheduled || file.file_type === '52';
}

export const deliver: Handler = async (input, ctx) => {
  const { centre } = ctx;
  const file = await centre.files.get(String(input.fileId));
  if (!file || file.direction !== 'out' || file.state !== 'ready') return; // done already, or not ours
  const partner = centre.partner(file.partner_id);
  if (partner.delivery.protocol === 'pull') return; // stays in outbound until the partner picks it up
  if (!dueNow(file, input.scheduled === true, partner.schedule !== undefined)) return;
  if (file.next_attempt_at && file.next_attempt_at > ctx.now().getTime() + 1000 && input.force !== true) return;

  const attempt = file.attempts + 1;
  try {
    await centre.files.transition(file.id, 'ready', 'sending', `push attempt ${attempt}`, { attempts: attempt });
  } catch (err) {
    if (err instanceof StateConflictError) return; // another job (a stalled twin, the sweeper's) took it first
    throw err;
  }
  const startedAt = Date.now();
  const [deliveryId] = await centre.ledger
    .db('deliveries')
    .insert({ file_id: file.id, attempt, protocol: partner.delivery.protocol, remote_name: file.name, started_at: startedAt })
    .returning('id');
  const id = typeof deliveryId === 'object' ? (deliveryId as { id: number }).id : deliveryId;
  let client;
  try {
    if (!file.path) throw new Error('the outbound file has no path in the ledger');
    client = await ctx.clientFor(partner);
    const result = await client.push(file.path, remoteNameFor(partner, file));
    if (file.size !== null && result.bytes !== file.size) throw new Error(`partner holds ${result.bytes} bytes, we sent ${file.size}`);
    // One transaction: a crash can never leave an 'ok' push on a file still 'sending' (which the
    // sweeper would push again).
    await writeTransaction(centre.ledger, async (trx) => {
      await trx('deliveries').where({ id }).update({ finished_at: Date.now(), outcome: 'ok', bytes: result.bytes });
      await centre.files.transition(file.id, 'sending', 'sent', `pushed by ${partner.delivery.protocol} as ${result.remoteName}`, {}, trx);
    });
    const archived = await archiveFile(centre.spool, file.path, `${file.id}@${file.partner_id}@${path.basename(file.path)}`);
    await centre.files.update(file.id, { path: archived, archived_at: Date.now() });
    centre.log.info({ fileId: file.id, partner: partner.id, fileName: file.name, bytes: result.bytes, attempt }, 'file delivered');
  } catch (err) {
    const reason = (err as Error).message;
    const recordError = (to: 'failed' | 'ready', why: string, changes: Partial<FileRow> = {}) =>
      writeTransaction(centre.ledger, async (trx) => {
        await trx('deliveries').where({ id }).update({ finished_at: Date.now(), outcome: 'error', error: reason.slice(0, 1000) });
        await centre.files.transition(file.id, 'sending', to, why, changes, trx);
      });
    if (attempt >= centre.config.deliver.maxAttempts) {
      await recordError('failed', `gave up after ${attempt} attempts: ${reason}`);
      centre.log.error({ alert: 'delivery-failed', fileId: file.id, partner: partner.id, attempts: attempt, reason }, 'delivery failed for good; resend with `tsunagi resend`');
    } else {
      const delay = backoffMs(ctx, attempt);
      await recordError('ready', `attempt ${attempt} failed: ${reason}`, { next_attempt_at: Date.now() + delay });
      centre.log.warn({ fileId: file.id, partner: partner.id, attempt, retryInMs: delay, reason }, 'delivery failed; will retry');
      await ctx.enqueue({ kind: 'deliver', input: { fileId: file.id, force: true, scheduled: input.scheduled === true }, jobId: jobId('deliver', file.id, attempt + 1), delayMs: delay });
    }
  } finally {
    await client?.close().catch(() => undefined);
  }
};

/** A scheduled delivery run for one partner: everything ready for it goes now. */
export const deliverScheduled: Handler = async (input, ctx) => {
  const partnerId = String(input.partnerId);
  for (const file of await ctx.centre.files.list({ partnerId, direction: 'out', state: 'ready' })) {
    await ctx.enqueue({ kind: 'deliver', input: { fileId: file.id, scheduled: true }, jobId: jobId('deliver', file.id, file.attempts + 1) });
  }
};

/** A partner downloaded one of its outbound files through our server: that is its delivery. */
export async function recordPickup(ctx: Pick<JobContext, 'centre'>, partnerId: string, fileName: string, bytes: number): Promise<void> {
  const { centre } = ctx;
  const file = (await centre.files.list({ partnerId, direction: 'out', state: 'ready' })).find((f) => f.name === fileName);
  if (!file) return; // picked up again, or not a ledger file
  if (file.size !== null && bytes !== file.size) {
    centre.log.warn({ fileId: file.id, partner: partnerId, bytes, size: file.size }, 'partial download is not a pickup');
    return;
  }
  const now = Date.now();
  await centre.ledger.db('deliveries').insert({ file_id: file.id, attempt: file.attempts + 1, protocol: 'pull', remote_name: fileName, started_at: now, finished_at: now, outcome: 'picked_up', bytes });
  await centre.files.transition(file.id, 'ready', 'sent', `picked up by ${partnerId} (${bytes} bytes)`, { attempts: file.attempts + 1 });
}
