// The HULFT bridge (spec hulft.md): tsunagi runs the licensed HULFT's commands beside it and is
// run by HULFT as its post-send and post-receive jobs. It never speaks HULFT's protocol.
import path from 'node:path';
import type { Logger } from 'pino';
import type { Ledger } from '../../spool/ledger/index.ts';
import type { HulftCentreSettings } from './config.ts';
import { HulftClient, type HulftPartner } from './client.ts';

export { HulftClient, msg0For, MSG0_PREFIX, type HulftPartner } from './client.ts';
export * from './config.ts';

/** Where dynparam hard links go: hulft.sendDir, or <spoolRoot>/hulft/send (the spool's file system). */
export function hulftSendDir(settings: Pick<HulftCentreSettings, 'sendDir'>, spoolRoot: string): string {
  return settings.sendDir ?? path.join(spoolRoot, 'hulft', 'send');
}

export function createHulftClient(settings: HulftCentreSettings | undefined, partner: { id: string; hulft?: HulftPartner['hulft']; formats: HulftPartner['formats'] }, deps: { ledger: Ledger; spoolRoot: string; log: Logger }): HulftClient {
  if (!settings) throw new Error('hulft: the centre has no hulft section (binDir, etcDir)');
  if (!partner.hulft) throw new Error(`partner ${partner.id}: delivery by hulft needs a hulft section`);
  return new HulftClient({ settings, sendDir: hulftSendDir(settings, deps.spoolRoot), partner: { id: partner.id, hulft: partner.hulft, formats: partner.formats }, ledger: deps.ledger, log: deps.log });
}
