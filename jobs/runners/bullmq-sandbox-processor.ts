// Runs one job inside a BullMQ worker thread with its own centre and queue connections,
// opened once per thread.
import type { Job } from 'bullmq';
import { openCentre } from '../centre.ts';
import { makeJobContext } from '../runtime.ts';
import { HANDLERS } from '../handlers/index.ts';
import { BullmqQueues, redisConnection } from './bullmq.ts';
import type { JobContext, JobKind } from '../context.ts';

let ready: Promise<JobContext> | undefined;

async function context(): Promise<JobContext> {
  const centre = await openCentre(process.env.TSUNAGI_CONFIG);
  const queues = new BullmqQueues(redisConnection(centre.config.queue));
  return makeJobContext(centre, (request) => queues.enqueue(request));
}

export async function processJob(job: Job): Promise<void> {
  ready ??= context();
  const ctx = await ready;
  await HANDLERS[job.name as JobKind](job.data as Record<string, unknown>, ctx);
}
