// The files table: one row per file we received or produced, and its state machine.
// Every state change is compare-and-set and leaves an append-only row in `transitions`.
import type { Knex } from 'knex';
import { writeStatement, writeTransaction, type Ledger, type WriteOptions } from './db.ts';
import { SELF, formatHolder } from './holder.ts';

export type Direction = 'in' | 'out';

export const FILE_STATES = [
  'received', // inbound: landed, checksummed, not yet validated
  'accepted', // inbound: validated, (some) records good
  'rejected', // inbound: whole file refused (final)
  'routed', // inbound: split into outbound files (final)
  'ready', // outbound: published in the destination's outbound folder
  'sending', // outbound: a push is in progress
  'sent', // outbound: pushed and verified, or picked up by the partner
  'acknowledged', // outbound: the partner's result came back (final)
  'failed', // outbound: gave up after the retry budget; an operator may resend
  'unknown', // outbound: the push timed out and may still complete (HULFT rc 4); settled by the post-send job or an operator
] as const;
export type FileState = (typeof FILE_STATES)[number];

/** Which transitions are legal; anything else is a bug or a race, and fails. */
const NEXT: Record<FileState, FileState[]> = {
  received: ['accepted', 'rejected'],
  accepted: ['routed'],
  rejected: [],
  routed: [],
  ready: ['sending', 'sent'],
  sending: ['sent', 'ready', 'failed', 'unknown'],
  sent: ['acknowledged', 'ready'],
  acknowledged: [],
  failed: ['ready'],
  unknown: ['sent', 'failed', 'ready'],
};

/** A write that commits with a file's transition and only with it (FilesRepository.transitionWith). */
export type AlongsideWrite = { insert: string; row: Record<string, unknown> } | { update: string; id: number; changes: Record<string, unknown> };

export class StateConflictError extends Error {
  constructor(
    readonly fileId: string,
    readonly expected: FileState,
    readonly actual: FileState | undefined,
    readonly to: FileState,
  ) {
    super(`file ${fileId}: cannot move ${expected} -> ${to}: it is ${actual ?? 'not in the ledger'}`);
  }
}

export interface FileRow {
  id: string;
  partner_id: string;
  direction: Direction;
  file_type: string | null;
  name: string;
  path: string | null;
  size: number | null;
  sha256: string | null;
  sender_code: string | null;
  receiver_code: string | null;
  file_seq: string | null;
  business_date: string | null;
  record_count: number | null;
  accepted_count: number | null;
  rejected_count: number | null;
  amount_total: number | null;
  state: FileState;
  parent_id: string | null;
  reason: string | null;
  attempts: number;
  next_attempt_at: number | null;
  in_seq: number | null;
  centre_ref_start: number | null;
  archived_at: number | null;
  purged_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface TransitionRow {
  id: number;
  file_id: string;
  at: number;
  from_state: FileState | null;
  to_state: FileState;
  reason: string | null;
  actor: string;
}

const NUMERIC: (keyof FileRow)[] = ['size', 'record_count', 'accepted_count', 'rejected_count', 'amount_total', 'attempts', 'next_attempt_at', 'in_seq', 'centre_ref_start', 'archived_at', 'purged_at', 'created_at', 'updated_at'];

/** A unique index refused the change (PostgreSQL 23505, SQLite SQLITE_CONSTRAINT_UNIQUE). */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** PostgreSQL returns bigint as strings; the ledger speaks numbers. */
function normalise(row: Record<string, unknown>): FileRow {
  for (const key of NUMERIC) {
    const v = row[key];
    if (typeof v === 'string') row[key] = Number(v);
  }
  return row as unknown as FileRow;
}

/**
 * The process that acts, for the transitions table: host:pid:start time. The actor of a file's
 * last transition holds the file's next step (spool/ledger/holder.ts tells whether it still lives).
 */
export const ACTOR = formatHolder(SELF);

export type NewFile = Omit<FileRow, 'state' | 'attempts' | 'next_attempt_at' | 'in_seq' | 'centre_ref_start' | 'archived_at' | 'purged_at' | 'created_at' | 'updated_at' | 'reason'> & {
  state: FileState;
  in_seq?: number | null;
  centre_ref_start?: number | null;
  reason?: string | null;
};

export class FilesRepository {
  constructor(private readonly ledger: Ledger) {}

  private get db(): Knex {
    return this.ledger.db;
  }

