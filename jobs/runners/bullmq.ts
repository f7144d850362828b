// The BullMQ runner: a queue per job kind on Redis, workers with concurrency in as many processes
// and machines as wanted, job schedulers (tz Asia/Tokyo) upserted by one process, exponential
// backoff, bounded job history, and graceful shutdown. The CPU-heavy kinds (validation,
// conversion) run in the process's pool of `workers.threads` worker threads (thread-pool.ts) so
// that a long file never stalls the job locks.
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { CPU_HEAVY_KINDS, JOB_KINDS, jobId, type Handler, type JobContext, type JobKind, type JobRequest } from '../context.ts';
import { schedulesFor, TIMEZONE } from '../schedules.ts';
import type { TsunagiConfig } from '../config.ts';
import { QueueOutageReporter } from '../queue-wait.ts';
import type { ThreadPool } from './thread-pool.ts';
import { withLedgerPatience } from '../ledger-patience.ts';

export function queueName(kind: JobKind): string {
  return `tsunagi-${kind}`;
}

export function redisConnection(url: string): ConnectionOptions {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    username: u.username || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    // Workers block on Redis; they must wait for it to come back, not fail their commands.
    maxRetriesPerRequest: null,
  };
}

const JOB_DEFAULTS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { count: 1000, age: 24 * 3600 },
  removeOnFail: { count: 5000, age: 7 * 24 * 3600 },
} as const;

export class BullmqQueues {
  private readonly queues = new Map<JobKind, Queue>();
  /**
   * `outages` tells a lost Redis once; without it a queue's errors (all of them its connection's)
   * are left to the caller's own wait. Without any listener BullMQ prints each one, with its stack,
   * on every reconnect.
   */
  constructor(readonly connection: ConnectionOptions, readonly outages?: QueueOutageReporter) {}

  queue(kind: JobKind): Queue {
    let q = this.queues.get(kind);
    if (!q) {
      q = new Queue(queueName(kind), { connection: this.connection, defaultJobOptions: JOB_DEFAULTS });
      q.on('error', (err) => this.outages?.error(err, `queue ${kind}`));
      this.queues.set(kind, q);
    }
    return q;
  }

  async enqueue(request: JobRequest): Promise<void> {
    const queue = this.queue(request.kind);
    // BullMQ ignores an add whose id it still holds, finished jobs included (kept for a while by
    // removeOnComplete/removeOnFail). A finished job must not block new work under its id: the
    // sweeper re-enqueues a file whose job failed out of its attempts; a scheduled delivery asks
    // again for a file whose first job found it not yet due. As in the embedded runner, an id
    // dedupes only while its job is waiting, delayed or running.
    const existing = await queue.getJob(request.jobId);
    if (existing) {
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'failed') return;
      await existing.remove().catch(() => undefined);
    }
    await queue.add(request.kind, request.input, { jobId: request.jobId, delay: request.delayMs });
  }

  /** Upserted by one process only (serve), never by every worker. */
  async upsertSchedules(config: TsunagiConfig): Promise<void> {
    for (const s of schedulesFor(config)) {
      await this.queue(s.kind).upsertJobScheduler(s.id, { pattern: s.pattern, tz: TIMEZONE }, { name: s.kind, data: s.input });
    }
  }

  /**
   * Jobs waiting, delayed or running, over every queue. A job scheduler's next run (a delayed
   * job with a 'repeat:' id) is not pending work: with serve's schedulers in Redis there is always
   * one per schedule, and counting them kept a drain (a `cycle`) from ever finishing.
   */
  async pending(): Promise<number> {
    let total = 0;
    for (const kind of JOB_KINDS) {
      const queue = this.queue(kind);
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
      total += counts.waiting! + counts.active! + counts.prioritized! + counts['waiting-children']!;
      if (counts.delayed) {
        const delayed = await queue.getDelayed(0, -1);
        total += delayed.filter((j) => !String(j.id).startsWith('repeat:')).length;
      }
    }
    return total;
  }

  /** Every kind's queue (bull-board, queue depth). */
  all(): Queue[] {
    return JOB_KINDS.map((kind) => this.queue(kind));
  }

  /** Whether every job scheduler the config asks for exists in Redis (false after Redis lost its data). */
  async schedulesPresent(config: TsunagiConfig): Promise<boolean> {
    for (const s of schedulesFor(config)) {
      if (!(await this.queue(s.kind).getJobScheduler(s.id))) return false;
    }
    return true;
  }

  async close(): Promise<void> {
    // Bounded for the same reason as the workers' close (taskforcesh/bullmq#4656).
    const closed = Promise.all([...this.queues.values()].map((q) => q.close()));
    await Promise.race([closed, new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())]);
  }
}

