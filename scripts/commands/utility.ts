// `tsunagi utility`: the card vault of utility billing, for people. `show` prints one customer's
// card masked (first 6 / last 4) and its history; `validity` sends a utility's validity check now.
// No subcommand decrypts a card number: the masked number is stored beside the sealed one.
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { startEngine } from '../../jobs/engine.ts';
import { jobId } from '../../jobs/context.ts';
import { materializeUtilityBills } from '../../jobs/utility/bill-pack.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { formatTable, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';
import { formatTokyo } from '../time-format.ts';

const usage = 'tsunagi utility show --customer NO [--partner ID] [--json] [--config FILE]\n       tsunagi utility validity --partner ID [--date YYYYMMDD] [--config FILE]';

export const command: Command = {
  summary: "utility billing: a customer's card on file (masked) and history; a validity check now",
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      config: { type: 'string' }, json: { type: 'boolean' }, customer: { type: 'string' }, partner: { type: 'string' }, date: { type: 'string' },
    }, usage);
    const sub = positionals[0];
    if (positionals.length !== 1 || (sub !== 'show' && sub !== 'validity')) throw new UsageError(`expected show or validity\nusage: ${usage}`);
    if (sub === 'validity') {
      if (!values.partner) throw new UsageError(`--partner is required\nusage: ${usage}`);
      if (values.date && !/^\d{8}$/.test(values.date)) throw new UsageError('--date must be YYYYMMDD');
      const centre = await openCentre(values.config, { log: createLogger({ level: 'warn' }) });
      try {
        const p = centre.config.partners.find((x) => x.id === values.partner);
        if (!p || p.role !== 'utility') throw new UsageError(`${values.partner} is not a utility in ${centre.config.file}`);
        const engine = await startEngine(centre);
        try {
          const date = values.date ?? tokyoDate(engine.ctx.now());
          await engine.enqueue({ kind: 'utility-validity', input: { partnerId: p.id, date }, jobId: jobId('validity', p.id, date) });
          await engine.drain();
          const files = await centre.ledger.db('files').where('id', 'like', `U41.${date}.%`).select('id', 'partner_id', 'state', 'record_count', 'name');
          process.stdout.write(formatTable(files, ['id', 'partner_id', 'state', 'record_count', 'name']));
        } finally {
          await engine.stop();
        }
      } finally {
        await centre.close();
      }
      return 0;
    }
    if (!values.customer) throw new UsageError(`--customer is required\nusage: ${usage}`);
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn' }) });
    try {
      const db = centre.ledger.db;
      const where = { customer_no: values.customer, ...(values.partner ? { partner_id: values.partner } : {}) };
      const customers = (await db('utility_customers').where(where).orderBy('partner_id')
        .select('partner_id', 'customer_no', 'state', 'card_company_code', 'masked_card_no', 'since', 'updated_at')) as Record<string, unknown>[];
      if (customers.length === 0) {
        process.stderr.write(`customer ${values.customer} is not registered${values.partner ? ` with ${values.partner}` : ''}\n`);
        return 3;
      }
      const history = (await db('utility_card_history').where(where).orderBy('id')
        .select('partner_id', 'masked_card_no', 'card_company_code', 'expiry', 'valid_from', 'valid_to', 'ended_by')) as Record<string, unknown>[];
      await materializeUtilityBills(centre.ledger); // forwarded bills are packed until something reads them
      const bills = (await db('utility_bills').where(where).orderBy([{ column: 'billing_month' }, { column: 'bill_no' }])
        .select('partner_id', 'billing_month', 'bill_no', 'amount', 'use_date', 'card_last4', 'centre_ref', 'answer_file_id')) as Record<string, unknown>[];
      if (values.json) {
        printJson({ customers, history, bills });
        return 0;
      }
      const out = process.stdout;
      for (const c of customers) {
        out.write(`${c.partner_id} customer ${c.customer_no}: ${c.state}, card ${c.masked_card_no ?? '(none)'} at ${c.card_company_code ?? '-'}, registered ${formatTokyo(Number(c.since))}\n`);
      }
      out.write('\ncard history\n');
      out.write(formatTable(history.map((h) => ({ ...h, from: formatTokyo(Number(h.valid_from)), to: h.valid_to === null ? '(current)' : formatTokyo(Number(h.valid_to)) })),
        ['partner_id', 'masked_card_no', 'card_company_code', 'expiry', 'from', 'to', 'ended_by']));
      if (bills.length) {
        out.write('\nbills forwarded\n');
        out.write(formatTable(bills.map((b) => ({ ...b, answered: b.answer_file_id ? 'yes' : 'waiting' })), ['partner_id', 'billing_month', 'bill_no', 'amount', 'use_date', 'card_last4', 'centre_ref', 'answered']));
      }
    } finally {
      await centre.close();
    }
    return 0;
  },
};
