// Files a merchant handed us through the portal or the mail channel: the upload id the merchant is
// shown, and the way from it to the ledger row the ingest scan gives the landed file.
import { randomBytes } from 'node:crypto';
import type { Ledger } from './db.ts';
import type { FileRow } from './files.ts';

export interface UploadRow {
  id: string;
  partner_id: string;
  username: string;
  channel: 'web' | 'mail';
  name: string;
  sha256: string;
  size: number;
  uploaded_at: number;
  detail?: string | null;
}

export async function recordUpload(ledger: Ledger, u: Omit<UploadRow, 'id' | 'uploaded_at'>, at = Date.now()): Promise<UploadRow> {
  const row: UploadRow = { ...u, id: randomBytes(12).toString('hex'), uploaded_at: at };
  await ledger.db('web_uploads').insert(row);
  return row;
}

/** One upload, only if it is this partner's. */
export async function getUpload(ledger: Ledger, partnerId: string, id: string): Promise<UploadRow | undefined> {
  const row = await ledger.db('web_uploads').where({ id, partner_id: partnerId }).first();
  return row ? { ...row, size: Number(row.size), uploaded_at: Number(row.uploaded_at) } : undefined;
}

/** The inbound ledger file the upload became (same partner, same bytes, claimed after it landed). */
export async function fileOfUpload(ledger: Ledger, upload: UploadRow): Promise<FileRow | undefined> {
  const row = await ledger
    .db('files')
    .where({ partner_id: upload.partner_id, direction: 'in', sha256: upload.sha256 })
    .where('created_at', '>=', upload.uploaded_at - 1000)
    .orderBy('created_at')
    .first();
  return row as FileRow | undefined;
}
