// tsunagi hulft-received (§4): HULFT's 集信後ジョブ hands over a file it received, and tsunagi
// lands it exactly once. Re-running the job (HULFT's retry, an operator) after a crash at any step
// converges: the temporary is per run, the final name is derived from the bytes, and a unique
// key (partner, file ID, sha256) in the ledger lets exactly one run insert the row.
import { createHash, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir } from '../../spool/atomic.ts';
import { LandingRefused, assertFreeSpace, landPreparedFile, sizeRefusal, type LandingLimits } from '../../spool/landing.ts';
import { appendAudit } from '../../spool/ledger/audit.ts';
import { ACTOR, isUniqueViolation, reserveInboundNumbers, writeTransaction, type Ledger } from '../../spool/ledger/index.ts';
import { newFileId } from '../../spool/claim.ts';
import type { SpoolTree } from '../../spool/tree.ts';
import type { HulftPartner } from './client.ts';
import type { HulftReceiveDef } from './config.ts';
import { findGaijiSubstitutes } from './charset.ts';
import { insertTransfer, receiveKey } from './ledger.ts';

/** How landed files are named in inbound: <FILEID>.<sha256[0:16]>. */
export function hulftLandingName(fileId: string, sha256: string): string {
  return `${fileId}.${sha256.slice(0, 16)}`;
}

export function isHulftLandingName(name: string): boolean {
  return /^[A-Z0-9_]{1,50}\.[0-9a-f]{16}$/.test(name);
}

/** The scan leaves a landing name without a ledger row alone this long (the job is finishing it). */
export const HULFT_ORPHAN_GRACE_MS = 10 * 60_000;

/** Exit statuses of the job commands (§4). */
export const HULFT_EXIT = { ok: 0, usage: 2, missing: 4, failure: 5 } as const;

export class HulftJobError extends Error {
  constructor(
    readonly exitCode: 2 | 4 | 5,
    message: string,
  ) {
    super(message);
  }
}

export interface ReceivedJobArgs {
  fileId: string;
  file: string;
  host: string;
  status?: string;
  detail?: string;
  count?: string;
  msg0?: string;
  failed?: boolean;
  /** The other job variables ($SDATE, $EDATE, $STIME, $MSG1..5, $MSGL0..1), kept as they came. */
  vars?: Record<string, string>;
}

export interface ReceiveDeps {
  ledger: Ledger;
  spool: SpoolTree;
  log: Logger;
  partners: (HulftPartner & { hulft: HulftPartner['hulft'] })[];
  /** A partner's size limit and the disk's free-space reserve, as on every listener. */
  limitsFor?(partnerId: string): LandingLimits;
}

export interface ReceiveOutcome {
  outcome: 'landed' | 'already-landed' | 'failure-recorded';
  partnerId: string;
  fileId?: string;
  path?: string;
  sha256?: string;
  gaiji?: number;
}

/** Which partner and receive definition a (file ID, host) pair names. */
export function findReceiveDef(partners: ReceiveDeps['partners'], fileId: string, host: string): { partner: ReceiveDeps['partners'][number]; def: HulftReceiveDef } | undefined {
  for (const partner of partners) {
    if (partner.hulft.host.toUpperCase() !== host.toUpperCase()) continue;
    const def = partner.hulft.receive.find((d) => d.fileId === fileId);
    if (def) return { partner, def };
  }
  return undefined;
}

function numberOrNull(v: string | undefined): number | null {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
}

