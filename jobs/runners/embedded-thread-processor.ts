// Runs jobs sent by the embedded runner's thread pool, with this thread's own centre; enqueue
// requests go back to the runner on the main thread.
import { parentPort } from 'node:worker_threads';
import { openCentre } from '../centre.ts';
import { makeJobContext } from '../runtime.ts';
import { HANDLERS } from '../handlers/index.ts';
import type { JobContext, JobKind } from '../context.ts';

let ready: Promise<JobContext> | undefined;

async function context(): Promise<JobContext> {
  const centre = await openCentre(process.env.TSUNAGI_CONFIG);
  return makeJobContext(centre, async (request) => parentPort!.postMessage({ type: 'enqueue', request }));
}

parentPort!.on('message', async (msg: { id: number; kind: JobKind; input: Record<string, unknown> }) => {
  try {
    ready ??= context();
    await HANDLERS[msg.kind](msg.input, await ready);
    parentPort!.postMessage({ type: 'done', id: msg.id });
  } catch (err) {
    parentPort!.postMessage({ type: 'done', id: msg.id, error: (err as Error).stack ?? String(err) });
  }
});
