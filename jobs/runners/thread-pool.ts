// A small pool of worker threads (`workers.threads`) that run CPU-heavy handlers (validation,
// conversion, Jmanager, reconciliation) off the main thread, for both runners: every core, and
// a long file never stalls the main thread (BullMQ's job locks are renewed there). Each thread
// opens its own centre from the config file; a job's enqueue calls come back here, and the job
// waits until the runner has taken them (a failed enqueue fails the job, which is retried).
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { JobKind, JobRequest } from '../context.ts';
import { threadEntry } from './thread-entry.ts';

/**
 * A thread's young generation, capped: V8's default lets each thread's grow to 32 MB and keep it.
 * With 12 MB two threads peaked 20-30 MB lower at the same CPU per file (within this shared
 * machine's noise); 16 leaves a margin for the records the jobs allocate at a high rate.
 */
const THREAD_LIMITS: ResourceLimits = { maxYoungGenerationSizeMb: 16 };

type FromThread = { type: 'enqueue'; request: JobRequest; ack: number } | { type: 'done'; id: number; error?: string };

interface Slot {
  worker: Worker;
  busy: number;
}

export class ThreadPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { resolve(): void; reject(err: Error): void; slot: Slot }>();
  private nextId = 1;
  private closed = false;
  /** The file the threads run (thread-entry.ts), known once the first job or warmUp needs a thread. */
  private entry?: string;

  constructor(
    private readonly size: number,
    private readonly env: Record<string, string>,
    private readonly onEnqueue: (request: JobRequest) => Promise<void> | void,
  ) {}

  private spawn(entry: string): Slot {
    const worker = new Worker(entry, { env: { ...process.env, ...this.env }, resourceLimits: THREAD_LIMITS });
    const slot: Slot = { worker, busy: 0 };
    worker.on('message', (msg: FromThread) => {
      if (msg.type === 'enqueue') {
        Promise.resolve()
          .then(() => this.onEnqueue(msg.request))
          .then(
            () => worker.postMessage({ type: 'enqueued', ack: msg.ack }),
            (err: unknown) => worker.postMessage({ type: 'enqueued', ack: msg.ack, error: (err as Error).message }),
          );
      } else {
        const job = this.pending.get(msg.id);
        if (!job) return;
        this.pending.delete(msg.id);
        slot.busy--;
        if (msg.error) job.reject(new Error(msg.error));
        else job.resolve();
      }
    });
    // A thread that dies fails its jobs (the runner retries them) and is replaced on next use.
    const fail = (err: Error) => {
      for (const [id, job] of this.pending) {
        if (job.slot !== slot) continue;
        this.pending.delete(id);
        job.reject(err);
      }
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`worker thread exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }

  async run(kind: JobKind, input: Record<string, unknown>): Promise<void> {
    this.entry ??= await threadEntry();
    if (this.closed) throw new Error('thread pool closed');
    const slot = this.slots.length < this.size ? this.spawn(this.entry) : this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    return this.post(slot, kind, input);
  }

  private post(slot: Slot, kind: JobKind | 'warm-up', input: Record<string, unknown>): Promise<void> {
    const id = this.nextId++;
    slot.busy++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ type: 'run', id, kind, input });
    });
  }

  /**
   * Starts every thread now and has each open its centre (loading the code and the config takes
   * seconds), so that the first jobs do not wait for it: for a long-running process (serve).
   */
  async warmUp(): Promise<void> {
    const entry = (this.entry ??= await threadEntry());
    while (this.slots.length < this.size) this.spawn(entry);
    await Promise.all(this.slots.map((slot) => this.post(slot, 'warm-up', {})));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}
