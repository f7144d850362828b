// One way to run the handlers, whichever runner the config picks: `queue: embedded` (one process,
// node-cron) or `queue: redis://...` (BullMQ). The CLI commands (serve, worker, cycle, resend)
// only talk to this.
import type { Centre } from './centre.ts';
import type { JobContext, JobRequest } from './context.ts';
import { HANDLERS } from './handlers/index.ts';
import { makeJobContext } from './runtime.ts';
import { EmbeddedRunner } from './runners/embedded.ts';
import { ThreadPool } from './runners/thread-pool.ts';
import { BullmqQueues, BullmqWorkers, redisConnection } from './runners/bullmq.ts';
import type { Queue } from 'bullmq';
import { QueueOutageReporter, QueueUnavailableError, redisAddress, waitForQueue } from './queue-wait.ts';

export interface Engine {
  readonly kind: 'embedded' | 'bullmq';
  readonly ctx: JobContext;
  enqueue(request: JobRequest): Promise<void>;
  /** Resolves once everything enqueued so far, and everything it led to, is done. */
  drain(): Promise<void>;
  /** Starts the schedules (embedded: node-cron; BullMQ: upserts the job schedulers). */
  startSchedules(): Promise<void>;
  stop(): Promise<void>;
  /** Jobs by state, over every queue (metrics, health). */
  queueDepth(): Promise<Record<string, number>>;
  /** BullMQ only: the queues themselves (the operator console's bull-board). */
  readonly bullQueues?: Queue[];
}

export interface EngineOptions {
  /** Run job workers in this process (BullMQ); the embedded runner always does. */
  workers?: boolean;
  concurrency?: number;
  /** Worker threads for CPU-heavy jobs, both runners (default from the config; 0 keeps them on the main thread). */
  threads?: number;
  /** Start the worker threads now rather than at the first job that needs one (serve, worker). */
  warmUp?: boolean;
  /** BullMQ lock/stall timings (tests use short ones). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Redis down at start: 'give-up' after queueWaitSeconds (one-off commands, the default), or wait 'forever' (serve, worker). */
  waitForQueue?: 'give-up' | 'forever';
}

/** Files still on their way in the ledger: what a drain waits for besides the queues. */
export async function workInFlight(centre: Centre): Promise<number> {
  const rows = await centre.ledger
    .db('files')
    .whereIn('state', ['received', 'accepted', 'sending'])
    .count({ n: '*' });
  return Number((rows[0] as { n: number | string }).n);
}

