// A separate process that appends audit rows to a ledger (the audit-chain test runs several at once,
// as several worker processes would).
import { openLedger, recordAudit } from '../../spool/ledger/index.ts';

const [url, writer, count] = process.argv.slice(2) as [string, string, string];
const ledger = await openLedger(url, { migrate: false });
try {
  await Promise.all(Array.from({ length: Number(count) }, (_, i) => recordAudit(ledger, { partnerId: `w${writer}`, protocol: 'ftp', event: 'login_ok', detail: `writer ${writer} row ${i}` })));
} finally {
  await ledger.close();
}
