// The embedded runner: one process, no Redis. An in-memory queue with deterministic job ids
// (a duplicate enqueue is a no-op), a concurrency limit per kind, delayed jobs, retries with backoff, and
// node-cron schedules (noOverlap) that feed the same handlers as BullMQ does.
import cron, { type ScheduledTask } from 'node-cron';
import { CPU_HEAVY_KINDS, jobId, type JobContext, type JobRequest, type Handler, type JobKind } from '../context.ts';
import { schedulesFor, TIMEZONE } from '../schedules.ts';
import type { ThreadPool } from './thread-pool.ts';
import { withLedgerPatience } from '../ledger-patience.ts';

export interface EmbeddedRunnerOptions {
  /** Jobs of one kind at once (as BullMQ's per-queue workers): deliveries waiting on a disk or a partner do not hold up ingest and route. */
  concurrency?: number;
  /** Attempts for a failing handler before leaving the rest to the sweeper. */
  attempts?: number;
  retryDelayMs?: number;
  /** Run CPU-heavy kinds in this pool of worker threads instead of on the main thread. */
  threads?: ThreadPool;
}

export class EmbeddedRunner {
  /** Waiting jobs, per kind, first in first out. */
  private readonly queues = new Map<JobKind, JobRequest[]>();
  private waiting = 0;
  private readonly runningByKind = new Map<JobKind, number>();
  private readonly known = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = 0;
  private idleWaiters: (() => void)[] = [];
  private tasks: ScheduledTask[] = [];
  private stopped = false;
  readonly failures: { jobId: string; error: string }[] = [];

  constructor(
    private readonly handlers: Record<JobKind, Handler>,
    private readonly makeContext: (enqueue: JobContext['enqueue']) => JobContext,
    private readonly options: EmbeddedRunnerOptions = {},
  ) {}

  /** Jobs waiting, delayed or running (queue depth for metrics and health). */
  pendingCount(): { waiting: number; delayed: number; active: number } {
    return { waiting: this.waiting, delayed: this.timers.size, active: this.running };
  }

  private context?: JobContext;
  get ctx(): JobContext {
    this.context ??= this.makeContext((request) => this.enqueue(request));
    return this.context;
  }

  async enqueue(request: JobRequest): Promise<void> {
    if (this.stopped || this.known.has(request.jobId)) return;
    this.known.add(request.jobId);
    if (request.delayMs && request.delayMs > 0) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.push(request);
        this.pump();
      }, request.delayMs);
      this.timers.add(timer);
      return;
    }
    this.push(request);
    this.pump();
  }

  private push(request: JobRequest): void {
    let q = this.queues.get(request.kind);
    if (!q) this.queues.set(request.kind, (q = []));
    q.push(request);
    this.waiting++;
  }

  private pump(): void {
    const limit = this.options.concurrency ?? 2;
    for (const [kind, q] of this.queues) {
      while (!this.stopped && q.length > 0 && (this.runningByKind.get(kind) ?? 0) < limit) {
        const request = q.shift()!;
        this.waiting--;
        this.running++;
        this.runningByKind.set(kind, (this.runningByKind.get(kind) ?? 0) + 1);
        void this.execute(request).finally(() => {
          this.running--;
          this.runningByKind.set(kind, this.runningByKind.get(kind)! - 1);
          this.known.delete(request.jobId);
          this.pump();
          this.notifyIdle();
        });
      }
    }
    this.notifyIdle();
  }

  private async execute(request: JobRequest): Promise<void> {
    const attempts = this.options.attempts ?? 3;
    const handler = this.handlers[request.kind];
    const pool = CPU_HEAVY_KINDS.includes(request.kind) ? this.options.threads : undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        const { ledger, log } = this.ctx.centre;
        await withLedgerPatience(ledger, log, { jobId: request.jobId, kind: request.kind }, () => (pool ? pool.run(request.kind, request.input) : handler(request.input, this.ctx)));
        return;
      } catch (err) {
        const error = (err as Error).message;
        if (attempt >= attempts || this.stopped) {
          this.failures.push({ jobId: request.jobId, error });
          this.ctx.centre.log.error({ jobId: request.jobId, kind: request.kind, attempt, err }, 'job failed; the sweeper will pick it up again');
          return;
        }
        this.ctx.centre.log.warn({ jobId: request.jobId, kind: request.kind, attempt, error }, 'job failed; retrying');
        await new Promise((r) => setTimeout(r, (this.options.retryDelayMs ?? 1000) * 2 ** (attempt - 1)));
      }
    }
  }

  private notifyIdle(): void {
    if (this.running === 0 && this.waiting === 0 && this.timers.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves when nothing is queued, running or waiting on a delay. */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.notifyIdle();
    });
  }

  startSchedules(): void {
    for (const schedule of schedulesFor(this.ctx.centre.config)) {
      const task = cron.schedule(
        schedule.pattern,
        (context) => {
          const slot = context.triggeredAt.toISOString().slice(0, 16);
          void this.enqueue({ kind: schedule.kind, input: schedule.input, jobId: jobId(schedule.id, slot) });
        },
        { timezone: TIMEZONE, noOverlap: true, name: schedule.id },
      );
      this.tasks.push(task);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tasks) await t.stop();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queues.clear();
    this.waiting = 0;
    await new Promise<void>((resolve) => {
      const check = () => (this.running === 0 ? resolve() : setTimeout(check, 20));
      check();
    });
    await this.options.threads?.close();
  }
}
