// The card vault of utility billing: card numbers and expiries encrypted (AES-256-GCM) under a data
// key that the key-encryption key wraps (spool/keys.ts), found by a keyed hash (HMAC-SHA-256 under
// a key derived from the KEK), never by the number. Every decryption is audited (which job, which
// file, how many). Each sealed entry is bound to its owner (utility and customer number) as
// associated data, so an entry copied onto another customer does not open.
import { randomBytes, createHmac } from 'node:crypto';
import type { Knex } from 'knex';
import { deriveKey, newDataKey, rewrapDataKey, unwrapDataKey, wrapDataKey, type KeyRing } from '../keys.ts';
import type { Ledger } from '../ledger/index.ts';
import { withRawSqlite } from '../ledger/sqlite-raw.ts';
import { auditBulkDecryption, CardOpener, OpenedCards, VaultError, type DecryptionAudit, type SealedColumns } from './card-opener.ts';
import { BatchGcm } from './gcm-batch.ts';

export { OpenedCards, VaultError, type DecryptionAudit, type SealedColumns } from './card-opener.ts';

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


const KEY_CONTEXT = 'card-vault/data-key';
const owner = (partnerId: string, customerNo: string) => Buffer.from(`${partnerId}\0${customerNo}`, 'utf8'); // the associated data

export class Vault {
  private readonly opener: CardOpener;

  private constructor(
    private readonly ledger: Ledger,
    private readonly keys: Map<string, BatchGcm>,
    private readonly dataKeys: Map<string, Buffer>,
    private readonly currentKeyId: string,
    private readonly hmacKey: Buffer,
  ) {
    this.opener = new CardOpener(keys);
  }

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
    const dataKeys = new Map<string, Buffer>();
    let first: Buffer | undefined;
    for (const r of rows) {
      const dataKey = unwrapDataKey(ring, Buffer.from(r.wrapped, 'base64'), KEY_CONTEXT);
      first ??= dataKey;
      keys.set(r.id, new BatchGcm(dataKey));
      dataKeys.set(r.id, dataKey);
    }
    // The lookup HMAC key comes from the vault's first data key, not from the KEK: a KEK rotation
    // re-wraps data keys and must not change the HMACs (the invalid-card lists keep no plaintext
    // to recompute them from).
    return new Vault(ledger, keys, dataKeys, rows[0]!.id, deriveKey({ id: rows[0]!.id, key: first! }, 'hmac:card-vault'));
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

  /**
   * The columnar bulk path: writes the batch's audit row (as openEach does), then opens every
   * entry. The caller wipes the result once the records that need the numbers are written.
   */
  async openColumns(cols: SealedColumns, audit: DecryptionAudit): Promise<OpenedCards> {
    await recordBulkDecryptions(this.ledger, audit, cols.count);
    return this.opener.open(cols);
  }

  /**
   * Copies of the data keys, for a worker thread of this process that opens entries itself
   * (CardOpener.fromDataKeys, with an audit row of its own before each batch). The caller zeroes
   * the copies once handed over; they never go to a log, a file or another process.
   */
  dataKeysForThread(): { id: string; key: Buffer }[] {
    return [...this.dataKeys].map(([id, key]) => ({ id, key: Buffer.from(key) }));
  }

  private openEachUnaudited(entries: ArrayLike<OwnedEntry>, use: OpenedCard): void {
    const n = entries.length;
    const partnerIds: string[] = new Array(n), customerNos: string[] = new Array(n), encs: string[] = new Array(n), keyIds: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      partnerIds[i] = e.partnerId; customerNos[i] = e.customerNo; encs[i] = e.enc; keyIds[i] = e.keyId;
    }
    // one owner (validity: one utility's cards) lets the opener encode the AAD's prefix once
    const oneOwner = partnerIds.every((p) => p === partnerIds[0]);
    const cards = this.opener.open({ partnerId: oneOwner && n > 0 ? partnerIds[0]! : partnerIds, customerNos, encs, keyIds, count: n });
    try {
      for (let i = 0; i < n; i++) use(i, cards.plain, cards.start[i]!, cards.bar[i]!, cards.end[i]!);
    } finally {
      cards.wipe();
    }
  }
}

/** Receives one opened card: its number at plain[start, bar), its expiry at plain[bar + 1, end). */
export type OpenedCard = (index: number, plain: Buffer, start: number, bar: number, end: number) => void;

export async function recordDecryptions(db: Knex, audit: DecryptionAudit, count: number): Promise<void> {
  await db('vault_audit').insert({ at: Date.now(), job: audit.job, file_id: audit.fileId, partner_id: audit.partnerId, customer_no: audit.customerNo ?? null, count, purpose: audit.purpose });
}

/** The audit row of a bulk decryption: on SQLite without an fsync of its own (auditBulkDecryption says why that is safe). */
async function recordBulkDecryptions(ledger: Ledger, audit: DecryptionAudit, count: number): Promise<void> {
  if (ledger.dialect !== 'sqlite') return recordDecryptions(ledger.db, audit, count);
  await withRawSqlite(ledger, (conn) => auditBulkDecryption(conn, audit, count));
}
