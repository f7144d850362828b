// The audit trail: every login (ok or refused), upload, download and refused request, per partner.
//
// The rows form a hash chain (PCI DSS 10.5): each row carries the hash of the row before it and a
// hash over its own fields and that previous hash, so an edited, deleted or reordered row breaks
// the chain where it happened. The head of the chain (the last id and hash) sits in its own row of
// `audit_chain`; every append locks that row (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the write
// transaction), so several worker processes still append one chain, and a quietly deleted tail no
// longer matches the head. Retention removes the oldest rows and keeps a checkpoint (the id and
// hash of the last removed row), from which the rest of the chain still verifies.
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { writeTransaction, type Dialect, type Ledger } from './db.ts';

export type AuditEvent = 'login_ok' | 'login_refused' | 'upload' | 'download' | 'refused' | 'session_end' | 'action';

export interface AuditEntry {
  partnerId: string | null;
  protocol: string;
  event: AuditEvent;
  remote?: string;
  detail?: string;
}

/** The previous hash of the first row of a chain that was never pruned. */
export const GENESIS_HASH = '0'.repeat(64);

export interface AuditRow {
  id: number;
  at: number;
  partner_id: string | null;
  protocol: string;
  event: AuditEvent;
  remote: string | null;
  detail: string | null;
  prev_hash: string;
  hash: string;
}

type ChainedFields = Pick<AuditRow, 'id' | 'at' | 'partner_id' | 'protocol' | 'event' | 'remote' | 'detail'>;

