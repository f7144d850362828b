// Picks the protocol client for a partner's delivery endpoint.
import type { Logger } from 'pino';
import type { PartnerConfig } from './config.ts';
import type { ProtocolClient } from '../protocols/contract.ts';
import { LocalClient } from '../protocols/local/client.ts';
import { SftpClient } from '../protocols/sftp/client.ts';
import { FtpClient } from '../protocols/ftp/client.ts';
import { ZenginClient } from '../protocols/zengin/client.ts';
import { createAs2Client } from '../protocols/as2/index.ts';
import { createHulftClient } from '../protocols/hulft/index.ts';
import type { Centre } from './centre.ts';

export async function createClient(partner: PartnerConfig, log: Logger, centre?: Pick<Centre, 'config' | 'ledger' | 'spool'>): Promise<ProtocolClient> {
  const d = partner.delivery;
  const child = log.child({ partner: partner.id, protocol: d.protocol });
  switch (d.protocol) {
    case 'local':
      return new LocalClient(d);
    case 'sftp':
      return new SftpClient(d, child);
    case 'ftp':
      return new FtpClient(d, child);
    case 'zengin':
      return new ZenginClient(d, child);
    case 'as2':
      return createAs2Client({ ...partner, delivery: d }, child, centre?.ledger);
    case 'hulft':
      if (!centre) throw new Error(`partner ${partner.id}: a HULFT client needs the centre's ledger`);
      return createHulftClient(centre.config.hulft, partner, { ledger: centre.ledger, spoolRoot: centre.spool.root, log: child });
    case 'pull':
      throw new Error(`partner ${partner.id} pulls its files; there is nothing to push to`);
  }
}

/**
 * The name a file goes by at the partner: our file name, except on 全銀TCP/IP, where the partner
 * knows files by the 全銀ファイル名 that its endpoint config maps to each file type.
 */
export function remoteNameFor(partner: PartnerConfig, file: { name: string; file_type: string | null }): string {
  return partner.delivery.protocol === 'zengin' && file.file_type ? file.file_type : file.name;
}
