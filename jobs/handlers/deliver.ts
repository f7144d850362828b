// deliver: pushes a ready outbound file with the destination's protocol (or leaves it for the
// partner to pull), verifies it, and retries with exponential backoff; after the retry budget it
// marks the file failed with the reason and raises an alert in the log.
//
// Exactly once as the partner sees it: the push tells its journal (the deliveries row) each step
// before it happens (protocols/staged-push.ts), and the row names the process that holds the push
// (host:pid:start, with a heartbeat). A file found 'sending' whose holder is gone (killed) is taken
// over at once and its push finished from what the partner holds, never repeated blindly.
import path from 'node:path';
import { spoolFileSize, withPlaintext } from '../../spool/encrypted-file.ts';
import type { Knex } from 'knex';
import { archiveFile } from '../../spool/archive.ts';
import { jobId, type Handler, type JobContext } from '../context.ts';
import { remoteNameFor } from '../clients.ts';
import { ACTOR, StateConflictError, holderState, isSelf, parseHolder, sharedCommit, writeTransaction, type FileRow, type Ledger } from '../../spool/ledger/index.ts';
import type { PartnerConfig } from '../config.ts';
import { PushDeferredError, PushOutcomeUnknownError, PushRefusedError, type ProtocolClient, type TransferResult } from '../../protocols/contract.ts';
import { remoteTemporaryName } from '../../protocols/sftp/serial.ts';
import { PushInDoubtError, type PushJournal, type PushPhase, type ResumeOutcome } from '../../protocols/staged-push.ts';

/**
 * Protocols whose clients read the outbound file through the spool's reader themselves
 * (decrypting as the bytes go out); the others get a short-lived plaintext copy.
 */
const READS_SPOOL_FILES = new Set(['as2', 'zengin', 'local']);

/** Runs a push with the bytes in the clear at the moment they go to the partner. */
function pushPlaintext<T>(partner: PartnerConfig, file: string, push: (localPath: string) => Promise<T>): Promise<T> {
  return READS_SPOOL_FILES.has(partner.delivery.protocol) ? push(file) : withPlaintext(file, push);
}

/** How often a running push renews its heartbeat. */
export const HEARTBEAT_MS = 10_000;
/** A holder on another host that has not renewed its heartbeat for this long is taken to be gone. */
export const HOLDER_STALE_MS = 120_000;

export interface DeliveryRow {
  id: number;
  file_id: string;
  attempt: number;
  started_at: number;
  outcome: string | null;
  phase: PushPhase | null;
  temp_name: string | null;
  holder: string | null;
  heartbeat_at: number | null;
}

/** Pushes running in this process (a 'sending' file held by us but not in here was orphaned by a failed job). */
const activePushes = new Set<string>();

export function backoffMs(ctx: JobContext, attempts: number): number {
  return ctx.centre.config.deliver.backoffSeconds * 1000 * 2 ** Math.max(0, attempts - 1);
}

/** Whether a ready file should go now: emergency lists always; others follow the partner's schedule. */
function dueNow(file: FileRow, scheduled: boolean, hasSchedule: boolean): boolean {
  return !hasSchedule || scheduled || file.file_type === '52';
}

export async function lastDelivery(db: Knex, fileId: string): Promise<DeliveryRow | undefined> {
  const row = await db('deliveries').where({ file_id: fileId }).orderBy('id', 'desc').first();
  if (!row) return undefined;
  return { ...row, id: Number(row.id), started_at: Number(row.started_at), heartbeat_at: row.heartbeat_at === null ? null : Number(row.heartbeat_at) } as DeliveryRow;
}

/**
 * Whether the process that holds a push is gone: released (null), dead on this host (pid not
 * running, or running something that started at another time), our own but not running here,
 * or on another host and silent for HOLDER_STALE_MS.
 */
