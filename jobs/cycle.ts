// One full nightly cycle, now, to completion: collect, scan, ingest, route, deliver (scheduled
// partners included), then Jmanager and reconciliation; and a summary of what happened.
import { jobId } from './context.ts';
import type { Engine } from './engine.ts';
import { workInFlight } from './engine.ts';
import { addDays, parseYmd } from './jmanager/periods.ts';
import { checkBusinessDate } from './business-day.ts';

const TOKYO_OFFSET_MS = 9 * 3600_000;
import { recoverOrphans, removeLeftovers, type HeldWork } from './recovery.ts';
import { lastDelivery } from './handlers/deliver.ts';

/** The state of a business day as a whole: whatever handled its files (serve, an earlier run, this one). */
export interface DaySummary {
  /** the business day that ended before the run date; the window runs from its start to the end of the run date */
  businessDate: string;
  fromMs: number;
  toMs: number;
  filesIn: number;
  filesRejected: number;
  /** inbound files still on their way (received, accepted) */
  filesInFlight: number;
  recordsAccepted: number;
  recordsRejected: number;
  filesOut: number;
  waitingForPickup: number;
  deliveriesFailed: number;
  rejectedFiles: string[];
  failedFiles: string[];
}

/** The top-level counts are what this run did; `day` is the business day as a whole. */
export interface CycleSummary {
  date: string;
  day: DaySummary;
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
  /** the run date, YYYYMMDD: real, and not after today on the centre clock */
  date: string;
  /** Called now and then with a one-line progress text. */
  onProgress?(text: string): void;
}

export async function runCycle(engine: Engine, options: CycleOptions): Promise<CycleSummary> {
  const { centre } = engine.ctx;
  checkBusinessDate(options.date, engine.ctx.now(), 'cycle date');
  const started = Date.now();
  // base 36: a 13-digit epoch-ms in a job id can pass Luhn and be masked in the logs as a card number
  const stamp = `${options.date}-${started.toString(36)}`;
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
  return { ...(await summarise(engine, started, options.date)), unfinished, day: await summariseDay(engine, options.date) };
}

/** Every file of the business day before `date` and of `date` itself, by the centre clock. */
async function summariseDay(engine: Engine, date: string): Promise<DaySummary> {
  const db = engine.ctx.centre.ledger.db;
  const businessDate = addDays(date, -1);
  const fromMs = parseYmd(businessDate) - TOKYO_OFFSET_MS;
  const toMs = parseYmd(date) - TOKYO_OFFSET_MS + 86_400_000;
  const inWindow = (q: ReturnType<typeof db>) => q.where('created_at', '>=', fromMs).where('created_at', '<', toMs);
  const inbound = (await inWindow(db('files').where('direction', 'in')).select('id', 'name', 'partner_id', 'state', 'accepted_count', 'rejected_count')) as Record<string, unknown>[];
  const outbound = (await inWindow(db('files').where('direction', 'out')).select('id', 'state')) as Record<string, unknown>[];
  const rejected = inbound.filter((f) => f.state === 'rejected');
  const failed = outbound.filter((f) => f.state === 'failed');
  return {
    businessDate,
    fromMs,
    toMs,
    filesIn: inbound.length,
    filesRejected: rejected.length,
    filesInFlight: inbound.filter((f) => f.state === 'received' || f.state === 'accepted').length,
    recordsAccepted: inbound.reduce((a, f) => a + Number(f.accepted_count ?? 0), 0),
    recordsRejected: inbound.reduce((a, f) => a + Number(f.rejected_count ?? 0), 0),
    filesOut: outbound.length,
    waitingForPickup: outbound.filter((f) => f.state === 'ready').length,
    deliveriesFailed: failed.length,
    rejectedFiles: rejected.map((f) => `${f.id} (${f.partner_id} ${f.name})`),
    failedFiles: failed.map((f) => String(f.id)),
  };
}

/** Exit 3 material: something of the day, or of this run, was rejected or failed, or is unfinished. */
export function cycleHadRejections(s: CycleSummary): boolean {
  return s.filesRejected > 0 || s.recordsRejected > 0 || s.deliveriesFailed > 0 || s.unfinished.length > 0 || s.day.filesRejected > 0 || s.day.recordsRejected > 0 || s.day.deliveriesFailed > 0;
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

async function summarise(engine: Engine, since: number, date: string): Promise<Omit<CycleSummary, 'unfinished' | 'day'>> {
  const { centre } = engine.ctx;
  const db = centre.ledger.db;
  // Files that arrived before the cycle (over a listener, say) but were processed in it count too.
  const inbound = await db('files').where('direction', 'in').where('updated_at', '>=', since).select('state', 'accepted_count', 'rejected_count');
  // Creation times follow the centre clock (pinned when replaying): compare on its scale.
  const createdSince = since + (engine.ctx.now().getTime() - Date.now());
  const outbound = await db('files').where('direction', 'out').where('created_at', '>=', createdSince).select('id', 'partner_id', 'state');
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
  const d = s.day;
  const row = (label: string, day: string | number, run: string | number) => `  ${label.padEnd(20)}${String(day).padStart(10)}  ${String(run).padStart(10)}`;
  const outRun = Object.values(s.filesOut).reduce((a, b) => a + b, 0);
  const lines = [
    `cycle ${s.date} finished in ${(s.tookMs / 1000).toFixed(1)} s`,
    `  business day ${d.businessDate} (files received ${formatWindow(d.fromMs)} to ${formatWindow(d.toMs)} JST), with what this run did beside it:`,
    `  ${''.padEnd(20)}${'day'.padStart(10)}  ${'this run'.padStart(10)}`,
    row('files in', d.filesIn, s.filesIn),
    row('files rejected', d.filesRejected, s.filesRejected),
    row('files in flight', d.filesInFlight, '-'),
    row('records accepted', d.recordsAccepted, s.recordsAccepted),
    row('records rejected', d.recordsRejected, s.recordsRejected),
    row('files out', d.filesOut, outRun),
    ...Object.entries(s.filesOut)
      .sort()
      .map(([p, n]) => row(`  ${p}`, '', n)),
    row('deliveries done', '-', s.deliveriesOk),
    row('waiting for pickup', d.waitingForPickup, s.waitingForPickup),
    row('deliveries failed', d.deliveriesFailed, s.deliveriesFailed),
    ...d.rejectedFiles.map((f) => `  rejected: ${f}`),
    ...[...new Set([...d.failedFiles, ...s.failedFiles])].map((f) => `  failed: ${f}`),
    ...(s.unfinished.length ? [`  unfinished          ${s.unfinished.length} (${s.unfinished.slice(0, 5).map((u) => `${u.fileId} ${u.state} held by ${u.holder}`).join(', ')}${s.unfinished.length > 5 ? ', ...' : ''})`] : []),
  ];
  return lines.join('\n') + '\n';
}

function formatWindow(ms: number): string {
  return new Date(ms + TOKYO_OFFSET_MS).toISOString().slice(0, 16).replace('T', ' ');
}
