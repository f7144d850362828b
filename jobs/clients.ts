// Picks the protocol client for a partner's delivery endpoint.
import path from 'node:path';
import type { Logger } from 'pino';
import type { PartnerConfig } from './config.ts';
import type { ProtocolClient } from '../protocols/contract.ts';
import { LocalClient } from '../protocols/local/client.ts';

export async function createClient(partner: PartnerConfig, log: Logger, baseDir: string): Promise<ProtocolClient> {
  const d = partner.delivery;
  const resolve = (p: string) => path.resolve(baseDir, p);
  switch (d.protocol) {
    case 'local':
      return new LocalClient({ ...d, path: resolve(d.path), pullPath: d.pullPath ? resolve(d.pullPath) : undefined });
    case 'pull':
      throw new Error(`partner ${partner.id} pulls its files; there is nothing to push to`);
  }
  void log;
  throw new Error(`partner ${partner.id}: no client for protocol ${(d as { protocol: string }).protocol}`);
}
