// The hulft_transfers table: per transfer, what HULFT told tsunagi (exit status, 完了コード and
// 詳細コード, count, size, msg0), beside the files and deliveries rows it belongs to.
import type { Knex } from 'knex';

export interface HulftTransferRow {
  id: number;
  direction: 'send' | 'receive';
  partner_id: string;
  hulft_file_id: string;
  host: string | null;
  file_id: string | null;
  delivery_id: number | null;
  attempt_id: string | null;
  msg0: string | null;
  hulft_file_name: string | null;
  sha256: string | null;
  size: number | null;
  status: string | null;
  detail: string | null;
  record_count: number | null;
  rc: number | null;
  outcome: string | null;
  job_vars: string | null;
  receive_key: string | null;
  started_at: number | null;
  finished_at: number | null;
  created_at: number;
  updated_at: number;
}

const NUMERIC = ['size', 'record_count', 'started_at', 'finished_at', 'created_at', 'updated_at'] as const;

export function normaliseTransfer(row: Record<string, unknown>): HulftTransferRow {
  for (const k of NUMERIC) if (typeof row[k] === 'string') row[k] = Number(row[k]);
  return row as unknown as HulftTransferRow;
}

export type NewTransfer = Partial<Omit<HulftTransferRow, 'id' | 'created_at' | 'updated_at'>> & Pick<HulftTransferRow, 'direction' | 'partner_id' | 'hulft_file_id'>;

export async function insertTransfer(db: Knex, row: NewTransfer): Promise<number> {
  const now = Date.now();
  const [id] = await db('hulft_transfers').insert({ ...row, created_at: now, updated_at: now }).returning('id');
  return Number(typeof id === 'object' ? (id as { id: number }).id : id);
}

export async function updateTransfer(db: Knex, id: number, changes: Partial<HulftTransferRow>): Promise<void> {
  await db('hulft_transfers').where({ id }).update({ ...changes, updated_at: Date.now() });
}

export async function transfersOfFile(db: Knex, fileId: string): Promise<HulftTransferRow[]> {
  return (await db('hulft_transfers').where({ file_id: fileId }).orderBy('id')).map(normaliseTransfer);
}

/** 完了コード-詳細コード as HULFT's logs show them: `250-205`. */
export function hulftCodes(row: Pick<HulftTransferRow, 'status' | 'detail'>): string {
  if (row.status === null && row.detail === null) return '';
  return `${row.status ?? ''}-${row.detail ?? ''}`;
}

/** The key of one received transfer: a second landing of the same bytes under the same ID is the same file. */
export function receiveKey(partnerId: string, fileId: string, sha256: string): string {
  return `${partnerId}|${fileId}|${sha256}`;
}
