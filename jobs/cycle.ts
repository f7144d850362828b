// One full nightly cycle, now, to completion: collect, scan, ingest, route, deliver (scheduled
// partners included), then Jmanager and reconciliation; and a summary of what happened.
import { jobId } from './context.ts';
import type { Engine } from './engine.ts';
import { workInFlight } from './engine.ts';
import { addDays } from './jmanager/periods.ts';
import { recoverOrphans, removeLeftovers, type HeldWork } from './recovery.ts';
import { lastDelivery } from './handlers/deliver.ts';

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
  /** Files still unfinished after the cycle (held by another live process, or stuck): exit 3. */
  unfinished: HeldWork[];
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
    // First what a dead process (a killed cycle, worker or serve) left half-done: taken over at
    // once, since every unfinished file names its holder.
    await recoverOrphans(engine.ctx, { honourHolders: engine.kind === 'embedded' });
    await engine.drain();
    await step('collect');
    await step('scan', { cycle: true });
    // utilities whose validity schedule falls on the cycle's date send their 41s (once per date)
    if (centre.config.partners.some((p) => p.utility?.validity)) await step('utility-validity', { date: options.date });
    for (const p of centre.config.partners.filter((x) => x.schedule)) await step('deliver-scheduled', { partnerId: p.id });
    await step('jmanager', { date: options.date });
    // Reconciliation looks at a whole business day: the one that ended before this run.
    await step('reconcile', { date: addDays(options.date, -1) });
  } finally {
    if (progress) clearInterval(progress);
  }
  const unfinished = await unfinishedWork(engine);
  await removeLeftovers(engine.ctx, { temporariesBefore: started, othersAtWork: unfinished.some((u) => u.state === 'received' || u.state === 'accepted') });
  return { ...(await summarise(engine, started, options.date)), unfinished };
}

/** Files in flight once the cycle is done, with the process that holds each. */
async function unfinishedWork(engine: Engine): Promise<HeldWork[]> {
  const db = engine.ctx.centre.ledger.db;
  const rows = (await db('files').whereIn('state', ['received', 'accepted', 'sending']).select('id', 'state')) as { id: string; state: HeldWork['state'] }[];
  const out: HeldWork[] = [];
  for (const r of rows) {
    const holder = r.state === 'sending' ? (await lastDelivery(db, r.id))?.holder : (await db('transitions').where({ file_id: r.id }).orderBy('id', 'desc').first('actor'))?.actor;
    out.push({ fileId: r.id, state: r.state, holder: holder ?? 'nobody' });
  }
  return out;
}

async function summarise(engine: Engine, since: number, date: string): Promise<Omit<CycleSummary, 'unfinished'>> {
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
    ...(s.unfinished.length ? [`  unfinished          ${s.unfinished.length} (${s.unfinished.slice(0, 5).map((u) => `${u.fileId} ${u.state} held by ${u.holder}`).join(', ')}${s.unfinished.length > 5 ? ', ...' : ''})`] : []),
  ];
  return lines.join('\n') + '\n';
}
