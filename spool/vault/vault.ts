// The card vault of utility billing: card numbers and expiries encrypted (AES-256-GCM) under a data
// key that the key-encryption key wraps (spool/keys.ts), found by a keyed hash (HMAC-SHA-256 under
// a key derived from the KEK), never by the number. Every decryption is audited (which job, which
// file, how many). Each sealed entry is bound to its owner (utility and customer number) as
// associated data, so an entry copied onto another customer does not open.
import { randomBytes, createHmac } from 'node:crypto';
import type { Knex } from 'knex';
import { deriveKey, newDataKey, rewrapDataKey, unwrapDataKey, wrapDataKey, type KeyRing } from '../keys.ts';
import type { Ledger } from '../ledger/index.ts';
import { preparedOnce, withDeferredSync, withRawSqlite } from '../ledger/sqlite-raw.ts';
import { BatchGcm, PackedMessages } from './gcm-batch.ts';

export interface CardSecret {
  cardNo: string;
  /** YYMM */
  expiry: string;
}

export interface SealedCard {
  enc: string;
  keyId: string;
}

export interface OwnedEntry extends SealedCard {
  partnerId: string;
  customerNo: string;
}

export interface DecryptionAudit {
  /** the job (or command) that needs the numbers */
  job: string;
  fileId: string | null;
  partnerId: string;
  /** set when the decryption is about one customer */
  customerNo?: string;
  purpose: string;
}

export class VaultError extends Error {}

const KEY_CONTEXT = 'card-vault/data-key';
const owner = (partnerId: string, customerNo: string) => Buffer.from(`${partnerId}\0${customerNo}`, 'utf8'); // the associated data

export class Vault {
  private constructor(
    private readonly ledger: Ledger,
    private readonly keys: Map<string, BatchGcm>,
    private readonly currentKeyId: string,
    private readonly hmacKey: Buffer,
  ) {}

  /** Loads the vault's data keys (creating the first one) with the ring's KEKs. */
  static async open(ledger: Ledger, ring: KeyRing): Promise<Vault> {
    let rows = (await ledger.db('vault_keys').orderBy([{ column: 'created_at' }, { column: 'id' }])) as { id: string; wrapped: string; kek_id: string; created_at: number }[];
    if (rows.length === 0) {
      const id = randomBytes(8).toString('hex');
      await ledger.db('vault_keys').insert({ id, wrapped: wrapDataKey(ring.current, newDataKey(), KEY_CONTEXT).toString('base64'), kek_id: ring.current.id, created_at: Date.now() });
      // two processes may both have made one: every key stays usable, the oldest is current
      rows = await ledger.db('vault_keys').orderBy([{ column: 'created_at' }, { column: 'id' }]);
    }
    const keys = new Map<string, BatchGcm>();
    let first: Buffer | undefined;
    for (const r of rows) {
      const dataKey = unwrapDataKey(ring, Buffer.from(r.wrapped, 'base64'), KEY_CONTEXT);
      first ??= dataKey;
      keys.set(r.id, new BatchGcm(dataKey));
    }
    // The lookup HMAC key comes from the vault's first data key, not from the KEK: a KEK rotation
    // re-wraps data keys and must not change the HMACs (the invalid-card lists keep no plaintext
    // to recompute them from).
    return new Vault(ledger, keys, rows[0]!.id, deriveKey({ id: rows[0]!.id, key: first! }, 'hmac:card-vault'));
  }

  /** `tsunagi keys rotate`: re-wraps every vault data key under the ring's current KEK. */
  static async rewrapKeys(ledger: Ledger, ring: KeyRing): Promise<{ rewrapped: number; current: number }> {
    const rows = (await ledger.db('vault_keys').select('id', 'wrapped')) as { id: string; wrapped: string }[];
    let rewrapped = 0;
    for (const r of rows) {
      const { wrapped, changed } = rewrapDataKey(ring, Buffer.from(r.wrapped, 'base64'), KEY_CONTEXT);
      if (!changed) continue;
      await ledger.db('vault_keys').where({ id: r.id }).update({ wrapped: wrapped.toString('base64'), kek_id: ring.current.id });
      rewrapped++;
    }
    return { rewrapped, current: rows.length - rewrapped };
  }

  /** The lookup hash of a card number (hex). */
  hmac(cardNo: string): string {
    return createHmac('sha256', this.hmacKey).update(cardNo.trim(), 'latin1').digest('hex');
  }

  sealMany(items: { partnerId: string; customerNo: string; card: CardSecret }[]): SealedCard[] {
    const gcm = this.keys.get(this.currentKeyId)!;
    const sealed = gcm.sealMany(items.map((i) => Buffer.from(`${i.card.cardNo.trim()}|${i.card.expiry}`, 'latin1')), items.map((i) => owner(i.partnerId, i.customerNo)));
    return sealed.map((s) => ({ enc: s.toString('base64'), keyId: this.currentKeyId }));
  }

  seal(partnerId: string, customerNo: string, card: CardSecret): SealedCard {
    return this.sealMany([{ partnerId, customerNo, card }])[0]!;
  }