export function pushHolderGone(row: Pick<DeliveryRow, 'holder' | 'heartbeat_at' | 'started_at' | 'file_id'>, now = Date.now()): boolean {
  if (!row.holder) return true;
  const holder = parseHolder(row.holder);
  if (isSelf(holder)) return !activePushes.has(row.file_id);
  const state = holderState(holder);
  if (state === 'unknown') return now - (row.heartbeat_at ?? row.started_at) > HOLDER_STALE_MS;
  return state === 'gone';
}

/** The deliveries row as the push's journal; `recorded` is what the row says already (no write for it). */
function journalFor(ledger: Ledger, deliveryId: number, recorded: { phase: PushPhase; tempName: string }): PushJournal {
  let last = recorded;
  return {
    async record(phase, tempName) {
      if (last.phase === phase && last.tempName === tempName) return;
      // Durable before the step it announces (sharing its commit and flush with concurrent pushes).
      await sharedCommit(ledger, (db) => db('deliveries').where({ id: deliveryId }).update({ phase, temp_name: tempName || null, heartbeat_at: Date.now() }));
      last = { phase, tempName };
    },
  };
}

function startHeartbeat(db: Knex, deliveryId: number): NodeJS.Timeout {
  const timer = setInterval(() => {
    void db('deliveries').where({ id: deliveryId }).update({ heartbeat_at: Date.now() }).catch(() => undefined);
  }, HEARTBEAT_MS);
  timer.unref();
  return timer;
}

/** The push is done (by this attempt, or by an interrupted one we finished): 'sent', then archived. */
async function recordSent(ctx: JobContext, file: FileRow, partner: PartnerConfig, deliveryId: number, result: TransferResult, reason: string): Promise<void> {
  const { centre } = ctx;
  // One commit (one statement on PostgreSQL): a crash can never leave an 'ok' push on a file still 'sending'. Durable
  // before the file leaves outbound/ (a takeover after a power loss must find it where the ledger says).
  const finished = { finished_at: Date.now(), outcome: 'ok', bytes: result.bytes, holder: null, temp_name: null, note: result.note?.slice(0, 255) ?? null };
  await sharedCommit(centre.ledger, (trx) => centre.files.transitionWith(file.id, 'sending', 'sent', reason, {}, { update: 'deliveries', id: deliveryId, changes: finished }, { trx }));
  const archived = await archiveFile(centre.spool, file.path!, `${file.id}@${file.partner_id}@${path.basename(file.path!)}`);
  await sharedCommit(centre.ledger, (trx) => centre.files.update(file.id, { path: archived, archived_at: Date.now() }, { trx }), { losable: true }); // lost: as a kill just before it
  centre.log.info({ fileId: file.id, partner: partner.id, fileName: file.name, bytes: result.bytes, note: result.note }, 'file delivered');
}

/**
 * A file found 'sending': if its holder lives, it is busy (undefined). Otherwise take the push over
 * (compare-and-set on the holder), look at the partner's side, and either record it delivered
 * (undefined) or, when nothing of it reached the partner, put it back to 'ready' and return it so
 * the caller pushes it now.
 */
