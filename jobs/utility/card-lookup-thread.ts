// The lookup thread of billing (card-lookup.ts starts it): for each batch of bills it looks the
// customers up on a read connection of its own, writes the batch's audit row on it, then opens the
// cards, and hands the numbers back in a buffer it transfers (so no copy stays here). It holds
// the vault's data keys, never the key-encryption key, and logs nothing.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { selectByKeysRaw, type RawSqlite } from '../../spool/ledger/sqlite-raw.ts';
import { auditBulkDecryption, CardOpener, type DecryptionAudit } from '../../spool/vault/card-opener.ts';
import { CUSTOMER_SELECT, distinct, sealedBatch } from './card-lookup-core.ts';

export interface LookupThreadData {
  sqliteFile: string;
  dataKeys: { id: string; key: Uint8Array }[];
  partnerId: string;
  audit: DecryptionAudit;
}
export interface LookupRequest { seq: number; customerNos: string[] }
export type LookupReply =
  | { seq: number; status: Uint8Array; billOf: Int32Array; companies: string[]; plain: Uint8Array; start: Int32Array; bar: Int32Array; end: Int32Array }
  | { seq: number; error: string; vault: boolean };

const data = workerData as LookupThreadData;
const opener = CardOpener.fromDataKeys(data.dataKeys);
for (const k of data.dataKeys) k.key.fill(0);
type Connection = RawSqlite & { pragma(sql: string): unknown; close(): void };
const Database = createRequire(import.meta.url)('better-sqlite3') as new (file: string, options: { fileMustExist: boolean }) => Connection;
const conn = new Database(data.sqliteFile, { fileMustExist: true });
conn.pragma('busy_timeout = 10000');

parentPort!.on('message', (req: LookupRequest | 'close') => {
  if (req === 'close') {
    conn.close();
    parentPort!.close();
    return;
  }
  try {
    const rows = selectByKeysRaw(conn, CUSTOMER_SELECT, [data.partnerId], distinct(req.customerNos), true) as unknown[][];
    const batch = sealedBatch(data.partnerId, req.customerNos, rows);
    if (batch.columns.count > 0) auditBulkDecryption(conn, data.audit, batch.columns.count); // before any number is opened
    const cards = opener.open(batch.columns);
    let plain = cards.plain;
    if (plain.byteOffset !== 0 || plain.buffer.byteLength !== plain.length) { // not a buffer of its own: move a copy
      plain = Buffer.from(new Uint8Array(cards.plain));
      cards.wipe();
    }
    const reply: LookupReply = { seq: req.seq, status: batch.status, billOf: batch.billOf, companies: batch.companies, plain, start: cards.start, bar: cards.bar, end: cards.end };
    parentPort!.postMessage(reply, [plain.buffer as ArrayBuffer, batch.status.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ seq: req.seq, error: (err as Error).message, vault: (err as Error).name === 'VaultError' || (err as Error).constructor.name === 'VaultError' } satisfies LookupReply);
  }
});
