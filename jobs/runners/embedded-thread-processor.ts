// Runs jobs sent by the thread pool (jobs/runners/thread-pool.ts), with this thread's own centre;
// enqueue requests go back to the runner on the main thread.
import { parentPort } from 'node:worker_threads';
import { openCentre } from '../centre.ts';
import { makeJobContext } from '../runtime.ts';
import { HANDLERS } from '../handlers/index.ts';
import type { JobContext, JobKind, JobRequest } from '../context.ts';

let ready: Promise<JobContext> | undefined;
let nextAck = 1;
const acks = new Map<number, { resolve(): void; reject(err: Error): void }>();

/** Hands the request to the runner on the main thread and waits until it is queued. */
function enqueue(request: JobRequest): Promise<void> {
  const ack = nextAck++;
  return new Promise((resolve, reject) => {
    acks.set(ack, { resolve, reject });
    parentPort!.postMessage({ type: 'enqueue', request, ack });
  });
}

async function context(): Promise<JobContext> {
  const centre = await openCentre(process.env.TSUNAGI_CONFIG);
  return makeJobContext(centre, enqueue);
}

/** This thread's centre, opened at its first job; a failed open (the ledger away) is tried again at the next job, not kept. */
function readyContext(): Promise<JobContext> {
  ready ??= context().catch((err: unknown) => {
    ready = undefined;
    throw err;
  });
  return ready;
}

type ToThread = { type: 'run'; id: number; kind: JobKind | 'warm-up'; input: Record<string, unknown> } | { type: 'enqueued'; ack: number; error?: string };

parentPort!.on('message', async (msg: ToThread) => {
  if (msg.type === 'enqueued') {
    const waiter = acks.get(msg.ack);
    acks.delete(msg.ack);
    if (msg.error) waiter?.reject(new Error(msg.error));
    else waiter?.resolve();
    return;
  }
  try {
    const ctx = await readyContext();
    if (msg.kind !== 'warm-up') await HANDLERS[msg.kind](msg.input, ctx);
    parentPort!.postMessage({ type: 'done', id: msg.id });
  } catch (err) {
    parentPort!.postMessage({ type: 'done', id: msg.id, error: (err as Error).stack ?? String(err) });
  }
});