export interface BullmqWorkersOptions {
  concurrency: number;
  /** Runs the CPU-heavy kinds; without it they run on the main thread (workers.threads: 0). */
  threads?: ThreadPool;
  /** Lock renewal and stall detection; short values make a killed worker's jobs come back sooner. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

const CLOSE_GRACE_MS = 5000;

export class BullmqWorkers {
  private readonly workers: Worker[] = [];
  /** jobs running in this process */
  private readonly running = new Set<string>();
  /** A lost Redis is logged once, and once when it is back, not once per reconnect of every worker. */
  private readonly outages: QueueOutageReporter;

  constructor(
    private readonly queues: BullmqQueues,
    private readonly handlers: Record<JobKind, Handler>,
    private readonly ctx: JobContext,
    private readonly options: BullmqWorkersOptions,
  ) {
    this.outages = queues.outages ?? new QueueOutageReporter(ctx.centre.config.queue, ctx.centre.log);
  }

  start(): void {
    for (const kind of JOB_KINDS) {
      const common = {
        connection: this.queues.connection,
        concurrency: this.options.concurrency,
        lockDuration: this.options.lockDurationMs ?? 30_000,
        stalledInterval: this.options.stalledIntervalMs ?? 15_000,
        maxStalledCount: 10,
        autorun: true,
      };
      const pool = CPU_HEAVY_KINDS.includes(kind) ? this.options.threads : undefined;
      const run = (job: Job) => (pool ? pool.run(kind, job.data as Record<string, unknown>) : this.handlers[kind](job.data as Record<string, unknown>, this.ctx));
      const { ledger, log } = this.ctx.centre;
      const worker = new Worker(queueName(kind), (job: Job) => withLedgerPatience(ledger, log, { kind, jobId: job.id }, () => run(job)), common);
      worker.on('failed', (job, err) => {
        if (job) this.running.delete(`${kind}:${job.id}`);
        this.ctx.centre.log.warn({ kind, jobId: job?.id, attempts: job?.attemptsMade, error: err.message }, 'job failed');
      });
      worker.on('error', (err) => this.outages.error(err, kind));
      worker.on('active', (job) => this.running.add(`${kind}:${job.id}`));
      worker.on('completed', (job) => this.running.delete(`${kind}:${job.id}`));
      this.workers.push(worker);
    }
  }

  async waitUntilReady(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  /**
   * Graceful: running jobs finish, nothing new starts. BullMQ's close can wait forever on a
   * blocking connection left reconnecting by a Redis outage (taskforcesh/bullmq#4656): once no job
   * is running here, it gets CLOSE_GRACE_MS more, then the connections are cut. A job cut off that
   * way (none should be) comes back as stalled elsewhere; every handler is idempotent.
   */
  async close(): Promise<void> {
    const closed = Promise.all(this.workers.map((w) => w.close())).then(() => true);
    const within = (ms: number) => Promise.race([closed, new Promise<false>((r) => setTimeout(() => r(false), ms).unref())]);
    while (this.running.size > 0) if (await within(500)) return;
    if (await within(CLOSE_GRACE_MS)) return;
    this.ctx.centre.log.warn({ workers: this.workers.length }, 'BullMQ workers did not close after a Redis outage (a connection stuck reconnecting): cutting their connections');
    await Promise.race([Promise.all(this.workers.map((w) => w.disconnect().catch(() => undefined))), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}

export { jobId };
