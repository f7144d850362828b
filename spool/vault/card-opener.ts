// Opening vault entries a batch at a time, by columns (customer numbers, sealed entries, key ids as
// arrays: no object per entry, the owner's part of the associated data encoded once), and the
// audit row of a bulk decryption on a raw SQLite connection. Apart from vault.ts so that a worker
// thread can load it alone: it needs only node:crypto and the connection it is given, never the
// ledger's knex or the key-encryption key.
import { BatchGcm, PackedMessages } from './gcm-batch.ts';
import { preparedOnce, withDeferredSync, type RawSqlite } from '../ledger/sqlite-raw.ts';

export class VaultError extends Error {}

export interface DecryptionAudit {
  /** the job (or command) that needs the numbers */
  job: string;
  fileId: string | null;
  partnerId: string;
  /** set when the decryption is about one customer */
  customerNo?: string;
  purpose: string;
}

/** Sealed entries by column: entry i belongs to (partnerId, customerNos[i]), sealed as encs[i] (base64) under keyIds[i]. */
export interface SealedColumns {
  /** one owner for every entry, or one per entry */
  partnerId: string | ArrayLike<string>;
  customerNos: ArrayLike<string>;
  encs: ArrayLike<string>;
  keyIds: ArrayLike<string>;
  count: number;
}

/**
 * The opened entries of a batch: entry i's card number at plain[start[i], bar[i]), its expiry at
 * plain[bar[i] + 1, end[i]), as bytes. `plain` is a buffer of its own (byteOffset 0, its whole
 * ArrayBuffer), so it can be transferred to another thread; wipe() zeroes it.
 */
export class OpenedCards {
  constructor(readonly plain: Buffer, readonly start: Int32Array, readonly bar: Int32Array, readonly end: Int32Array) {}

  get count(): number {
    return this.start.length;
  }

  wipe(): void {
    this.plain.fill(0);
  }
}

/** Whether every character of s is ASCII (then its UTF-8 bytes are its char codes). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Opens vault entries with the vault's data keys (by key id). */
export class CardOpener {
  constructor(private readonly keys: ReadonlyMap<string, BatchGcm>) {}

  static fromDataKeys(keys: readonly { id: string; key: Uint8Array }[]): CardOpener {
    return new CardOpener(new Map(keys.map((k) => [k.id, new BatchGcm(Buffer.from(k.key))])));
  }

  /**
   * Opens every entry (without writing an audit row: the caller has). Throws VaultError when one
   * does not open: tampered, moved to another customer, or its key is gone.
   */
  open(cols: SealedColumns): OpenedCards {
    const n = cols.count;
    const { customerNos, encs, keyIds } = cols;
    const single = typeof cols.partnerId === 'string' ? cols.partnerId : undefined;
    const owners = typeof cols.partnerId === 'string' ? undefined : cols.partnerId;
    // the associated data is `${partnerId}\0${customerNo}` in UTF-8: the owner's prefix encoded once
    const prefix = single !== undefined ? Buffer.from(`${single}\0`, 'utf8') : undefined;
    let sealedBytes = 0, aadBytes = 0;
    for (let i = 0; i < n; i++) {
      sealedBytes += (encs[i]!.length * 3) >> 2;
      const c = customerNos[i]!;
      aadBytes += (prefix ? prefix.length : Buffer.byteLength(owners![i]!, 'utf8') + 1) + (isAscii(c) ? c.length : Buffer.byteLength(c, 'utf8'));
    }
    const batch = new PackedMessages(n, sealedBytes, aadBytes);
    const { sealed, aad } = batch;
    let single0: string | undefined, singleList: number[] | undefined;
    let byKey: Map<string, number[]> | undefined;
    let s = 0, a = 0;
    for (let i = 0; i < n; i++) {
      const sl = sealed.write(encs[i]!, s, 'base64');
      const a0 = a;
      if (prefix) {
        for (let j = 0; j < prefix.length; j++) aad[a++] = prefix[j]!;
      } else {
        a += aad.write(`${owners![i]!}\0`, a, 'utf8');
      }
      const c = customerNos[i]!;
      if (isAscii(c)) for (let j = 0; j < c.length; j++) aad[a++] = c.charCodeAt(j);
      else a += aad.write(c, a, 'utf8');
      batch.place(i, s, sl, a0, a - a0);
      s += sl;
      // entries of one data key (the usual case) without a Map
      const k = keyIds[i]!;
      if (single0 === undefined) { single0 = k; singleList = []; }
      if (k === single0 && !byKey) singleList!.push(i);
      else {
        if (!byKey) { byKey = new Map([[single0, singleList!]]); }
        let list = byKey.get(k);
        if (!list) byKey.set(k, (list = []));
        list.push(i);
      }
    }
    const groups = byKey ?? new Map(single0 === undefined ? [] : [[single0, singleList!]]);
    try {
      const opened = new Uint8Array(n);
      for (const [keyId, idx] of groups) {
        const gcm = this.keys.get(keyId);
        if (!gcm) throw new VaultError(`vault data key ${keyId} is not in vault_keys`);
        const ok = gcm.openPacked(batch, idx);
        for (const i of idx) opened[i] = ok[i]!;
      }
      for (let i = 0; i < n; i++) {
        if (!opened[i]) throw new VaultError(`vault entry of customer ${customerNos[i]!} (${single ?? owners![i]!}) does not open: tampered or moved`);
      }
      const start = new Int32Array(n), bar = new Int32Array(n), end = new Int32Array(n);
      const { plain, at, len } = batch;
      for (let i = 0; i < n; i++) {
        const b = at[i]!, e = b + len[i]!;
        let p = b;
        while (p < e && plain[p] !== 0x7c) p++;
        start[i] = b; bar[i] = p; end[i] = e;
      }
      return new OpenedCards(plain, start, bar, end);
    } catch (err) {
      batch.wipe();
      throw err;
    }
  }
}

const BULK_AUDIT_SQL = 'insert into vault_audit (at, job, file_id, partner_id, customer_no, count, purpose) values (?, ?, ?, ?, ?, ?, ?)';

/**
 * The audit row of a bulk decryption on a raw SQLite connection, committed without an fsync of its
 * own (withDeferredSync): a crash of the process cannot lose it, and the commit that publishes what
 * the numbers went into (a 32 or 41 leaving the centre) is a FULL one that syncs the WAL, this row
 * included, first. So no number leaves the centre unaudited, and a batch does not wait for a disk
 * flush of its own. The connection must be the caller's alone meanwhile.
 */
export function auditBulkDecryption(conn: RawSqlite, audit: DecryptionAudit, count: number): void {
  withDeferredSync(conn, () => {
    preparedOnce(conn, BULK_AUDIT_SQL).run(Date.now(), audit.job, audit.fileId, audit.partnerId, audit.customerNo ?? null, count, audit.purpose);
  });
}
