// Redis as the queue: a command that runs once (cycle, reconcile, ...) waits for it a bounded,
// configurable time (queueWaitSeconds) and then gives up with one line; long-running processes
// (serve, worker) wait as long as it takes, but say so once, back off, and say once when it is back,
// instead of logging every failed reconnect of every worker.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisConnection } from './runners/bullmq.ts';

export class QueueUnavailableError extends Error {}

/** host:port of a redis:// URL, without credentials. */
export function redisAddress(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || 6379}`;
}

/** One ping with its own short-lived connection; resolves with the error, or null when Redis answered. */
async function pingOnce(url: string, timeoutMs: number): Promise<Error | null> {
  const { host, port, username, password, db, tls } = redisConnection(url) as { host: string; port: number; username?: string; password?: string; db: number; tls?: object };
  const client = new Redis({ host, port, username, password, db, tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  let cause: Error | null = null;
  client.on('error', (err: Error) => (cause ??= err));
  try {
    await client.connect();
    await client.ping();
    return null;
  } catch (err) {
    return cause ?? (err as Error); // the socket's error (ECONNREFUSED) says more than "Connection is closed"
  } finally {
    client.disconnect();
  }
}

/**
 * Resolves once Redis answers. With `giveUpMs`, rejects with QueueUnavailableError after that long;
 * without, waits for ever. Backs off from 0.5 s to 10 s between tries; `log` hears once that it
 * waits and once that Redis is back.
 */
export async function waitForQueue(url: string, options: { giveUpMs?: number; log?: Logger; what?: string } = {}): Promise<void> {
  const started = Date.now();
  let delay = 500;
  let said = false;
  for (;;) {
    const left = options.giveUpMs === undefined ? 5000 : options.giveUpMs - (Date.now() - started);
    const err = await pingOnce(url, Math.max(200, Math.min(5000, left)));
    if (!err) {
      if (said) options.log?.warn({ redis: redisAddress(url), waitedMs: Date.now() - started }, 'Redis is back');
      return;
    }
    const reason = (err as NodeJS.ErrnoException).code ?? err.message;
    if (options.giveUpMs !== undefined && Date.now() - started + delay >= options.giveUpMs) {
      throw new QueueUnavailableError(`Redis at ${redisAddress(url)} did not answer within ${Math.round(options.giveUpMs / 1000)} s (${reason}); start Redis or fix 'queue' in the config (the wait is queueWaitSeconds)`);
    }
    if (!said) {
      said = true;
      options.log?.warn({ redis: redisAddress(url), reason }, `Redis at ${redisAddress(url)} is not answering (${reason}): ${options.what ?? 'waiting'} for it, retrying with backoff`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

/**
 * The workers' connection errors, told once per outage: the first error is logged, the rest are
 * not, and a probe with backoff logs once when Redis answers again.
 */
export class QueueOutageReporter {
  private down = false;
  constructor(private readonly url: string, private readonly log: Logger) {}

  error(err: Error, kind: string): void {
    const code = (err as NodeJS.ErrnoException).code;
    const connection = code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || /Connection is closed|connect/i.test(err.message);
    if (!connection) {
      this.log.error({ kind, err }, 'worker error');
      return;
    }
    if (this.down) return;
    this.down = true;
    void waitForQueue(this.url, { log: this.log, what: 'jobs wait' }).then(() => (this.down = false));
  }
}
