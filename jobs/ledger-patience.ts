// A job that fails while the ledger's database is away (a PostgreSQL restart or failover) waits for
// it and runs again without using up one of its attempts: otherwise a restart of a few seconds
// spends all of a job's attempts and its file waits for the next cycle's sweep. Whether the
// ledger is away is asked of the ledger itself (a `select 1`), not read from a bare ECONNREFUSED,
// which also comes from a card company's server (the attempts are for that); PostgreSQL's own
// words for a server that is stopping or recovering count too, because a worker thread's
// connection can still hear them after this process's `select 1` answers.
import type { Logger } from 'pino';
import type { Ledger } from '../spool/ledger/index.ts';

/** How long one job waits, in all, for a ledger that does not answer before its attempt counts. */
export const LEDGER_PATIENCE_MS = 120_000;

/** What only PostgreSQL says, while it stops, restarts or recovers (SQLSTATE 57P01-57P03). */
const POSTGRES_AWAY = /the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)|terminating connection due to administrator command|Connection terminated unexpectedly/i;

async function ledgerAnswers(ledger: Ledger, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([ledger.db.raw('select 1').then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `job`; when it fails and the ledger does not answer (or PostgreSQL said it is stopping or
 * starting), waits (0.5 s doubling to 5 s) until the
 * ledger answers and runs it again, within `patienceMs` in all. Any other failure is the caller's.
 */
export async function withLedgerPatience<T>(ledger: Ledger, log: Logger, what: object, job: () => Promise<T>, patienceMs = LEDGER_PATIENCE_MS): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      return await job();
    } catch (err) {
      if (ledger.dialect !== 'postgres') throw err;
      const away = POSTGRES_AWAY.test((err as Error).message);
      if (!away && (await ledgerAnswers(ledger, 2000))) throw err;
      log.warn({ ...what, error: (err as Error).message }, 'the ledger is not answering: the job waits for it and runs again');
      let delay = 500;
      for (;;) {
        if (Date.now() - started + delay > patienceMs) throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
        if (await ledgerAnswers(ledger, 2000)) break;
      }
      // PostgreSQL answering here does not mean a thread's fresh connection is let in yet: the next
      // run may meet the same words, and waits again within the same patience.
      log.warn({ ...what, waitedMs: Date.now() - started }, 'the ledger answers again: the job runs again');
    }
  }
}
