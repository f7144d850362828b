// collect: fetches files from partners that only offer pull (their endpoint's pull folder) into
// their inbound folder, each file once; the scan then treats them like any other arrival.
import { beginLanding } from '../../spool/landing.ts';
import { jobId, type Handler } from '../context.ts';

export const collect: Handler = async (input, ctx) => {
  const { centre } = ctx;
  const partners = centre.config.partners.filter((p) => p.collect && p.delivery.protocol !== 'pull' && (input.partnerId === undefined || input.partnerId === p.id));
  let fetched = 0;
  for (const partner of partners) {
    const client = await ctx.clientFor(partner);
    try {
      for (const remote of await client.list()) {
        const seen = await centre.ledger.db('collected').where({ partner_id: partner.id, remote_name: remote.name, size: remote.size }).first();
        if (seen) continue;
        const landing = await beginLanding(centre.spool.inbound(partner.id), remote.name);
        try {
          await landing.release();
          const result = await client.pull(remote.name, landing.tempPath);
          if (result.bytes !== remote.size) throw new Error(`collect ${partner.id}/${remote.name}: got ${result.bytes} of ${remote.size} bytes`);
          // Record first: a crash after the commit must not fetch (and ingest) the file twice.
          await centre.ledger.db('collected').insert({ partner_id: partner.id, remote_name: remote.name, size: remote.size, collected_at: Date.now() });
          await landing.commit().catch(async (err) => {
            await centre.ledger.db('collected').where({ partner_id: partner.id, remote_name: remote.name, size: remote.size }).delete();
            throw err;
          });
          fetched++;
          centre.log.info({ partner: partner.id, name: remote.name, bytes: remote.size }, 'file collected');
        } catch (err) {
          await landing.abort();
          throw err;
        }
      }
    } finally {
      await client.close().catch(() => undefined);
    }
  }
  if (fetched > 0) await ctx.enqueue({ kind: 'scan', input: {}, jobId: jobId('scan', 'collect', Date.now()) });
};
