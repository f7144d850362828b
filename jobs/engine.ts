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
  /** Embedded: worker threads for CPU-heavy jobs (default from the config; 0 keeps them on the main thread). */
  threads?: number;
  /** BullMQ lock/stall timings (tests use short ones). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
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
        ? new ThreadPool(threads, { TSUNAGI_CONFIG: centre.config.file, TSUNAGI_LOG_LEVEL: centre.log.level }, (request) => void runner.enqueue(request))
        : undefined;
    runner = new EmbeddedRunner(HANDLERS, (enqueue) => makeJobContext(centre, enqueue), { concurrency, threads: pool });
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
  const queues = new BullmqQueues(redisConnection(centre.config.queue));
  const ctx = makeJobContext(centre, (r) => queues.enqueue(r));
  const workers = options.workers === false ? undefined : new BullmqWorkers(queues, HANDLERS, ctx, { concurrency, configFile: centre.config.file, lockDurationMs: options.lockDurationMs, stalledIntervalMs: options.stalledIntervalMs });
  workers?.start();
  await workers?.waitUntilReady();
  return {
    kind: 'bullmq',
    ctx,
    enqueue: (r) => queues.enqueue(r),
    async drain() {
      // Quiet twice in a row: a job may be between its ledger write and its next enqueue.
      let quiet = 0;
      while (quiet < 2) {
        await new Promise((r) => setTimeout(r, 150));
        const busy = (await queues.pending()) + (await workInFlight(centre));
        quiet = busy === 0 ? quiet + 1 : 0;
      }
    },
    startSchedules: () => queues.upsertSchedules(centre.config),
    bullQueues: queues.all(),
    async queueDepth() {
      const depth: Record<string, number> = {};
      for (const q of queues.all()) {
        for (const [state, n] of Object.entries(await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed'))) depth[state] = (depth[state] ?? 0) + n;
      }
      return depth;
    },
    async stop() {
      await workers?.close();
      await queues.close();
    },
  };
}
