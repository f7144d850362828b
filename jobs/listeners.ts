// The protocol listeners `tsunagi serve` starts from the config, wired to the spool and the jobs:
// a landed file triggers a scan of its partner's inbound folder; a download is recorded as the
// pickup of that outbound file.
import type { ListenerContext, ProtocolListener } from '../protocols/contract.ts';
import type { Engine } from './engine.ts';
import { jobId } from './context.ts';
import { recordPickup } from './handlers/deliver.ts';

export function listenerContext(engine: Engine): ListenerContext {
  const { centre } = engine.ctx;
  return {
    spool: centre.spool,
    ledger: centre.ledger,
    log: centre.log,
    async onLanded(partnerId) {
      await engine.enqueue({ kind: 'scan', input: { partnerId }, jobId: jobId('scan', 'landed', partnerId, Date.now()) });
    },
    async onPickedUp(partnerId, fileName, bytes) {
      await recordPickup(engine.ctx, partnerId, fileName, bytes);
    },
  };
}

export async function createListeners(engine: Engine): Promise<ProtocolListener[]> {
  void listenerContext(engine);
  return [];
}
