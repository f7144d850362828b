// The AS2 tables of the ledger (migration 003_as2): what we received (dedupe, landing state, async
// MDNs we owe) and what we sent (MIC digests, pending MDNs).
import type { Knex } from 'knex';
import { writeTransaction, type Ledger } from '../../spool/ledger/db.ts';
import { isUniqueViolation } from '../../spool/ledger/files.ts';
import { appendAudit } from '../../spool/ledger/audit.ts';
import type { Mics } from './build.ts';

export interface ReceivedRow {
  partner_id: string;
  message_id: string;
  state: 'staged' | 'answered' | 'landed';
  file_name: string;
  temp_path: string | null;
  final_path: string | null;
  size: number | null;
  mdn_state: 'none' | 'pending' | 'sent' | 'failed';
  mdn_url: string | null;
  mdn_headers: string | null;
  mdn_body: string | null;
  mdn_attempts: number;
  mdn_next_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface SentRow {
  message_id: string;
  partner_id: string;
  remote_name: string;
  payload_sha256: string;
  state: 'sending' | 'awaiting' | 'processed' | 'failed';
  mdn_mode: 'none' | 'sync' | 'async';
  mics: string;
  mic_prefix: string | null;
  payload_path: string | null;
  deadline_at: number | null;
  sends: number;
  reported: boolean | number;
  disposition: string | null;
  created_at: number;
  updated_at: number;
}

const num = <T extends object>(row: T, keys: string[]): T => {
  for (const k of keys) {
    const r = row as Record<string, unknown>;
    if (typeof r[k] === "string") r[k] = Number(r[k]);
  }
  return row;
};

interface PendingWrite {
  fn: (trx: Knex.Transaction) => Promise<unknown>;
  resolve(v: unknown): void;
  reject(err: unknown): void;
}

/**
 * Group commit: writes asked for while a commit is in flight share the next transaction (each in
 * its own savepoint, so one failing write fails alone). A commit costs an fsync (several ms);
 * concurrent messages would otherwise queue behind one another's.
 */
class GroupCommitter {
  private queue: PendingWrite[] = [];
  private flushing = false;

  constructor(private readonly ledger: Ledger) {}

  write<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      // better-sqlite3 commits (fsync) block the event loop; gather what this turn of it asks for.
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, 64);
        const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
        try {
          await writeTransaction(this.ledger, async (trx) => {
            for (const w of batch) {
              try {
                outcomes.push({ ok: true, value: batch.length === 1 ? await w.fn(trx) : await trx.transaction((sp) => w.fn(sp)) });
              } catch (err) {
                if (batch.length === 1) throw err;
                outcomes.push({ ok: false, err });
              }
            }
          });
        } catch (err) {
          for (const w of batch) w.reject(err);
          continue;
        }
        batch.forEach((w, i) => {
          const o = outcomes[i]!;
          if (o.ok) w.resolve(o.value);
          else w.reject(o.err);
        });
      }
    } finally {
      this.flushing = false;
    }
  }
}

const committers = new WeakMap<Ledger, GroupCommitter>();

export class As2Store {
  private readonly committer: GroupCommitter;

  constructor(private readonly ledger: Ledger) {
    let c = committers.get(ledger);
    if (!c) committers.set(ledger, (c = new GroupCommitter(ledger)));
    this.committer = c;
  }

  private get db(): Knex {
    return this.ledger.db;
  }

  async received(partnerId: string, messageId: string): Promise<ReceivedRow | undefined> {
    const row = await this.db('as2_received').where({ partner_id: partnerId, message_id: messageId }).first();
    return row ? num(row, ['size', 'mdn_attempts', 'mdn_next_at', 'created_at', 'updated_at']) : undefined;
  }