export async function landHulftReceipt(deps: ReceiveDeps, args: ReceivedJobArgs): Promise<ReceiveOutcome> {
  const { ledger, spool, log } = deps;
  const found = findReceiveDef(deps.partners, args.fileId, args.host);
  if (!found) throw new HulftJobError(2, `no partner with HULFT host '${args.host}' has a receive definition for file ID '${args.fileId}'`);
  const { partner, def } = found;
  const common = {
    direction: 'receive' as const,
    partner_id: partner.id,
    hulft_file_id: def.fileId,
    host: args.host,
    msg0: args.msg0 ?? null,
    hulft_file_name: args.file,
    status: args.status ?? null,
    detail: args.detail ?? null,
    record_count: numberOrNull(args.count),
    job_vars: args.vars && Object.keys(args.vars).length ? JSON.stringify(args.vars).slice(0, 2000) : null,
  };

  // 集信異常時ジョブ (or a non-zero $STATUS): record it; ABNORMAL decides what happens to the file.
  if (args.failed || (args.status !== undefined && args.status !== '0')) {
    await ledgerStep(() => insertTransfer(ledger.db, { ...common, outcome: 'receive_failed', finished_at: Date.now() }));
    log.warn({ event: 'hulft.receive_failed', partner: partner.id, fileId: def.fileId, host: args.host, status: args.status, detail: args.detail, msg0: args.msg0 }, 'hulft.receive_failed: HULFT reports a failed receive');
    return { outcome: 'failure-recorded', partnerId: partner.id };
  }

  // 1. Only a regular file in the definition's own folder.
  const source = path.resolve(args.file);
  if (path.dirname(source) !== path.dirname(path.resolve(def.fileName))) throw new HulftJobError(2, `${args.file} is outside ${path.dirname(def.fileName)}, the folder of ${def.fileId}'s FILENAME`);
  const st = await lstat(source).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new HulftJobError(4, `${args.file} is not there: nothing to land`);
    throw new HulftJobError(5, `${args.file}: ${err.message}`);
  });
  if (st.isSymbolicLink()) throw new HulftJobError(2, `${args.file} is a symbolic link: refused`);
  if (!st.isFile()) throw new HulftJobError(2, `${args.file} is not a regular file: refused`);

  // 2. This partner's size limit and the disk's reserve, as on every listener: exit 5, and HULFT
  // reports the receive as failed (nothing lands; the source stays for a re-run).
  const limits = deps.limitsFor?.(partner.id) ?? {};
  const refusal = sizeRefusal(st.size, limits.maxBytes);
  if (refusal) throw new HulftJobError(5, `${args.file}: ${refusal.message}`);
  await assertFreeSpace(spool.inbound(partner.id), limits.reserveBytes).catch((err: unknown) => {
    throw err instanceof LandingRefused ? new HulftJobError(5, `${args.file}: ${err.message}`) : err;
  });

  // 3. Copy into the partner's work folder with its sha256, durably.
  const workDir = path.join(spool.partnerDir(partner.id), 'work');
  const temp = path.join(workDir, `hulft-${randomUUID()}.part`);
  let sha256: string;
  let size: number;
  try {
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    await removeStaleTemporaries(workDir);
    ({ sha256, size } = await copyWithSha(source, temp));
  } catch (err) {
    await rm(temp, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !(await lstat(source).catch(() => null))) throw new HulftJobError(4, `${args.file} went away while it was read`);
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new HulftJobError(2, `${args.file} is a symbolic link: refused`);
    throw new HulftJobError(5, `copying ${args.file} into the spool: ${(err as Error).message}`);
  }

  try {
    const key = receiveKey(partner.id, def.fileId, sha256);
    const name = hulftLandingName(def.fileId, sha256);
    // 4. Landed before (a re-run, or HULFT sending the same bytes again)?
    const already = await ledgerStep(() => alreadyLanded(ledger, partner.id, name, sha256, key, common));
    if (already) {
      await rm(temp, { force: true });
      await removeSource(source);
      log.info({ partner: partner.id, fileId: def.fileId, file: already, sha256 }, 'HULFT file already landed; nothing to do');
      return { outcome: 'already-landed', partnerId: partner.id, fileId: already, sha256 };
    }
    const format = def.fileTypes.length === 1 ? partner.formats[def.fileTypes[0]!] : undefined;
    const gaiji = await findGaijiSubstitutes(temp, format ?? {}).catch(() => []);
    if (gaiji.length) {
      log.warn({ code: 'W-HULFT-GAIJI', partner: partner.id, fileId: def.fileId, hits: gaiji.slice(0, 5) }, `W-HULFT-GAIJI: ${gaiji.length} K field(s) hold □ (U+25A1), possibly HULFT's substitute for a 外字; compare with the sender`);
    }
    // 5. Through the spool's landing: rename into inbound, then the ledger row.
    let finalPath: string;
    try {
      finalPath = await landPreparedFile(temp, spool.inbound(partner.id), name);
    } catch (err) {
      throw new HulftJobError(5, `landing ${name}: ${(err as Error).message}`);
    }
    const fileRowId = newFileId('I');
    const inserted = await ledgerStep(async () => {
      const { inSeq, centreRefStart } = await reserveInboundNumbers(ledger, size);
      try {
        await writeTransaction(ledger, async (trx) => {
          const at = Date.now();
          const reason = `landed by HULFT ${def.fileId} from ${args.host}${args.msg0 ? ` (${args.msg0})` : ''}`;
          await trx('files').insert({
            id: fileRowId, partner_id: partner.id, direction: 'in', file_type: null, name, path: finalPath, size, sha256,
            sender_code: null, receiver_code: null, file_seq: null, business_date: null, record_count: null, accepted_count: null,
            rejected_count: null, amount_total: null, parent_id: null, state: 'received', in_seq: inSeq, centre_ref_start: centreRefStart,
            reason, attempts: 0, created_at: at, updated_at: at,
          });
          await trx('transitions').insert({ file_id: fileRowId, at, from_state: null, to_state: 'received', reason, actor: ACTOR });
          await insertTransfer(trx, { ...common, file_id: fileRowId, sha256, size, receive_key: key, outcome: 'landed', finished_at: at });
          // The audit row commits with the ledger row, before the job answers HULFT with exit 0.
          await appendAudit(trx, ledger.dialect, { partnerId: partner.id, protocol: 'hulft', event: 'upload', remote: args.host, detail: `${name} ${size} bytes (HULFT ${def.fileId}) sha256 ${sha256.slice(0, 16)} file ${fileRowId}` }, at);
        });
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false; // a concurrent run landed the same bytes first
        // No ledger row and no audit row: take the file back out of inbound so that nothing
        // unrecorded is ingested; the source stays, and HULFT's retry lands it again.
        await rm(finalPath, { force: true });
        throw err;
      }
    });
    if (!inserted) {
      // The winner's row names the same path; if its file already moved on, ours is a stray copy.
      const winner = await ledgerStep(() => ledger.db('hulft_transfers').where({ receive_key: key }).first('file_id'));
      const row = winner?.file_id ? await ledgerStep(() => ledger.db('files').where({ id: winner.file_id }).first('path')) : undefined;
      if (row && row.path !== finalPath) await rm(finalPath, { force: true });
      await removeSource(source);
      return { outcome: 'already-landed', partnerId: partner.id, fileId: winner?.file_id, sha256 };
    }
    // 6. HULFT's copy goes, or the next receive under TRANSMODE N fails with 250-205.
    await removeSource(source);
    log.info({ partner: partner.id, fileId: fileRowId, hulftFileId: def.fileId, host: args.host, size, msg0: args.msg0 }, 'HULFT file landed');
    return { outcome: 'landed', partnerId: partner.id, fileId: fileRowId, path: finalPath, sha256, gaiji: gaiji.length };
  } finally {
    await rm(temp, { force: true }).catch(() => undefined);
  }
}