async function takeOver(ctx: JobContext, file: FileRow, partner: PartnerConfig): Promise<FileRow | undefined> {
  const { centre } = ctx;
  const db = centre.ledger.db;
  const row = await lastDelivery(db, file.id);
  const now = Date.now();
  if (row && !pushHolderGone(row, now)) return undefined;
  if (row) {
    const claim = db('deliveries').where({ id: row.id });
    if (row.holder === null) claim.whereNull('holder');
    else claim.where('holder', row.holder);
    if ((await claim.update({ holder: ACTOR, heartbeat_at: now })) !== 1) return undefined; // another process took it first
  }
  activePushes.add(file.id);
  let client: ProtocolClient | undefined;
  try {
    let outcome: ResumeOutcome = { delivered: false, how: 'abandoned' };
    if (row?.phase) {
      client = await ctx.clientFor(partner);
      const resuming = client;
      if (resuming.resume) outcome = await pushPlaintext(partner, file.path!, (localPath) => resuming.resume!(localPath, remoteNameFor(partner, file), { phase: row.phase!, tempName: row.temp_name ?? '' }));
      else centre.log.warn({ fileId: file.id, partner: partner.id, protocol: partner.delivery.protocol }, 'this protocol cannot tell whether an interrupted push arrived; pushing again');
    }
    const was = row ? `attempt ${row.attempt} (held by ${row.holder ?? 'nobody'})` : 'a push with no attempt recorded';
    if (outcome.delivered) {
      const note = `${outcome.how === 'renamed' ? 'had completed' : 'finished'} after ${was} was interrupted${outcome.result.note ? `; ${outcome.result.note}` : ''}`;
      await recordSent(ctx, file, partner, row!.id, { ...outcome.result, note }, `pushed by ${partner.delivery.protocol} as ${outcome.result.remoteName} (${note})`);
      centre.log.warn({ fileId: file.id, partner: partner.id, how: outcome.how }, 'interrupted push finished, not repeated');
      return undefined;
    }
    await writeTransaction(centre.ledger, async (trx) => {
      if (row) await trx('deliveries').where({ id: row.id }).update({ finished_at: Date.now(), outcome: 'abandoned', holder: null, temp_name: null, note: 'interrupted before the rename; nothing at the partner' });
      // A kill is not the partner's failure: it does not use up the retry budget.
      await centre.files.transition(file.id, 'sending', 'ready', `${was} was interrupted before anything reached the partner; pushing again`, { attempts: Math.max(0, file.attempts - 1), next_attempt_at: null }, trx);
    });
    centre.log.warn({ fileId: file.id, partner: partner.id }, 'interrupted push had not reached the partner; pushing again');
    return await centre.files.get(file.id);
  } catch (err) {
    // Could not look at the partner: release the push and look again later.
    if (row) await db('deliveries').where({ id: row.id }).update({ holder: null, error: `resume: ${(err as Error).message}`.slice(0, 1000) }).catch(() => undefined);
    const delay = backoffMs(ctx, Math.max(1, file.attempts));
    centre.log.warn({ fileId: file.id, partner: partner.id, retryInMs: delay, reason: (err as Error).message }, 'could not settle an interrupted push; will look again');
    await ctx.enqueue({ kind: 'deliver', input: { fileId: file.id, force: true }, jobId: jobId('deliver', file.id, 'settle', row?.id ?? 0, Date.now()), delayMs: delay });
    return undefined;
  } finally {
    activePushes.delete(file.id);
    await client?.close().catch(() => undefined);
  }
}

/**
 * Temporaries that earlier failed attempts could not remove (the connection was gone): removed
 * now, so that nothing we wrote stays at the partner. Best effort; the journal keeps the name
 * until it is surely gone.
 */
async function removeLeftoverTemporaries(ctx: JobContext, file: FileRow, partner: PartnerConfig, client: ProtocolClient): Promise<void> {
  if (!client.resume) return;
  const db = ctx.centre.ledger.db;
  const rows = (await db('deliveries').where({ file_id: file.id }).whereIn('outcome', ['error', 'abandoned']).whereNotNull('temp_name').select('id', 'temp_name')) as { id: number; temp_name: string }[];
  for (const r of rows) {
    try {
      await pushPlaintext(partner, file.path!, (localPath) => client.resume!(localPath, remoteNameFor(partner, file), { phase: 'staging', tempName: r.temp_name }));
      await db('deliveries').where({ id: r.id }).update({ temp_name: null });
    } catch (err) {
      ctx.centre.log.warn({ fileId: file.id, tempName: r.temp_name, reason: (err as Error).message }, 'could not remove an earlier temporary at the partner');
    }
  }
}

/** At most this many pushes of one job (a route's outputs, each to another partner) run at once. */
const PUSHES_AT_ONCE = 8;

