// Config of utility billing (公共料金決済): the `utility` block of a `role: utility` partner and the
// centre's `vault` block (where the key-encryption key lives). Checked against the rest of the
// config by checkUtilityConfig, called from the config's own refinement.
import { z } from 'zod';
import { keySources } from '../at-rest.ts';
import { secretRefSchema } from '../../protocols/secrets.ts';
import { cronProblem } from '../cron.ts';

const cron = z.string().superRefine((pattern, ctx) => {
  const problem = cronProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: `cron '${pattern}': ${problem}` });
});

export const UTILITY_SENDS = ['21', '23'] as const;
export const UTILITY_RECEIVES = ['22', '24', '91'] as const;

export const utilityPartnerSchema = z
  .object({
    /** The utility's merchant number (加盟店番号) at each card company it bills through, by card-company code. */
    merchantNos: z.record(z.string().regex(/^\d{3}$/, '3 digits'), z.string().min(1).max(15).regex(/^[\x21-\x7e]+$/, 'half-width, no spaces')),
    /**
     * The validity check (有効性処理) of every card on file: `schedule` is a cron pattern (Asia/Tokyo);
     * `tsunagi cycle` runs it on the days the pattern falls on.
     */
    validity: z.object({ schedule: cron }).strict().optional(),
  })
  .strict();

export type UtilityPartnerConfig = z.infer<typeof utilityPartnerSchema>;

export const vaultSchema = z
  .object({
    /** The key-encryption key (the spool's encryption at rest uses the same): 64 hex digits in a file (mode 600) or an environment variable. */
    kek: secretRefSchema,
    /** Older KEKs that still unwrap data keys written before a rotation. */
    retiredKeks: z.array(secretRefSchema).default([]),
  })
  .strict();

export type VaultConfig = z.infer<typeof vaultSchema>;

interface PartnerLike {
  id: string;
  role: string;
  send: string[];
  receive: string[];
  cardCompanyCodes: string[];
  merchantNos: string[];
  utility?: UtilityPartnerConfig;
}

type Issue = (path: (string | number)[], message: string) => void;

/** Cross-checks of utility partners against the card companies and the vault. */
export function checkUtilityConfig(config: { partners: PartnerLike[]; vault?: VaultConfig }, issue: Issue): void {
  const encryption = (config as { encryption?: { kek?: unknown } }).encryption;
  const companyCodes = new Set(config.partners.filter((p) => p.role === 'card-company').flatMap((p) => p.cardCompanyCodes));
  const merchantNos = new Set(config.partners.flatMap((p) => p.merchantNos));
  const utilityMerchantNos = new Map<string, string>();
  let utilities = 0;
  config.partners.forEach((p, i) => {
    if (p.role !== 'utility') {
      if (p.utility) issue(['partners', i, 'utility'], "only a partner with role 'utility' has a utility block");
      return;
    }
    utilities++;
    if (!p.utility) {
      issue(['partners', i, 'utility'], 'a utility needs a utility block with its merchant number at each card company (utility.merchantNos)');
      return;
    }
    const entries = Object.entries(p.utility.merchantNos);
    if (entries.length === 0) issue(['partners', i, 'utility', 'merchantNos'], 'at least one card company');
    for (const [code, no] of entries) {
      if (!companyCodes.has(code)) issue(['partners', i, 'utility', 'merchantNos', code], `card-company code ${code} is not configured for any card company`);
      const other = utilityMerchantNos.get(no);
      if (other || merchantNos.has(no)) issue(['partners', i, 'utility', 'merchantNos', code], `merchant number '${no}' is already used by ${other ?? 'a merchant'}`);
      utilityMerchantNos.set(no, p.id);
    }
    p.send.forEach((t, j) => {
      if (!(UTILITY_SENDS as readonly string[]).includes(t)) issue(['partners', i, 'send', j], `a utility sends ${UTILITY_SENDS.join(', ')}, not ${t}`);
    });
    p.receive.forEach((t, j) => {
      if (!(UTILITY_RECEIVES as readonly string[]).includes(t)) issue(['partners', i, 'receive', j], `a utility receives ${UTILITY_RECEIVES.join(', ')}, not ${t}`);
    });
  });
  if (utilities > 0 && !config.vault && !encryption?.kek) issue(['vault'], 'utility partners need the card vault: vault.kek ({ file } or { env }) names the key-encryption key (or encryption.kek, the spool\'s)');
}

/** The vault's KEKs: the spool's encryption at rest (`encryption: { kek, retired }`), with an older `vault` block's keys as retired ones. */
export function vaultKeySources(config: { vault?: VaultConfig }): VaultConfig | undefined {
  // One key ring for the spool and the vault (jobs/at-rest.ts): `encryption` first, `vault` beside it.
  const s = keySources(config as Parameters<typeof keySources>[0]);
  return s ? { kek: s.kek, retiredKeks: s.retired } : undefined;
}
