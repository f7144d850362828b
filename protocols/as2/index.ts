// AS2 (RFC 4130) for tsunagi: the client for `delivery: as2`, the listener `listeners.as2`, config.
import type { Logger } from 'pino';
import type { Ledger } from '../../spool/ledger/db.ts';
import type { ListenerContext } from '../contract.ts';
import { As2Client } from './client.ts';
import { loadPartnership, type As2Account, type As2Endpoint, type As2ListenerConfig } from './config.ts';
import { createAs2Listener, type As2Listener } from './listener.ts';

import { partnershipCertificateProblems } from './config.ts';
export { as2AccountSchema, as2EndpointSchema, as2ListenerSchema, partnershipCertificateProblems } from './config.ts';
export type { As2Account, As2Endpoint, As2ListenerConfig } from './config.ts';

interface PartnerLike {
  id: string;
  as2?: As2Account;
  delivery: { protocol: string };
}

export function createAs2Client(partner: PartnerLike & { delivery: As2Endpoint }, log: Logger, ledger: Ledger | undefined, messageIdHost?: string): As2Client {
  if (!partner.as2) throw new Error(`partner ${partner.id} has delivery as2 but no as2 section`);
  if (!ledger) throw new Error('the AS2 client needs the ledger');
  return new As2Client({ partnership: loadPartnership(partner.id, partner.as2), endpoint: partner.delivery, ledger, log, messageIdHost });
}

export function createAs2ListenerFromConfig(config: As2ListenerConfig, partners: PartnerLike[], ctx: ListenerContext): As2Listener {
  return createAs2Listener(
    config,
    partners
      .filter((p) => p.as2)
      .map((p) => ({ ...loadPartnership(p.id, p.as2!), endpoint: p.delivery.protocol === 'as2' ? (p.delivery as As2Endpoint) : undefined })),
    ctx,
  );
}

/** Problems check-config reports for a partner's AS2 section. */
export function as2ConfigProblems(partner: PartnerLike): string[] {
  if (partner.delivery.protocol === 'as2' && !partner.as2) return ['delivery as2 needs the partner\'s as2 section (ids, keys, certificates)'];
  return [];
}

/** check-config: certificate expiry of every AS2 partnership (expired: errors; within 30 days: warnings). */
export function as2CertificateReport(partners: PartnerLike[], now = Date.now()): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const p of partners) {
    if (!p.as2) continue;
    for (const problem of partnershipCertificateProblems(p.id, p.as2, now)) (problem.level === 'error' ? errors : warnings).push(problem.message);
  }
  return { errors, warnings };
}
