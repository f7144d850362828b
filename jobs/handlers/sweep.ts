// sweep: the safety net under at-least-once queues. Whatever sits in a non-final state with no
// job to move it (a crash, a lost Redis, a killed worker) gets its job again. Job ids are
// deterministic, so re-enqueueing work that is already queued is a no-op.
import { jobId, type Handler } from '../context.ts';
import { recoverUnregisteredWork } from './scan.ts';

/** A push still 'sending' after this long was interrupted (the worker died mid-transfer). */
export const SENDING_LEASE_MS = 10 * 60_000;

export const sweep: Handler = async (input, ctx) => {
  const { centre } = ctx;
  const now = ctx.now().getTime();
  const leaseMs = typeof input.sendingLeaseMs === 'number' ? input.sendingLeaseMs : SENDING_LEASE_MS;
  const recovered = await recoverUnregisteredWork(ctx);
  let requeued = 0;
  for (const f of await centre.files.list({ state: 'received' })) {
    await ctx.enqueue({ kind: 'ingest', input: { fileId: f.id }, jobId: jobId('ingest', f.id) });
    requeued++;
  }
  for (const f of await centre.files.list({ state: 'accepted' })) {
    await ctx.enqueue({ kind: 'route', input: { fileId: f.id }, jobId: jobId('route', f.id) });
    requeued++;
  }
  for (const f of await centre.files.list({ state: 'sending' })) {
    if (now - f.updated_at < leaseMs) continue;
    // Same remote name and temporary-then-rename pushes make the retry idempotent.
    await centre.files.transition(f.id, 'sending', 'ready', 'interrupted push (lease expired); retrying', { next_attempt_at: null });
    await ctx.enqueue({ kind: 'deliver', input: { fileId: f.id, force: true }, jobId: jobId('deliver', f.id, f.attempts + 1) });
    requeued++;
  }
  for (const f of await centre.files.list({ state: 'ready', direction: 'out' })) {
    const partner = ctx.routes.byId.get(f.partner_id);
    if (!partner || partner.delivery.protocol === 'pull' || partner.schedule) continue;
    if (f.next_attempt_at && f.next_attempt_at > now) continue;
    await ctx.enqueue({ kind: 'deliver', input: { fileId: f.id, force: true }, jobId: jobId('deliver', f.id, f.attempts + 1) });
    requeued++;
  }
  if (recovered || requeued) centre.log.info({ recovered, requeued }, 'sweep re-enqueued stuck work');
};