  /**
   * Opens entries after writing the audit row for them (so no number is seen unaudited). Throws
   * when an entry does not open: tampered, moved to another customer, or its key is gone.
   */
  async openMany(entries: OwnedEntry[], audit: DecryptionAudit, db: Knex = this.ledger.db): Promise<CardSecret[]> {
    if (entries.length === 0) return [];
    await recordDecryptions(db, audit, entries.length);
    return this.openUnaudited(entries);
  }

  /** For callers that wrote the audit row themselves (inside their own transaction). */
  openUnaudited(entries: OwnedEntry[]): CardSecret[] {
    const out: CardSecret[] = new Array(entries.length);
    this.openEachUnaudited(entries, (i, plain, start, bar, end) => {
      out[i] = { cardNo: plain.toString('latin1', start, bar), expiry: plain.toString('latin1', bar + 1, end) };
    });
    return out;
  }

  /**
   * The bulk path (billing, validity): opens the entries of one batch after writing its audit row
   * (committed first; on SQLite without an fsync of its own, see recordBulkDecryptions),
   * then calls `use` for each in order with the card number at plain[start, bar) and the expiry at
   * plain[bar + 1, end), as bytes. The bytes are valid only during the call (the buffer is zeroed
   * afterwards), so the numbers live only while the record that needs them is written.
   */
  async openEach(entries: ArrayLike<OwnedEntry>, audit: DecryptionAudit, use: OpenedCard): Promise<void> {
    if (entries.length === 0) return;
    await recordBulkDecryptions(this.ledger, audit, entries.length);
    this.openEachUnaudited(entries, use);
  }

  private openEachUnaudited(entries: ArrayLike<OwnedEntry>, use: OpenedCard): void {
    const n = entries.length;
    let sealedBytes = 0, aadBytes = 0;
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      sealedBytes += (e.enc.length * 3) >> 2;
      aadBytes += Buffer.byteLength(e.partnerId, 'utf8') + 1 + Buffer.byteLength(e.customerNo, 'utf8');
    }
    const batch = new PackedMessages(n, sealedBytes, aadBytes);
    const byKey = new Map<string, number[]>();
    let s = 0, a = 0;
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      const sl = batch.sealed.write(e.enc, s, 'base64');
      const al = batch.aad.write(`${e.partnerId}\0${e.customerNo}`, a, 'utf8');
      batch.place(i, s, sl, a, al);
      s += sl;
      a += al;
      let list = byKey.get(e.keyId);
      if (!list) byKey.set(e.keyId, (list = []));
      list.push(i);
    }
    try {
      const opened = new Uint8Array(n);
      for (const [keyId, idx] of byKey) {
        const gcm = this.keys.get(keyId);
        if (!gcm) throw new VaultError(`vault data key ${keyId} is not in vault_keys`);
        const ok = gcm.openPacked(batch, idx);
        for (const i of idx) opened[i] = ok[i]!;
      }
      for (let i = 0; i < n; i++) {
        if (!opened[i]) throw new VaultError(`vault entry of customer ${entries[i]!.customerNo} (${entries[i]!.partnerId}) does not open: tampered or moved`);
      }
      const { plain, at, len } = batch;
      for (let i = 0; i < n; i++) {
        const start = at[i]!, end = start + len[i]!;
        const bar = plain.indexOf(0x7c, start);
        use(i, plain, start, bar < 0 || bar > end ? end : bar, end);
      }
    } finally {
      batch.wipe();
    }
  }
}

/** Receives one opened card: its number at plain[start, bar), its expiry at plain[bar + 1, end). */
export type OpenedCard = (index: number, plain: Buffer, start: number, bar: number, end: number) => void;

export async function recordDecryptions(db: Knex, audit: DecryptionAudit, count: number): Promise<void> {
  await db('vault_audit').insert({ at: Date.now(), job: audit.job, file_id: audit.fileId, partner_id: audit.partnerId, customer_no: audit.customerNo ?? null, count, purpose: audit.purpose });
}

/**
 * The audit row of a bulk decryption. On SQLite it is committed without an fsync of its own
 * (withDeferredSync): a crash of the process cannot lose it, and the commit that publishes what
 * the numbers went into (a 32 or 41 leaving the centre) is a FULL one that syncs the WAL, this row
 * included, first. So no number leaves the centre unaudited, and a batch does not wait for a disk
 * flush of its own.
 */
async function recordBulkDecryptions(ledger: Ledger, audit: DecryptionAudit, count: number): Promise<void> {
  if (ledger.dialect !== 'sqlite') return recordDecryptions(ledger.db, audit, count);
  await withRawSqlite(ledger, (conn) => withDeferredSync(conn, () => {
    preparedOnce(conn, 'insert into vault_audit (at, job, file_id, partner_id, customer_no, count, purpose) values (?, ?, ?, ?, ?, ?, ?)')
      .run(Date.now(), audit.job, audit.fileId, audit.partnerId, audit.customerNo ?? null, count, audit.purpose);
  }));
}
