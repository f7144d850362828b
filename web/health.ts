// /healthz and the console's health page: the ledger answers, the queue answers, the spool's disk
// has room, and the listeners are bound.
import { statfs } from 'node:fs/promises';
import type { WebContext } from './context.ts';

export interface Check {
  ok: boolean;
  detail: string;
}

export interface HealthReport {
  ok: boolean;
  checks: Record<'ledger' | 'queue' | 'disk' | 'listeners', Check>;
  listeners: { name: string; port: number; connections?: number }[];
  queue: Record<string, number>;
}

/** Below this much free space (or 5 % of the disk, whichever is less) the spool is unhealthy. */
const MIN_FREE_BYTES = 1024 ** 3;

async function timed<T>(fn: () => Promise<T>, timeoutMs = 2000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([fn(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
  }
}

export async function healthReport(web: WebContext): Promise<HealthReport> {
  const { centre, engine } = web;
  const started = Date.now();
  const ledger: Check = await timed(() => centre.ledger.db.raw('select 1'))
    .then(() => ({ ok: true, detail: `${centre.ledger.dialect}, ${Date.now() - started} ms` }))
    .catch((err: Error) => ({ ok: false, detail: err.message }));
  let queue: Record<string, number> = {};
  const queueCheck: Check = await timed(async () => {
    queue = await engine.queueDepth();
  })
    .then(() => ({ ok: true, detail: `${engine.kind}, ${Object.values(queue).reduce((a, b) => a + b, 0)} jobs` }))
    .catch((err: Error) => ({ ok: false, detail: err.message }));
  const disk: Check = await statfs(centre.spool.root)
    .then((s) => {
      const free = s.bavail * s.bsize;
      const total = s.blocks * s.bsize;
      const ok = free >= Math.min(MIN_FREE_BYTES, total * 0.05);
      return { ok, detail: `${(free / 1024 ** 3).toFixed(1)} GiB free of ${(total / 1024 ** 3).toFixed(1)} GiB` };
    })
    .catch((err: Error) => ({ ok: false, detail: err.message }));
  const listeners = web.listeners().map(({ name, listener }) => ({ name, port: listener.port, connections: listener.connections?.() }));
  const down = listeners.filter((l) => !l.port);
  const listenersCheck: Check = { ok: down.length === 0, detail: down.length ? `not listening: ${down.map((l) => l.name).join(', ')}` : `${listeners.length} listening` };
  const checks = { ledger, queue: queueCheck, disk, listeners: listenersCheck };
  return { ok: Object.values(checks).every((c) => c.ok), checks, listeners, queue };
}