  /** Inserts a file and its first transition. Returns false when the id already exists (idempotent retry). */
  async create(file: NewFile, reason: string, actor = ACTOR, at = Date.now(), trxOrDb: Knex = this.db): Promise<boolean> {
    if (this.ledger.dialect === 'postgres') {
      // One statement (one round trip, atomic on its own: no transaction needed outside one).
      const insert = trxOrDb('files').insert({ ...file, reason: file.reason ?? null, attempts: 0, created_at: at, updated_at: at }).onConflict('id').ignore().returning('id');
      const result = await trxOrDb.raw('with f as (?) insert into transitions (file_id, at, from_state, to_state, reason, actor) select id, ?, null, ?, ?, ? from f returning id', [insert, at, file.state, reason, actor]);
      return (result as { rows: unknown[] }).rows.length === 1;
    }
    const run = async (trx: Knex) => {
      const existing = await trx('files').where({ id: file.id }).first('id');
      if (existing) return false;
      await trx('files').insert({ ...file, reason: file.reason ?? null, attempts: 0, created_at: at, updated_at: at });
      await trx('transitions').insert({ file_id: file.id, at, from_state: null, to_state: file.state, reason, actor });
      return true;
    };
    return trxOrDb.isTransaction ? run(trxOrDb) : writeTransaction(this.ledger, run);
  }

  /**
   * create() for several files in the caller's transaction (a route's outputs): on PostgreSQL one
   * statement for all of them. Returns how many were new.
   */
  async createMany(files: readonly { file: NewFile; reason: string }[], trx: Knex.Transaction, at = Date.now(), actor = ACTOR): Promise<number> {
    if (files.length === 0) return 0;
    if (this.ledger.dialect !== 'postgres') {
      let created = 0;
      for (const f of files) if (await this.create(f.file, f.reason, actor, at, trx)) created++;
      return created;
    }
    let created = 0;
    for (let i = 0; i < files.length; i += 500) { // well under PostgreSQL's 65,535 parameters per statement
      const part = files.slice(i, i + 500);
      const insert = trx('files').insert(part.map(({ file }) => ({ ...file, reason: file.reason ?? null, attempts: 0, created_at: at, updated_at: at }))).onConflict('id').ignore().returning(['id', 'state']);
      const result = await trx.raw(
        `with f as (?) insert into transitions (file_id, at, from_state, to_state, reason, actor) select f.id, ?, null, f.state, r.reason, ? from f join (values ${part.map(() => '(?, ?)').join(', ')}) as r (id, reason) on r.id = f.id returning id`,
        [insert, at, actor, ...part.flatMap(({ file, reason }) => [file.id, reason])],
      );
      created += (result as { rows: unknown[] }).rows.length;
    }
    return created;
  }

  async get(id: string): Promise<FileRow | undefined> {
    const row = await this.db('files').where({ id }).first();
    return row ? normalise(row) : undefined;
  }

  async require(id: string): Promise<FileRow> {
    const row = await this.get(id);
    if (!row) throw new Error(`file ${id} is not in the ledger`);
    return row;
  }

  /**
   * Compare-and-set: moves `id` from `from` to `to` only if it is in `from` now, writing `changes`
   * in the same statement. Throws StateConflictError otherwise.
   */
  async transition(
    id: string,
    from: FileState,
    to: FileState,
    reason: string,
    changes: Partial<Omit<FileRow, 'id' | 'state'>> = {},
    trxOrDb: Knex = this.db,
    actor = ACTOR,
  ): Promise<void> {
    if (!NEXT[from].includes(to)) throw new StateConflictError(id, from, from, to);
    if (this.ledger.dialect === 'postgres') return void (await this.transitionPostgres(id, from, to, reason, changes, trxOrDb, actor));
    const run = async (trx: Knex) => {
      const at = Date.now();
      const count = await trx('files')
        .where({ id, state: from })
        .update({ ...changes, state: to, updated_at: at, reason });
      if (count !== 1) {
        const row = await trx('files').where({ id }).first('state');
        throw new StateConflictError(id, from, row?.state, to);
      }
      await trx('transitions').insert({ file_id: id, at, from_state: from, to_state: to, reason, actor });
    };
    if (trxOrDb.isTransaction) await run(trxOrDb);
    else await writeTransaction(this.ledger, run);
  }

  /**
   * transition() with one more write that commits with it and only with it (a deliveries row
   * inserted or updated): on PostgreSQL one statement, on SQLite one transaction (`trx`, or a new
   * one with `options`). Returns the id of an inserted row.
   */
  async transitionWith(id: string, from: FileState, to: FileState, reason: string, changes: Partial<Omit<FileRow, 'id' | 'state'>>, also: AlongsideWrite, options: WriteOptions & { trx?: Knex } = {}): Promise<number | undefined> {
    if (!NEXT[from].includes(to)) throw new StateConflictError(id, from, from, to);
    if (this.ledger.dialect === 'postgres') return this.transitionPostgres(id, from, to, reason, changes, options.trx ?? this.db, ACTOR, also);
    const run = async (trx: Knex) => {
      await this.transition(id, from, to, reason, changes, trx);
      if ('update' in also) return void (await trx(also.update).where({ id: also.id }).update(also.changes));
      const [inserted] = await trx(also.insert).insert(also.row).returning('id');
      return Number(typeof inserted === 'object' ? (inserted as { id: number }).id : inserted);
    };
    return options.trx ? run(options.trx) : writeTransaction(this.ledger, run, options);
  }