  /** Inserts a staged message (and its audit row, in one commit); false when (partner, Message-ID) is already there. */
  async stage(row: Pick<ReceivedRow, 'partner_id' | 'message_id' | 'file_name' | 'temp_path' | 'final_path' | 'size'>, audit?: { remote?: string; detail: string }): Promise<boolean> {
    const now = Date.now();
    try {
      await this.committer.write(async (trx) => {
        await trx('as2_received').insert({ ...row, state: 'staged', mdn_state: 'none', mdn_attempts: 0, created_at: now, updated_at: now });
        if (audit) await appendAudit(trx, this.ledger.dialect, { partnerId: row.partner_id, protocol: 'as2', event: 'upload', remote: audit.remote, detail: audit.detail }, now);
      });
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  /** A staged message again (its first answer never went out): point the row at the new copy. */
  async restage(partnerId: string, messageId: string, changes: Pick<ReceivedRow, 'file_name' | 'temp_path' | 'final_path' | 'size'>): Promise<boolean> {
    const n = await this.committer.write((trx) => trx('as2_received').where({ partner_id: partnerId, message_id: messageId, state: 'staged' }).update({ ...changes, updated_at: Date.now() }));
    return n === 1;
  }

  async updateReceived(partnerId: string, messageId: string, changes: Partial<ReceivedRow>, onlyIf?: Partial<ReceivedRow>): Promise<boolean> {
    const n = await this.committer.write((trx) =>
      trx('as2_received')
        .where({ partner_id: partnerId, message_id: messageId, ...(onlyIf ?? {}) })
        .update({ ...changes, updated_at: Date.now() }),
    );
    return n === 1;
  }

  async receivedInState(state: ReceivedRow['state']): Promise<ReceivedRow[]> {
    return (await this.db('as2_received').where({ state })).map((r: ReceivedRow) => num(r, ['size', 'mdn_attempts', 'mdn_next_at', 'created_at', 'updated_at']));
  }

  async mdnsDue(now: number): Promise<ReceivedRow[]> {
    return (await this.db('as2_received').where({ mdn_state: 'pending' }).where('mdn_next_at', '<=', now).limit(100)).map((r: ReceivedRow) =>
      num(r, ['size', 'mdn_attempts', 'mdn_next_at', 'created_at', 'updated_at']),
    );
  }

  // ---- sent ----

  async sent(messageId: string): Promise<SentRow | undefined> {
    const row = await this.db('as2_sent').where({ message_id: messageId }).first();
    return row ? num(row, ['deadline_at', 'sends', 'created_at', 'updated_at']) : undefined;
  }

  /** The newest message for this payload to this partner under this name. */
  async latestSent(partnerId: string, payloadSha256: string, remoteName: string): Promise<SentRow | undefined> {
    const row = await this.db('as2_sent').where({ partner_id: partnerId, payload_sha256: payloadSha256, remote_name: remoteName }).orderBy('created_at', 'desc').orderBy('message_id', 'desc').first();
    return row ? num(row, ['deadline_at', 'sends', 'created_at', 'updated_at']) : undefined;
  }

  async insertSent(row: { message_id: string; partner_id: string; remote_name: string; payload_sha256: string; mdn_mode: SentRow['mdn_mode']; mics: Mics; mic_prefix: string | null; payload_path: string | null }): Promise<void> {
    const now = Date.now();
    await this.committer.write((trx) => trx('as2_sent').insert({ ...row, mics: JSON.stringify(row.mics), state: 'sending', sends: 0, reported: false, created_at: now, updated_at: now }));
  }

  async updateSent(messageId: string, changes: Partial<Omit<SentRow, 'mics'>> & { mics?: Mics }, onlyIfState?: SentRow['state'][]): Promise<boolean> {
    const n = await this.committer.write((trx) => {
      const q = trx('as2_sent').where({ message_id: messageId });
      if (onlyIfState) q.whereIn('state', onlyIfState);
      return q.update({ ...changes, ...(changes.mics ? { mics: JSON.stringify(changes.mics) } : {}), updated_at: Date.now() });
    });
    return n === 1;
  }
}

/**
 * An operator's resend: messages still pending for this file name are given up, so the next push
 * goes under a new Message-ID (a retry or a resend after a missing MDN keeps the old one).
 */
export async function supersedePendingAs2(ledger: Ledger, partnerId: string, remoteName: string): Promise<void> {
  await ledger.db('as2_sent').where({ partner_id: partnerId, remote_name: remoteName }).whereIn('state', ['sending', 'awaiting']).update({ state: 'failed', disposition: 'superseded by an operator resend', updated_at: Date.now() });
  await ledger.db('as2_sent').where({ partner_id: partnerId, remote_name: remoteName, state: 'processed', reported: false }).update({ reported: true, updated_at: Date.now() });
}
