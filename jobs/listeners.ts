// The protocol listeners `tsunagi serve` starts from the config, wired to the spool and the jobs:
// a landed file triggers a scan of its partner's inbound folder; a download is recorded as the
// pickup of that outbound file.
import type { ListenerContext, ProtocolListener } from '../protocols/contract.ts';
import type { Engine } from './engine.ts';
import { jobId } from './context.ts';
import { recordPickup } from './handlers/deliver.ts';
import { createSftpListener } from '../protocols/sftp/listener.ts';
import { createFtpListener } from '../protocols/ftp/listener.ts';
import { createZenginListener } from '../protocols/zengin/listener.ts';
import { createMailListener } from '../protocols/mail/listener.ts';
import { portalUrl } from './web-config.ts';

/** A listener with the config key it came from (health page, metrics). */
export type NamedProtocolListener = ProtocolListener & { readonly name: string };
const named = (name: string, l: ProtocolListener): NamedProtocolListener => Object.assign(l, { name });
import { createAs2ListenerFromConfig } from '../protocols/as2/index.ts';
import { partnerUploadLimits } from './security-config.ts';

export function listenerContext(engine: Engine): ListenerContext {
  const { centre } = engine.ctx;
  return {
    limitsFor: (partnerId) => partnerUploadLimits(centre.config, partnerId),
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

export async function createListeners(engine: Engine): Promise<NamedProtocolListener[]> {
  const { config } = engine.ctx.centre;
  const ctx = listenerContext(engine);
  const listeners: NamedProtocolListener[] = [];
  if (config.listeners.sftp) {
    const accounts = config.partners.filter((p) => p.sftp).map((p) => ({ partnerId: p.id, ...p.sftp! }));
    listeners.push(named('sftp', createSftpListener(config.listeners.sftp, accounts, ctx)));
  }
  if (config.listeners.ftp) {
    const accounts = config.partners.filter((p) => p.ftp).map((p) => ({ partnerId: p.id, ...p.ftp! }));
    listeners.push(named('ftp', createFtpListener(config.listeners.ftp, accounts, ctx)));
  }
  if (config.listeners.zengin) {
    const accounts = Object.fromEntries(config.partners.filter((p) => p.zengin).map((p) => [p.id, p.zengin!]));
    listeners.push(named('zengin', createZenginListener(config.listeners.zengin, accounts, ctx)));
  }
  if (config.listeners.mail) {
    const accounts = config.partners.filter((p) => p.mail).map((p) => ({ partnerId: p.id, ...p.mail! }));
    const portal = config.listeners.web ? portalUrl(config.listeners.web) : undefined;
    listeners.push(named('mail', createMailListener(config.listeners.mail, accounts, ctx, { portalUrl: portal })));
  }
  if (config.listeners.as2) listeners.push(named('as2', createAs2ListenerFromConfig(config.listeners.as2, config.partners, ctx)));
  return listeners;
}