  /**
   * transition() on PostgreSQL: the compare-and-set, its transitions row and any alongside write
   * in one statement (one round trip; atomic on its own, so outside a transaction it needs none).
   * The alongside write reads the updated row, so it happens only when the file moved.
   */
  private async transitionPostgres(id: string, from: FileState, to: FileState, reason: string, changes: Partial<Omit<FileRow, 'id' | 'state'>>, db: Knex, actor: string, also?: AlongsideWrite): Promise<number | undefined> {
    const at = Date.now();
    const update = db('files').where({ id, state: from }).update({ ...changes, state: to, updated_at: at, reason }).returning('id');
    const moved = 'insert into transitions (file_id, at, from_state, to_state, reason, actor) select id, ?, ?, ?, ?, ? from u returning id';
    let rows: { moved?: string | number; id?: string | number }[];
    if (!also) {
      rows = ((await db.raw(`with u as (?) ${moved}`, [update, at, from, to, reason, actor])) as { rows: { id: number }[] }).rows.map(() => ({ moved: 1 }));
    } else {
      let alongside: Knex.Raw | Knex.QueryBuilder;
      if ('update' in also) {
        alongside = db(also.update).where({ id: also.id }).whereExists(db.select(db.raw('1')).from('u')).update(also.changes).returning('id');
      } else {
        const columns = Object.keys(also.row);
        alongside = db.raw(`insert into ?? (${columns.map(() => '??').join(', ')}) select ${columns.map(() => '?').join(', ')} from u returning id`, [also.insert, ...columns, ...columns.map((c) => (also.row[c] ?? null) as Knex.Value)]);
      }
      const sql = `with u as (?), t as (${moved}), a as (?) select (select count(*) from t) as moved, (select id from a) as id`;
      rows = ((await db.raw(sql, [update, at, from, to, reason, actor, alongside])) as { rows: typeof rows }).rows;
    }
    if (Number(rows[0]?.moved ?? 0) === 1) return rows[0]!.id === undefined || rows[0]!.id === null ? undefined : Number(rows[0]!.id);
    const row = await db('files').where({ id }).first('state');
    throw new StateConflictError(id, from, row?.state, to);
  }

  /** Updates fields that are not the state (counts, paths, attempts); in `trx` when given. */
  async update(id: string, changes: Partial<Omit<FileRow, 'id' | 'state'>>, options: WriteOptions & { trx?: Knex } = {}): Promise<void> {
    if (options.trx) return void (await options.trx('files').where({ id }).update({ ...changes, updated_at: Date.now() }));
    if (!options.lazy && !options.losable) return void (await this.db('files').where({ id }).update({ ...changes, updated_at: Date.now() }));
    await writeStatement(this.ledger, (db) => db('files').where({ id }).update({ ...changes, updated_at: Date.now() }), options);
  }

  async history(id: string): Promise<TransitionRow[]> {
    const rows = await this.db('transitions').where({ file_id: id }).orderBy('id');
    return rows.map((r: Record<string, unknown>) => ({ ...r, at: Number(r.at) }) as TransitionRow);
  }

  async list(filter: { partnerId?: string; state?: FileState; direction?: Direction; fromMs?: number; toMs?: number; parentId?: string; limit?: number } = {}): Promise<FileRow[]> {
    const q = this.db('files').orderBy('created_at').orderBy('id');
    if (filter.partnerId) q.where('partner_id', filter.partnerId);
    if (filter.state) q.where('state', filter.state);
    if (filter.direction) q.where('direction', filter.direction);
    if (filter.parentId) q.where('parent_id', filter.parentId);
    if (filter.fromMs !== undefined) q.where('created_at', '>=', filter.fromMs);
    if (filter.toMs !== undefined) q.where('created_at', '<', filter.toMs);
    if (filter.limit) q.limit(filter.limit);
    return (await q).map(normalise);
  }

  /** E108: an accepted (or routed) file with the same sender, type and sequence, or the same bytes. */
  async findDuplicate(file: { id: string; senderCode: string; fileType: string; fileSeq: string; sha256: string }): Promise<FileRow | undefined> {
    const row = await this.db('files')
      .where('direction', 'in')
      .whereIn('state', ['accepted', 'routed'])
      .whereNot('id', file.id)
      .where((q) => q.where({ sender_code: file.senderCode, file_type: file.fileType, file_seq: file.fileSeq }).orWhere('sha256', file.sha256))
      .first();
    return row ? normalise(row) : undefined;
  }
}
