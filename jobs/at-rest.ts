// Encryption at rest, as the config says it (PCI DSS 3.4-3.6): the `encryption:` block, the one
// key ring it gives (the spool's files and the utility card vault share it), and what
// check-config says about it.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { secretRefSchema } from '../protocols/secrets.ts';
import { encryptInPlace, exportPlaintext, kekIdsOf, rewrapFile } from '../spool/encrypted-file.ts';
import { KeyError, KeyRing, type KekSource } from '../spool/keys.ts';
import { recordAudit } from '../spool/ledger/audit.ts';
import { Vault } from '../spool/vault/vault.ts';
import type { Centre } from './centre.ts';
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

/** What `tsunagi keys rotate` did. */
export interface RotateSummary {
  kek: string;
  files: number;
  rewrapped: number;
  current: number;
  /** Plain files found (written before `encryption:` was configured); encrypted with `encryptPlain`. */
  plain: number;
  encrypted: number;
  vaultKeysRewrapped: number;
  /** Retired KEK ids that no file and no vault key uses any more: safe to remove from the config. */
  unusedRetired: string[];
  /** Files that could not be re-wrapped (named, with the reason). */
  failed: { file: string; reason: string }[];
}

/** Every regular file under the spool root (temporaries included: a partial may be one). */
async function* spoolFiles(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* spoolFiles(p);
    else if (e.isFile()) yield p;
  }
}

/**
 * Re-wraps every spool file's data key (and the card vault's) under the current KEK: the header
 * is rewritten, the data is not. The retired KEKs must still be configured while it runs; it
 * says which of them nothing uses any more. With `encryptPlain`, plain files (from before
 * encryption was configured) are encrypted too: that rewrites those files.
 */
export async function rotateKeys(centre: Centre, options: { encryptPlain?: boolean } = {}): Promise<RotateSummary> {
  const ring = centre.keys;
  if (!ring || !centre.config.encryption) throw new KeyError(`${centre.config.file}: encryption is not configured (encryption.kek)`);
  const s: RotateSummary = { kek: ring.current.id, files: 0, rewrapped: 0, current: 0, plain: 0, encrypted: 0, vaultKeysRewrapped: 0, unusedRetired: [], failed: [] };
  const stillUsed = new Set<string>();
  for await (const file of spoolFiles(centre.spool.root)) {
    s.files++;
    try {
      const outcome = await rewrapFile(file, ring);
      if (outcome === 'plain') {
        s.plain++;
        if (options.encryptPlain && !path.basename(file).startsWith('.')) {
          await encryptInPlace(file, ring);
          s.encrypted++;
        }
      } else s[outcome]++;
      for (const id of await kekIdsOf(file)) stillUsed.add(id);
    } catch (err) {
      s.failed.push({ file, reason: (err as Error).message });
      for (const id of await kekIdsOf(file).catch(() => [])) stillUsed.add(id);
    }
  }
  if (await centre.ledger.db.schema.hasTable('vault_keys')) {
    s.vaultKeysRewrapped = (await Vault.rewrapKeys(centre.ledger, ring)).rewrapped;
    for (const r of (await centre.ledger.db('vault_keys').select('kek_id')) as { kek_id: string }[]) stillUsed.add(r.kek_id);
  }
  s.unusedRetired = ring.retired.map((k) => k.id).filter((id) => !stillUsed.has(id));
  await recordAudit(centre.ledger, { partnerId: null, protocol: 'cli', event: 'action', detail: `keys rotate: ${s.rewrapped} files re-wrapped under KEK ${s.kek}, ${s.current} already current, ${s.plain} plain (${s.encrypted} encrypted), ${s.vaultKeysRewrapped} vault keys, ${s.failed.length} failed` });
  return s;
}

/**
 * The operator's decryption of one file (`tsunagi export`): audited before the first byte is
 * written, with the operator's reason. The copy is 0600 and outside the spool.
 */
export async function exportFile(centre: Centre, fileId: string, target: string, reason: string, operator = process.env.SUDO_USER ?? process.env.USER ?? 'unknown'): Promise<{ bytes: number; name: string }> {
  const file = await centre.files.get(fileId);
  if (!file) throw new Error(`file ${fileId} is not in the ledger`);
  if (!file.path || file.purged_at) throw new Error(`file ${fileId} has no bytes any more (purged)`);
  if (!reason.trim()) throw new Error('an export needs a reason (--reason): it goes to the audit trail');
  const abs = path.resolve(target);
  if (abs.startsWith(path.resolve(centre.spool.root) + path.sep)) throw new Error('export outside the spool: a plaintext copy inside it would defeat its encryption');
  await recordAudit(centre.ledger, { partnerId: file.partner_id, protocol: 'cli', event: 'action', remote: operator, detail: `export (decrypt) file ${file.id} ${file.name} to ${abs}: ${reason.trim()}` });
  centre.log.warn({ fileId: file.id, operator, target: abs }, 'operator exported a file in plaintext (audited)');
  return { bytes: await exportPlaintext(file.path, abs), name: file.name };
}