/**
 * `{ fileId }`: one outbound file. `{ fileIds }`: the files one job made (a route's outputs, each
 * for another partner), pushed side by side so that their ledger steps share commits and flushes
 * (sharedCommit); each goes exactly as a job of its own would. A failure of one fails the job
 * after the others are done: the retry finds those sent and leaves them.
 */
export const deliver: Handler = async (input, ctx) => {
  if (!Array.isArray(input.fileIds)) return deliverFile(input, ctx);
  const ids = input.fileIds.map(String);
  const failures: unknown[] = [];
  let next = 0;
  const lane = async () => {
    while (next < ids.length) {
      const fileId = ids[next++]!;
      await deliverFile({ ...input, fileIds: undefined, fileId }, ctx).catch((err: unknown) => void failures.push(err));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PUSHES_AT_ONCE, ids.length) }, lane));
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `${failures.length} of ${ids.length} deliveries failed: ${(failures[0] as Error).message}`);
};

const deliverFile: Handler = async (input, ctx) => {
  const { centre } = ctx;
  let file = await centre.files.get(String(input.fileId));
  if (!file || file.direction !== 'out') return;
  const partner = centre.partner(file.partner_id);
  let force = input.force === true;
  if (file.state === 'sending') {
    file = await takeOver(ctx, file, partner);
    if (!file) return; // held by a live process, or finished now
    force = true;
  }
  if (file.state !== 'ready') return; // done already, or not ours
  if (partner.delivery.protocol === 'pull') return; // stays in outbound until the partner picks it up
  if (!dueNow(file, input.scheduled === true, partner.schedule !== undefined)) return;
  if (file.next_attempt_at && file.next_attempt_at > ctx.now().getTime() + 1000 && !force) return;

  const attempt = file.attempts + 1;
  const startedAt = Date.now();
  const remoteName = remoteNameFor(partner, file);
  // Recorded with the attempt, before anything is written at the partner: a kill from here on
  // leaves a row that names the temporary to look for.
  // (全銀 and HULFT have no temporary name at the partner: the protocol itself commits the file.)
  const tempName = partner.delivery.protocol === 'zengin' || partner.delivery.protocol === 'hulft' ? '' : remoteTemporaryName(remoteName);
  let id: number;
  try {
    // The state change and the row that names its holder commit together: a 'sending' file
    // always has a deliveries row saying who pushes it. Durable before anything goes to the
    // partner (one commit and flush shared with the other pushes starting now).
    const row = { file_id: file.id, attempt, protocol: partner.delivery.protocol, remote_name: file.name, started_at: startedAt, holder: ACTOR, heartbeat_at: startedAt, phase: 'staging', temp_name: tempName || null };
    id = (await sharedCommit(centre.ledger, (trx) => centre.files.transitionWith(file.id, 'ready', 'sending', `push attempt ${attempt}`, { attempts: attempt }, { insert: 'deliveries', row }, { trx })))!;
  } catch (err) {
    if (err instanceof StateConflictError) return; // another job (a stalled twin, the sweeper's) took it first
    throw err;
  }
  activePushes.add(file.id);
  const heartbeat = startHeartbeat(centre.ledger.db, id);
  let client: ProtocolClient | undefined;
  try {
    if (!file.path) throw new Error('the outbound file has no path in the ledger');
    const localSize = await spoolFileSize(file.path);
    if (file.size !== null && localSize !== file.size) throw new Error(`the outbound file holds ${localSize} bytes, the ledger says ${file.size}`);
    client = await ctx.clientFor(partner);
    await removeLeftoverTemporaries(ctx, file, partner, client);
    const pushing = client;
    const result = await pushPlaintext(partner, file.path, (localPath) =>
      pushing.push(localPath, remoteName, { tempName: tempName || undefined, journal: journalFor(centre.ledger, id, { phase: 'staging', tempName }), attempt: { fileId: file.id, attempt, deliveryId: id, fileType: file.file_type } }),
    );
    await recordSent(ctx, file, partner, id, result, `pushed by ${partner.delivery.protocol} as ${result.remoteName}${result.note ? ` (${result.note})` : ''}`);
  } catch (err) {
    const reason = (err as Error).message;
    if (err instanceof PushInDoubtError) {
      // The rename went unanswered: the partner may hold the file. Stay 'sending', release the
      // push, and settle it from the partner's side before anything is pushed again.
      await centre.ledger.db('deliveries').where({ id }).update({ holder: null, error: reason.slice(0, 1000) });
      const delay = backoffMs(ctx, attempt);
      centre.log.warn({ fileId: file.id, partner: partner.id, attempt, retryInMs: delay, reason }, 'push in doubt; will settle it from the partner side');
      await ctx.enqueue({ kind: 'deliver', input: { fileId: file.id, force: true }, jobId: jobId('deliver', file.id, 'settle', id), delayMs: delay });
      return;
    }
    const recordError = (to: 'failed' | 'ready', why: string, changes: Partial<FileRow> = {}) =>
      writeTransaction(centre.ledger, async (trx) => {
        await trx('deliveries').where({ id }).update({ finished_at: Date.now(), outcome: 'error', error: reason.slice(0, 1000), holder: null });
        await centre.files.transition(file.id, 'sending', to, why, changes, trx);
      });
    if (err instanceof PushDeferredError) {
      // The partner did not answer before anything was sent: not an attempt. The file stays ready
      // for the sweeper (or the partner's next scheduled run), so a cycle does not wait on a partner that is down.
      const delay = backoffMs(ctx, 1);
      await writeTransaction(centre.ledger, async (trx) => {
        await trx('deliveries').where({ id }).update({ finished_at: Date.now(), outcome: 'deferred', error: reason.slice(0, 1000), holder: null });
        await centre.files.transition(file.id, 'sending', 'ready', `not attempted: ${reason}`, { attempts: file.attempts, next_attempt_at: Date.now() + delay }, trx);
      });
      centre.log.warn({ fileId: file.id, partner: partner.id, retryInMs: delay, reason }, 'partner not answering; delivery deferred');
    } else if (err instanceof PushOutcomeUnknownError) {
      // It may still arrive: resending could deliver it twice. The protocol's own report settles it.
      await writeTransaction(centre.ledger, async (trx) => {
        await trx('deliveries').where({ id }).update({ finished_at: Date.now(), outcome: 'unknown', error: reason.slice(0, 1000), holder: null });
        await centre.files.transition(file.id, 'sending', 'unknown', reason, {}, trx);
      });
      centre.log.warn({ alert: 'delivery-unknown', fileId: file.id, partner: partner.id, attempt, reason }, 'delivery outcome unknown; not resent automatically');
    } else if (err instanceof PushRefusedError || attempt >= centre.config.deliver.maxAttempts) {
      await recordError('failed', err instanceof PushRefusedError ? `refused: ${reason}` : `gave up after ${attempt} attempts: ${reason}`);
      centre.log.error({ alert: 'delivery-failed', fileId: file.id, partner: partner.id, attempts: attempt, reason }, 'delivery failed for good; resend with `tsunagi resend`');
    } else {
      const delay = backoffMs(ctx, attempt);
      await recordError('ready', `attempt ${attempt} failed: ${reason}`, { next_attempt_at: Date.now() + delay });
      centre.log.warn({ fileId: file.id, partner: partner.id, attempt, retryInMs: delay, reason }, 'delivery failed; will retry');
      await ctx.enqueue({ kind: 'deliver', input: { fileId: file.id, force: true, scheduled: input.scheduled === true }, jobId: jobId('deliver', file.id, attempt + 1), delayMs: delay });
    }
  } finally {
    clearInterval(heartbeat);
    activePushes.delete(file.id);
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
