// Every listener's way to write its audit rows. Most rows (logins, refusals, downloads) are
// written in the background, so a slow ledger never holds a partner's session, and a listener
// waits for them at stop. An upload's row is different: it must be committed before the partner
// is told the upload succeeded (PCI DSS 10.5), so `durable` returns only once it is, and throws
// (with an alert in the log) when it cannot be: the listener then refuses the upload.
import type { Logger } from 'pino';
import type { Ledger } from '../spool/ledger/db.ts';
import { recordAudit, type AuditEvent } from '../spool/ledger/audit.ts';

export interface AuditTrail {
  /** Writes in the background; a failure is logged. Refusals and downloads are logged too (PCI DSS 10.2). */
  note(partnerId: string | null, event: AuditEvent, remote: string | undefined, detail: string): void;
  /** Resolves once the row is committed; rejects (and alerts) when it cannot be. */
  durable(partnerId: string | null, event: AuditEvent, remote: string | undefined, detail: string): Promise<void>;
  /** Waits for the background writes (a listener's stop). */
  settled(): Promise<void>;
}

export function createAuditTrail(ledger: Ledger, log: Logger, protocol: string): AuditTrail {
  const pending = new Set<Promise<void>>();
  const logEvent = (partnerId: string | null, event: AuditEvent, remote: string | undefined, detail: string) => {
    if (event === 'login_refused' || event === 'refused') log.warn({ partnerId, event, remote, detail }, `${protocol} refused`);
    else if (event === 'download') log.info({ partnerId, event, remote, detail }, `${protocol} download`);
  };
  return {
    note(partnerId, event, remote, detail) {
      logEvent(partnerId, event, remote, detail);
      const p = recordAudit(ledger, { partnerId, protocol, event, remote, detail })
        .catch((err: Error) => log.error({ err: err.message, event }, 'audit write failed'))
        .finally(() => pending.delete(p));
      pending.add(p);
    },
    async durable(partnerId, event, remote, detail) {
      logEvent(partnerId, event, remote, detail);
      try {
        await recordAudit(ledger, { partnerId, protocol, event, remote, detail });
      } catch (err) {
        log.error({ alert: 'audit-write-failed', protocol, partnerId, event, err: (err as Error).message }, 'audit row could not be committed: the upload is refused');
        throw err;
      }
    },
    async settled() {
      while (pending.size) await Promise.allSettled([...pending]);
    },
  };
}
