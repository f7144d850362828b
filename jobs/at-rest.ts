// Encryption at rest, as the config says it (PCI DSS 3.4-3.6): the `encryption:` block, the one
// key ring it gives (the spool's files and the utility card vault share it), and what
// check-config says about it.
import { z } from 'zod';
import { secretRefSchema } from '../protocols/secrets.ts';
import { KeyRing, type KekSource } from '../spool/keys.ts';
import type { VaultConfig } from './utility/config.ts';

export const encryptionSchema = z
  .object({
    /**
     * The key-encryption key: 64 hex digits (or base64 of 32 bytes) in a file of mode 0600 that
     * `tsunagi keys new FILE` writes, or in an environment variable. It wraps each spool file's
     * own data key and the card vault's data keys; it never encrypts data itself.
     */
    kek: secretRefSchema,
    /** Earlier KEKs, kept until `tsunagi keys rotate` has re-wrapped every file under `kek`. */
    retired: z.array(secretRefSchema).default([]),
  })
  .strict();

export type EncryptionConfig = z.infer<typeof encryptionSchema>;

interface KeyConfig {
  encryption?: EncryptionConfig;
  vault?: VaultConfig;
}

/**
 * The KEK sources of the centre: `encryption` first. A `vault:` block (issue 17's own key, kept
 * for configs that predate `encryption`) joins as a retired key when both exist, so the vault's
 * data keys still unwrap and `keys rotate` moves them under the one KEK.
 */
export function keySources(config: KeyConfig): { kek: KekSource; retired: KekSource[] } | undefined {
  const vault = config.vault ? [config.vault.kek, ...config.vault.retiredKeks] : [];
  if (config.encryption) return { kek: config.encryption.kek, retired: [...config.encryption.retired, ...vault] };
  if (config.vault) return { kek: config.vault.kek, retired: config.vault.retiredKeks };
  return undefined;
}

/**
 * Loads the centre's key ring; a key file that group or others can read or write is refused
 * (KeyError), and the centre then does not start.
 */
export function loadKeyRing(config: KeyConfig): KeyRing | undefined {
  const s = keySources(config);
  if (!s) return undefined;
  const sameAs = (a: KekSource, b: KekSource) => JSON.stringify(a) === JSON.stringify(b);
  return KeyRing.load(s.kek, s.retired.filter((r, i, all) => !sameAs(r, s.kek) && all.findIndex((o) => sameAs(o, r)) === i));
}

/** What check-config says about encryption at rest (warnings, not errors: a demo may run without). */
export function atRestWarnings(config: KeyConfig & { partners: unknown[] }): string[] {
  const out: string[] = [];
  if (!config.encryption) {
    out.push(
      'encryption: not configured: spool files (work/, archive/, outbound/, 全銀 partials) hold whole card numbers in the clear. ' +
        'Run `tsunagi keys new /etc/tsunagi/kek` and add `encryption: { kek: { file: /etc/tsunagi/kek } }` (PCI DSS 3.4)',
    );
  }
  if (config.encryption && config.vault) out.push('vault: the card vault now uses encryption.kek; vault.kek is only read as a retired key (run `tsunagi keys rotate`, then remove the vault block)');
  return out;
}
