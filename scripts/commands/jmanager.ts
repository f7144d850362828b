// `tsunagi jmanager query`: the aggregates of a head office from the ledger (90-day history);
// `tsunagi jmanager build`: the jmanager job now, for a run date.
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createLogger } from '../../jobs/log.ts';
import { queryAggregates, type AggregateRow } from '../../jobs/jmanager/aggregates.ts';
import { buildDueJmanagerFiles } from '../../jobs/jmanager/build.ts';
import { parseYmd } from '../../jobs/jmanager/periods.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { checkBusinessDate } from '../../jobs/business-day.ts';
import { centreClock } from '../../jobs/runtime.ts';
import { formatTable, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';

const usage = [
  'tsunagi jmanager query --merchant PARTNER --from YYYYMMDD --to YYYYMMDD [--store S] [--terminal T] [--card-company C] [--csv|--json] [--config FILE]',
  '       tsunagi jmanager build [--date YYYYMMDD] [--force] [--json] [--config FILE]   (--force: build periods whose 81 data never came)',
].join('\n');

const COLUMNS: (keyof AggregateRow)[] = ['business_date', 'store_code', 'merchant_no', 'terminal_id', 'card_company_code', 'payment_kind', 'payment_method', 'sale_count', 'sale_amount', 'void_count', 'void_amount', 'return_count', 'return_amount'];

function date(name: string, v: string | undefined, fallback?: string): string {
  const d = v ?? fallback;
  if (!d) throw new UsageError(`--${name} is required\nusage: ${usage}`);
  try {
    parseYmd(d);
  } catch {
    throw new UsageError(`--${name} '${d}': expected a real YYYYMMDD`);
  }
  return d;
}

const quiet = () => createLogger({ level: process.env.TSUNAGI_LOG_LEVEL ?? 'warn', destination: process.stderr });

async function query(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    { config: { type: 'string' }, merchant: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, store: { type: 'string' }, terminal: { type: 'string' }, 'card-company': { type: 'string' }, csv: { type: 'boolean' }, json: { type: 'boolean' } },
    usage,
  );
  if (positionals.length) throw new UsageError(`unexpected ${positionals.join(' ')}\nusage: ${usage}`);
  if (!values.merchant) throw new UsageError(`--merchant is required\nusage: ${usage}`);
  const from = date('from', values.from);
  const to = date('to', values.to);
  if (from > to) throw new UsageError('--from is after --to');
  const centre = await openCentre(values.config, { log: quiet() });
  try {
    const partner = centre.config.partners.find((p) => p.id === values.merchant);
    if (!partner || partner.role !== 'merchant') throw new UsageError(`--merchant '${values.merchant}': no merchant partner with that id`);
    const rows = await queryAggregates(centre.ledger, { merchantNos: partner.merchantNos, from, to, store: values.store, terminal: values.terminal, cardCompany: values['card-company'] });
    if (values.json) for (const r of rows) printJson(r);
    else if (values.csv) process.stdout.write([COLUMNS.join(','), ...rows.map((r) => COLUMNS.map((c) => r[c]).join(','))].join('\n') + '\n');
    else process.stdout.write(formatTable(rows, COLUMNS));
    return 0;
  } finally {
    await centre.close();
  }
}

async function build(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, date: { type: 'string' }, json: { type: 'boolean' }, force: { type: 'boolean' } }, usage);
  if (positionals.length) throw new UsageError(`unexpected ${positionals.join(' ')}\nusage: ${usage}`);
  const now = centreClock()();
  const runDate = values.date === undefined ? tokyoDate(now) : checkBusinessDate(values.date, now, '--date');
  const centre = await openCentre(values.config, { log: quiet() });
  const engine = await startEngine(centre);
  try {
    const built = await buildDueJmanagerFiles(engine.ctx, runDate, { force: values.force });
    await engine.drain(); // the deliveries it asked for
    if (values.json) for (const b of built) printJson(b);
    else process.stdout.write(formatTable(built.map((b) => ({ ...b, cycle: b.period.cycle, period: `${b.period.from}-${b.period.to}`, created: b.created ? 'new' : 'existing' })), ['partnerId', 'cycle', 'period', 'fileId', 'name', 'dataRows', 'created']));
    return 0;
  } finally {
    await engine.stop();
    await centre.close();
  }
}

export const command: Command = {
  summary: 'Jmanager aggregates: query the history of a head office, or build the due 71 files now',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'query') return query(rest);
    if (sub === 'build') return build(rest);
    throw new UsageError(`expected 'query' or 'build'\nusage: ${usage}`);
  },
};
