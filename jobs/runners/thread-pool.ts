// A small pool of worker threads (`workers.threads`) that run CPU-heavy handlers (validation,
// conversion, Jmanager, reconciliation) off the main thread, for both runners: every core, and
// a long file never stalls the main thread (BullMQ's job locks are renewed there). Each thread
// opens its own centre from the config file; a job's enqueue calls come back here, and the job
// waits until the runner has taken them (a failed enqueue fails the job, which is retried).
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobKind, JobRequest } from '../context.ts';

const THREAD_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'embedded-thread.js');

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

  constructor(
    private readonly size: number,
    private readonly env: Record<string, string>,
    private readonly onEnqueue: (request: JobRequest) => Promise<void> | void,
  ) {}

  private spawn(): Slot {
    const worker = new Worker(THREAD_FILE, { env: { ...process.env, ...this.env } });
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

  run(kind: JobKind, input: Record<string, unknown>): Promise<void> {
    if (this.closed) return Promise.reject(new Error('thread pool closed'));
    const slot = this.slots.length < this.size ? this.spawn() : this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
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
    while (this.slots.length < this.size) this.spawn();
    await Promise.all(this.slots.map((slot) => this.post(slot, 'warm-up', {})));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}
