// One full nightly cycle, now, to completion: collect, scan, ingest, route, deliver (scheduled
// partners included), then Jmanager and reconciliation; and a summary of what happened.
import { jobId } from './context.ts';
import type { Engine } from './engine.ts';
import { workInFlight } from './engine.ts';
import { addDays } from './jmanager/periods.ts';

export interface CycleSummary {
  date: string;
  tookMs: number;
  filesIn: number;
  filesRejected: number;
  recordsAccepted: number;
  recordsRejected: number;
  filesOut: Record<string, number>;
  deliveriesOk: number;
  deliveriesFailed: number;
  waitingForPickup: number;
  failedFiles: string[];
}

export interface CycleOptions {
  date: string;
  /** Called now and then with a one-line progress text. */
  onProgress?(text: string): void;
}

export async function runCycle(engine: Engine, options: CycleOptions): Promise<CycleSummary> {
  const { centre } = engine.ctx;
  const started = Date.now();
  const stamp = `${options.date}-${started}`;
  const progress = options.onProgress
    ? setInterval(async () => {
        const inFlight = await workInFlight(centre).catch(() => 0);
        const done = await centre.ledger.db('files').where('updated_at', '>=', started).count({ n: '*' });
        options.onProgress!(`files touched ${Number((done[0] as { n: number }).n)}, in flight ${inFlight}`);
      }, 250)
    : undefined;
  try {
    const step = async (kind: Parameters<Engine['enqueue']>[0]['kind'], input: Record<string, unknown> = {}) => {
      await engine.enqueue({ kind, input, jobId: jobId('cycle', kind, stamp, String(input.partnerId ?? '')) });
      await engine.drain();
    };
    await step('collect');
    await step('scan', { cycle: true });
    for (const p of centre.config.partners.filter((x) => x.schedule)) await step('deliver-scheduled', { partnerId: p.id });
    await step('jmanager', { date: options.date });
    // Reconciliation looks at a whole business day: the one that ended before this run.
    await step('reconcile', { date: addDays(options.date, -1) });
  } finally {
    if (progress) clearInterval(progress);
  }
  return summarise(engine, started, options.date);
}

async function summarise(engine: Engine, since: number, date: string): Promise<CycleSummary> {
  const { centre } = engine.ctx;
  const db = centre.ledger.db;
  // Files that arrived before the cycle (over a listener, say) but were processed in it count too.
  const inbound = await db('files').where('direction', 'in').where('updated_at', '>=', since).select('state', 'accepted_count', 'rejected_count');
  const outbound = await db('files').where('direction', 'out').where('created_at', '>=', since).select('id', 'partner_id', 'state');
  const deliveries = await db('deliveries').where('started_at', '>=', since).select('outcome');
  const filesOut: Record<string, number> = {};
  for (const f of outbound) filesOut[f.partner_id] = (filesOut[f.partner_id] ?? 0) + 1;
  const failedOut = await db('files').where('direction', 'out').where('state', 'failed').where('updated_at', '>=', since).select('id');
  return {
    date,
    tookMs: Date.now() - since,
    filesIn: inbound.length,
    filesRejected: inbound.filter((f) => f.state === 'rejected').length,
    recordsAccepted: inbound.reduce((a, f) => a + Number(f.accepted_count ?? 0), 0),
    recordsRejected: inbound.reduce((a, f) => a + Number(f.rejected_count ?? 0), 0),
    filesOut,
    deliveriesOk: deliveries.filter((d) => d.outcome === 'ok').length,
    deliveriesFailed: failedOut.length,
    waitingForPickup: outbound.filter((f) => f.state === 'ready').length,
    failedFiles: failedOut.map((f) => f.id as string),
  };
}

export function formatSummary(s: CycleSummary): string {
  const lines = [
    `cycle ${s.date} finished in ${(s.tookMs / 1000).toFixed(1)} s`,
    `  files in            ${s.filesIn} (${s.filesRejected} rejected)`,
    `  records accepted    ${s.recordsAccepted}`,
    `  records rejected    ${s.recordsRejected}`,
    `  files out           ${Object.values(s.filesOut).reduce((a, b) => a + b, 0)}`,
    ...Object.entries(s.filesOut)
      .sort()
      .map(([p, n]) => `    ${p.padEnd(18)}${n}`),
    `  deliveries done     ${s.deliveriesOk}`,
    `  waiting for pickup  ${s.waitingForPickup}`,
    `  deliveries failed   ${s.deliveriesFailed}${s.failedFiles.length ? ` (${s.failedFiles.join(', ')})` : ''}`,
  ];
  return lines.join('\n') + '\n';
}
