// The audit trail: every login (ok or refused), upload, download and refused request, per partner.
import type { Ledger } from './db.ts';

export type AuditEvent = 'login_ok' | 'login_refused' | 'upload' | 'download' | 'refused' | 'session_end' | 'action';

export interface AuditEntry {
  partnerId: string | null;
  protocol: string;
  event: AuditEvent;
  remote?: string;
  detail?: string;
}

export async function recordAudit(ledger: Ledger, entry: AuditEntry, at = Date.now()): Promise<void> {
  await ledger.db('audit').insert({
    at,
    partner_id: entry.partnerId,
    protocol: entry.protocol,
    event: entry.event,
    remote: entry.remote ?? null,
    detail: entry.detail?.slice(0, 1000) ?? null,
  });
}

export interface AuditRow {
  id: number;
  at: number;
  partner_id: string | null;
  protocol: string;
  event: AuditEvent;
  remote: string | null;
  detail: string | null;
}

export async function listAudit(ledger: Ledger, filter: { partnerId?: string; protocol?: string } = {}): Promise<AuditRow[]> {
  const q = ledger.db('audit').orderBy('id');
  if (filter.partnerId) q.where('partner_id', filter.partnerId);
  if (filter.protocol) q.where('protocol', filter.protocol);
  return (await q).map((r: AuditRow) => ({ ...r, at: Number(r.at) }));
}