/** sha256 over the row's fields (id included, so a renumbered row is caught too) and the previous hash. */
export function auditRowHash(row: ChainedFields, prevHash: string): string {
  const fields = [row.id, row.at, row.partner_id, row.protocol, row.event, row.remote, row.detail, prevHash];
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/** Locks the chain's head for this transaction and returns it. */
async function lockHead(trx: Knex.Transaction, dialect: Dialect): Promise<{ last_id: number; last_hash: string }> {
  // SQLite: the write transaction (writeTransaction) already holds the database's write lock.
  const q = trx('audit_chain').where({ id: 1 }).first('last_id', 'last_hash');
  const head = dialect === 'postgres' ? await q.forUpdate() : await q;
  if (!head) throw new Error('audit chain head missing (migration 008_audit_chain not applied?)');
  return { last_id: Number(head.last_id), last_hash: head.last_hash };
}

/** Appends one row inside the caller's write transaction (which then holds the chain's head). */
export async function appendAudit(trx: Knex.Transaction, dialect: Dialect, entry: AuditEntry, at = Date.now()): Promise<number> {
  const head = await lockHead(trx, dialect);
  const row = {
    at,
    partner_id: entry.partnerId,
    protocol: entry.protocol,
    event: entry.event,
    remote: entry.remote ?? null,
    detail: entry.detail?.slice(0, 1000) ?? null,
  };
  // The id comes from the table's own sequence; the hash needs it, so it is set just after.
  const [inserted] = await trx('audit').insert({ ...row, prev_hash: head.last_hash }).returning('id');
  const id = Number(typeof inserted === 'object' ? (inserted as { id: number }).id : inserted);
  const hash = auditRowHash({ id, ...row }, head.last_hash);
  await trx('audit').where({ id }).update({ hash });
  await trx('audit_chain').where({ id: 1 }).update({ last_id: id, last_hash: hash });
  return id;
}

/** Appends one audit row and returns once it is committed (durable: the ledger commits with fsync). */
export async function recordAudit(ledger: Ledger, entry: AuditEntry, at = Date.now()): Promise<void> {
  await writeTransaction(ledger, (trx) => appendAudit(trx, ledger.dialect, entry, at));
}

export async function listAudit(ledger: Ledger, filter: { partnerId?: string; protocol?: string } = {}): Promise<AuditRow[]> {
  const q = ledger.db('audit').orderBy('id');
  if (filter.partnerId) q.where('partner_id', filter.partnerId);
  if (filter.protocol) q.where('protocol', filter.protocol);
  return (await q).map(toRow);
}

const toRow = (r: AuditRow): AuditRow => ({ ...r, id: Number(r.id), at: Number(r.at) });

export interface AuditCheckpoint {
  id: number;
  at: number;
  /** The last pruned row: the next row's prev_hash must be `last_hash`. */
  through_id: number;
  last_hash: string;
  pruned_rows: number;
}

export interface ChainProblem {
  /** The first row that does not verify (or, for a cut tail, the head's last id). */
  rowId: number;
  reason: string;
}

export interface VerifyResult {
  ok: boolean;
  rows: number;
  /** Where verification started from (undefined: the start of the chain). */
  checkpoint?: AuditCheckpoint;
  /** The head of the chain as verified: keep it outside the centre to anchor the chain. */
  lastId: number;
  lastHash: string;
  problem?: ChainProblem;
}

async function latestCheckpoint(db: Knex): Promise<AuditCheckpoint | undefined> {
  const r = await db('audit_checkpoints').orderBy('id', 'desc').first();
  return r ? { id: Number(r.id), at: Number(r.at), through_id: Number(r.through_id), last_hash: r.last_hash, pruned_rows: Number(r.pruned_rows) } : undefined;
}

const BATCH = 5000;

/**
 * Walks the chain from the latest checkpoint (or its start) up to row `throughId` (default: the
 * head), and stops at the first row that does not verify.
 */
async function walkChain(db: Knex, throughId?: number): Promise<VerifyResult> {
  const checkpoint = await latestCheckpoint(db);
  let expected = checkpoint?.last_hash ?? GENESIS_HASH;
  let lastId = checkpoint?.through_id ?? 0;
  let rows = 0;
  const fail = (rowId: number, reason: string): VerifyResult => ({ ok: false, rows, checkpoint, lastId, lastHash: expected, problem: { rowId, reason } });
  const stale = await db('audit').where('id', '<=', lastId).orderBy('id').first('id');
  if (stale) return fail(Number(stale.id), `row ${stale.id} lies before the checkpoint (rows through ${lastId} were pruned): it was inserted or renumbered`);
  for (;;) {
    const q = db('audit').where('id', '>', lastId).orderBy('id').limit(BATCH);
    if (throughId !== undefined) q.where('id', '<=', throughId);
    const batch = (await q).map(toRow);
    for (const row of batch) {
      if (row.prev_hash !== expected) {
        return fail(row.id, `row ${row.id} does not follow row ${lastId || '(start)'}: a row between them was deleted or inserted, the rows were reordered, or row ${lastId} was edited`);
      }
      if (row.hash !== auditRowHash(row, row.prev_hash)) return fail(row.id, `row ${row.id} was edited: its hash does not match its fields`);
      expected = row.hash;
      lastId = row.id;
      rows++;
    }
    if (batch.length < BATCH) break;
  }
  return { ok: true, rows, checkpoint, lastId, lastHash: expected };
}

/** Verifies the whole chain against its head: the first row that does not verify, or ok. */
export async function verifyAuditChain(ledger: Ledger): Promise<VerifyResult> {
  // The head first: rows appended while we walk (a running centre) lie beyond it and are left for
  // the next verify; every row up to the head was committed with or before it.
  const head = await ledger.db('audit_chain').where({ id: 1 }).first('last_id', 'last_hash');
  const headId = Number(head?.last_id ?? 0);
  const result = await walkChain(ledger.db, headId);
  if (!result.ok) return result;
  if (!head || headId !== result.lastId || head.last_hash !== result.lastHash) {
    const reason =
      headId > result.lastId
        ? `rows after ${result.lastId || '(start)'} through ${headId} were deleted: the chain's head says the last row is ${headId}`
        : `the chain's head (row ${headId}) does not match the last row ${result.lastId}: the head or the last row was changed`;
    return { ...result, ok: false, problem: { rowId: headId > result.lastId ? result.lastId + 1 : result.lastId, reason } };
  }
  return result;
}

export class AuditChainBroken extends Error {
  constructor(readonly problem: ChainProblem) {
    super(`audit chain broken at row ${problem.rowId}: ${problem.reason}`);
  }
}

export interface PruneResult {
  pruned: number;
  checkpoint?: AuditCheckpoint;
}

/**
 * Removes the rows older than `before` (epoch ms) once they verify, and keeps a checkpoint (the
 * last removed row's id and hash), itself recorded as an audit row so that it is in the chain.
 * A broken chain is never pruned (that would hide the evidence): AuditChainBroken.
 */
export async function pruneAudit(ledger: Ledger, before: number): Promise<PruneResult> {
  return writeTransaction(ledger, async (trx) => {
    await lockHead(trx, ledger.dialect);
    const last = await trx('audit').where('at', '<', before).max({ id: 'id' }).first();
    const throughId = last?.id === null || last?.id === undefined ? undefined : Number(last.id);
    if (throughId === undefined) return { pruned: 0 };
    const walked = await walkChain(trx, throughId);
    if (!walked.ok) throw new AuditChainBroken(walked.problem!);
    if (walked.lastId !== throughId) throw new AuditChainBroken({ rowId: throughId, reason: `row ${throughId} is not on the chain` });
    const pruned = Number(await trx('audit').where('id', '<=', throughId).delete());
    const at = Date.now();
    const [inserted] = await trx('audit_checkpoints').insert({ at, through_id: throughId, last_hash: walked.lastHash, pruned_rows: pruned }).returning('id');
    const id = Number(typeof inserted === 'object' ? (inserted as { id: number }).id : inserted);
    await appendAudit(trx, ledger.dialect, { partnerId: null, protocol: 'audit', event: 'action', detail: `pruned ${pruned} rows through ${throughId} (before ${new Date(before).toISOString()}); checkpoint ${id} hash ${walked.lastHash}` }, at);
    return { pruned, checkpoint: { id, at, through_id: throughId, last_hash: walked.lastHash, pruned_rows: pruned } };
  });
}

/** Migration 008: chains the rows already there, in id order, and creates the head and checkpoints. */
export async function chainExistingAudit(db: Knex): Promise<void> {
  let prev = GENESIS_HASH;
  let lastId = 0;
  for (;;) {
    const batch = (await db('audit').where('id', '>', lastId).orderBy('id').limit(BATCH)).map(toRow);
    for (const row of batch) {
      const hash = auditRowHash(row, prev);
      await db('audit').where({ id: row.id }).update({ prev_hash: prev, hash });
      prev = hash;
      lastId = row.id;
    }
    if (batch.length < BATCH) break;
  }
  await db('audit_chain').insert({ id: 1, last_id: lastId, last_hash: prev });
}
