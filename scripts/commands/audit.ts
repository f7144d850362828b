// `tsunagi audit verify`: walks the audit trail's hash chain (from its latest checkpoint) and exits
// non-zero naming the first row that was edited, deleted, inserted or reordered.
// `tsunagi audit prune`: the purge job's audit retention, on demand.
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { pruneAudit, verifyAuditChain } from '../../spool/ledger/audit.ts';
import { parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';
import { formatTokyo } from '../time-format.ts';

const usage = 'tsunagi audit verify|prune [--json] [--config FILE]';
/** A broken chain: the evidence was changed (not "could not run", not "bad usage"). */
export const EXIT_CHAIN_BROKEN = 4;

export const command: Command = {
  summary: 'verify the audit trail hash chain (names the first bad row), or prune it past its retention',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const action = positionals[0];
    if (positionals.length !== 1 || (action !== 'verify' && action !== 'prune')) throw new UsageError(`expected verify or prune\nusage: ${usage}`);
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn', destination: process.stderr }) });
    try {
      if (action === 'prune') {
        const result = await pruneAudit(centre.ledger, Date.now() - centre.config.audit.retentionDays * 86400_000);
        if (values.json) printJson(result);
        else process.stdout.write(`pruned ${result.pruned} audit rows${result.checkpoint ? ` through row ${result.checkpoint.through_id} (checkpoint ${result.checkpoint.id})` : ''}\n`);
        return 0;
      }
      const result = await verifyAuditChain(centre.ledger);
      if (values.json) printJson(result);
      else {
        const from = result.checkpoint ? `checkpoint ${result.checkpoint.id} (rows through ${result.checkpoint.through_id} pruned ${formatTokyo(result.checkpoint.at)})` : 'the start of the chain';
        if (result.ok) process.stdout.write(`audit chain ok: ${result.rows} rows from ${from}; head row ${result.lastId} hash ${result.lastHash}\n`);
        else process.stderr.write(`audit chain BROKEN at row ${result.problem!.rowId}: ${result.problem!.reason} (${result.rows} rows verified from ${from})\n`);
      }
      return result.ok ? 0 : EXIT_CHAIN_BROKEN;
    } finally {
      await centre.close();
    }
  },
};