export async function startEngine(centre: Centre, options: EngineOptions = {}): Promise<Engine> {
  const concurrency = options.concurrency ?? centre.config.workers.concurrency;
  if (centre.config.queue === 'embedded') {
    const threads = options.threads ?? centre.config.workers.threads;
    let runner: EmbeddedRunner;
    const pool =
      threads > 0
        ? new ThreadPool(threads, { TSUNAGI_CONFIG: centre.config.file, TSUNAGI_LOG_LEVEL: centre.log.level }, (request) => runner.enqueue(request))
        : undefined;
    runner = new EmbeddedRunner(HANDLERS, (enqueue) => makeJobContext(centre, enqueue), { concurrency, threads: pool });
    if (options.warmUp) await pool?.warmUp();
    return {
      kind: 'embedded',
      ctx: runner.ctx,
      enqueue: (r) => runner.enqueue(r),
      drain: () => runner.drain(),
      async startSchedules() {
        runner.startSchedules();
      },
      stop: () => runner.stop(),
      queueDepth: async () => runner.pendingCount(),
    };
  }
  // A one-off command gives up after queueWaitSeconds; serve and worker wait, saying so once.
  const forever = options.waitForQueue === 'forever';
  await waitForQueue(centre.config.queue, forever ? { log: centre.log } : { giveUpMs: centre.config.queueWaitSeconds * 1000 });
  const queues = new BullmqQueues(redisConnection(centre.config.queue), new QueueOutageReporter(centre.config.queue, centre.log));
  const ctx = makeJobContext(centre, (r) => queues.enqueue(r));
  const threads = options.threads ?? centre.config.workers.threads;
  const pool = options.workers !== false && threads > 0 ? new ThreadPool(threads, { TSUNAGI_CONFIG: centre.config.file, TSUNAGI_LOG_LEVEL: centre.log.level }, (request) => queues.enqueue(request)) : undefined;
  const workers = options.workers === false ? undefined : new BullmqWorkers(queues, HANDLERS, ctx, { concurrency, threads: pool, lockDurationMs: options.lockDurationMs, stalledIntervalMs: options.stalledIntervalMs });
  if (options.warmUp) await pool?.warmUp();
  workers?.start();
  await workers?.waitUntilReady();
  let watch: NodeJS.Timeout | undefined;
  return {
    kind: 'bullmq',
    ctx,
    enqueue: (r) => queues.enqueue(r),
    async drain() {
      // Quiet twice in a row: every job that leads to another enqueues it before it completes,
      // so no queued or running job (job schedulers' next runs aside) means nothing more will
      // come. Files still in flight then are held elsewhere or stuck: the caller reports them,
      // after a short grace for a killed worker's job to come back from stalled.
      let quiet = 0;
      let graceUntil = 0;
      for (;;) {
        await new Promise((r) => setTimeout(r, 150));
        // Redis lost mid-run: a one-off command gives up after queueWaitSeconds rather than hang.
        const pending = await Promise.race([
          queues.pending(),
          new Promise<never>((_, reject) => setTimeout(() => reject(new QueueUnavailableError(`Redis at ${redisAddress(centre.config.queue)} stopped answering for ${centre.config.queueWaitSeconds} s; start Redis, then run again (finished work stays done)`)), centre.config.queueWaitSeconds * 1000 || 1).unref()),
        ]);
        if (pending > 0) {
          quiet = 0;
          graceUntil = 0;
          continue;
        }
        if (++quiet < 2) continue;
        if ((await workInFlight(centre)) === 0) return;
        graceUntil ||= Date.now() + (options.stalledIntervalMs ?? 15_000) + 1000;
        if (Date.now() > graceUntil) return;
      }
    },
    async startSchedules() {
      await queues.upsertSchedules(centre.config);
      // A Redis that restarted empty forgets the schedulers and every queued job, and nothing
      // would ever upsert them again: look now and then, and restore both from the config and
      // the ledger.
      const everyMs = Number(process.env.TSUNAGI_SCHEDULE_CHECK_MS ?? 15_000);
      let checking = false;
      watch = setInterval(async () => {
        if (checking) return;
        checking = true;
        try {
          if (await queues.schedulesPresent(centre.config)) return;
          await queues.upsertSchedules(centre.config);
          const stamp = Date.now().toString(36); // no 13-digit run for the log redaction to take for a card number
          await queues.enqueue({ kind: 'sweep', input: {}, jobId: `sweep-restore-${stamp}` });
          await queues.enqueue({ kind: 'scan', input: {}, jobId: `scan-restore-${stamp}` });
          centre.log.warn({ alert: 'redis-state-lost' }, 'Redis lost the job schedulers (restarted empty?): schedulers restored, in-flight work re-enqueued from the ledger');
        } catch (err) {
          centre.log.warn({ err: (err as Error).message }, 'could not check the job schedulers (Redis down?); will look again');
        } finally {
          checking = false;
        }
      }, everyMs);
      watch.unref();
    },
    bullQueues: queues.all(),
    async queueDepth() {
      const depth: Record<string, number> = {};
      for (const q of queues.all()) {
        for (const [state, n] of Object.entries(await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed'))) depth[state] = (depth[state] ?? 0) + n;
      }
      return depth;
    },
    async stop() {
      if (watch) clearInterval(watch);
      await workers?.close();
      await pool?.close();
      await queues.close();
    },
  };
}
