// collect: fetches files from partners that only offer pull (their endpoint's pull folder, or
// 全銀TCP/IP 照会) into their inbound folder, each file once; the scan then treats them like any
// other arrival.
import { beginLanding } from '../../spool/landing.ts';
import { displayName, fileNameProblem } from '../../spool/names.ts';
import { ZenginError } from '../../protocols/zengin/primary.ts';
import type { ProtocolClient, RemoteFile } from '../../protocols/contract.ts';
import type { PartnerConfig } from '../config.ts';
import { jobId, type Handler, type JobContext } from '../context.ts';

const NO_FILE_TO_SEND = 0x17;

/**
 * Fetches one offered file. Where the listing knows sizes (SFTP, FTP, local) each (name, size) is
 * fetched once, recorded before the file appears in inbound. 全銀TCP/IP offers names only and its
 * secondary station keeps track of what we took, so every 照会 asks again and "nothing" is normal.
 */
async function fetchOne(ctx: JobContext, partner: PartnerConfig, client: ProtocolClient, remote: RemoteFile): Promise<boolean> {
  const { centre } = ctx;
  const tracked = remote.size > 0;
  const key = { partner_id: partner.id, remote_name: remote.name, size: remote.size };
  if (tracked && (await centre.ledger.db('collected').where(key).first())) return false;
  const landing = await beginLanding(centre.spool.inbound(partner.id), tracked ? remote.name : `${remote.name}_${Date.now().toString(36)}.dat`);
  try {
    await landing.release();
    let bytes: number;
    try {
      bytes = (await client.pull(remote.name, landing.tempPath)).bytes;
    } catch (err) {
      if (err instanceof ZenginError && err.result === NO_FILE_TO_SEND) {
        await landing.abort();
        return false;
      }
      throw err;
    }
    if (tracked && bytes !== remote.size) throw new Error(`collect ${partner.id}/${remote.name}: got ${bytes} of ${remote.size} bytes`);
    if (tracked) await centre.ledger.db('collected').insert({ ...key, collected_at: Date.now() });
    await landing.commit().catch(async (err) => {
      if (tracked) await centre.ledger.db('collected').where(key).delete();
      throw err;
    });
    centre.log.info({ partner: partner.id, fileName: remote.name, bytes }, 'file collected');
    return true;
  } catch (err) {
    await landing.abort();
    throw err;
  }
}

/**
 * Each partner and each of its files on its own: a name we cannot use, a failed transfer or an
 * unreachable partner is alerted and skipped, and collection goes on with the rest. The job fails
 * at the end (so it is retried and seen) if anything was skipped for an error.
 */
export const collect: Handler = async (input, ctx) => {
  const { log } = ctx.centre;
  const partners = ctx.centre.config.partners.filter((p) => p.collect && p.delivery.protocol !== 'pull' && (input.partnerId === undefined || input.partnerId === p.id));
  let fetched = 0;
  const failures: string[] = [];
  for (const partner of partners) {
    let client: ProtocolClient | undefined;
    try {
      client = await ctx.clientFor(partner);
      // HULFT: ask the partner to send (utlrecv); what it sends lands through hulft-received.
      if (client.requestFiles) await client.requestFiles();
      for (const remote of await client.list()) {
        const problem = fileNameProblem(remote.name);
        const shown = displayName(remote.name, 120);
        if (problem) {
          // Not fetched: an operator looks at it on the partner's side. Said every run until then.
          log.error({ alert: 'collect-unsafe-name', partner: partner.id, fileName: shown, reason: problem }, 'remote file skipped: its name cannot be used');
          continue;
        }
        try {
          if (await fetchOne(ctx, partner, client, remote)) fetched++;
        } catch (err) {
          failures.push(`${partner.id}/${shown}: ${(err as Error).message}`);
          log.error({ alert: 'collect-failed', partner: partner.id, fileName: shown, err: (err as Error).message }, 'remote file not collected; going on with the others');
        }
      }
    } catch (err) {
      failures.push(`${partner.id}: ${(err as Error).message}`);
      log.error({ alert: 'collect-failed', partner: partner.id, err: (err as Error).message }, 'partner not collected; going on with the others');
    } finally {
      await client?.close().catch(() => undefined);
    }
  }
  if (fetched > 0) await ctx.enqueue({ kind: 'scan', input: {}, jobId: jobId('scan', 'collect', Date.now()) });
  if (failures.length > 0) throw new Error(`collect: ${failures.length} not collected: ${failures.slice(0, 5).join('; ')}`);
};