/**
 * The file id a landing of these bytes already has: by its key, or (after a crash between rename
 * and row, when the scan took the file as an ordinary arrival) by name and sha256, then linked.
 */
async function alreadyLanded(ledger: Ledger, partnerId: string, name: string, sha256: string, key: string, common: Parameters<typeof insertTransfer>[1]): Promise<string | null> {
  const byKey = await ledger.db('hulft_transfers').where({ receive_key: key }).first('file_id');
  if (byKey) return byKey.file_id ?? '?';
  const claimed = await ledger.db('files').where({ partner_id: partnerId, direction: 'in', name, sha256 }).first('id');
  if (!claimed) return null;
  try {
    await insertTransfer(ledger.db, { ...common, file_id: claimed.id, sha256, receive_key: key, outcome: 'landed', finished_at: Date.now() });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
  }
  return claimed.id as string;
}

async function copyWithSha(source: string, target: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  // O_NOFOLLOW: a symlink swapped in after the lstat is refused (ELOOP), not followed.
  const input = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW);
  // 0600, and only until landPreparedFile encrypts it (when the spool encrypts).
  const out = await open(target, 'wx', 0o600).catch(async (err) => {
    await input.close();
    throw err;
  });
  try {
    for await (const chunk of input.createReadStream({ highWaterMark: 1 << 20 })) {
      const buf = chunk as Buffer;
      hash.update(buf);
      size += buf.length;
      await out.write(buf);
    }
    await out.sync();
  } finally {
    await out.close();
    await input.close().catch(() => undefined);
  }
  return { sha256: hash.digest('hex'), size };
}

async function removeSource(source: string): Promise<void> {
  try {
    await rm(source, { force: true });
    await fsyncDir(path.dirname(source));
  } catch (err) {
    throw new HulftJobError(5, `the file landed, but removing ${source} failed: ${(err as Error).message}`);
  }
}

/** Ledger trouble is exit 5: the sender's retry runs the job again. */
async function ledgerStep<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof HulftJobError) throw err;
    throw new HulftJobError(5, `ledger: ${(err as Error).message}`);
  }
}

/** A run killed while copying leaves its temporary behind; the next run clears those older than this. */
const STALE_TEMPORARY_MS = 6 * 3600_000;

async function removeStaleTemporaries(workDir: string): Promise<void> {
  for (const name of await readdir(workDir)) {
    if (!/^hulft-[0-9a-f-]{36}\.part$/.test(name)) continue;
    const p = path.join(workDir, name);
    const s = await stat(p).catch(() => null);
    if (s && Date.now() - s.mtimeMs > STALE_TEMPORARY_MS) await rm(p, { force: true });
  }
}
