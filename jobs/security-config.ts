// Config for the centre's security controls that are not one protocol's: upload limits, the disk's
// free-space reserve and the grace before orphaned temporaries are purged. Registered in
// config.ts with one line each.
import { z } from 'zod';
import type { LandingLimits } from '../spool/landing.ts';
import { readSecretString, secretRefSchema, type SecretRef } from '../protocols/secrets.ts';

const UNITS: Record<string, number> = { B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/** A byte count: a number, or a string such as "512MiB" or "2 GiB". */
export const byteSize = z.union([
  z.number().int().min(0),
  z
    .string()
    .regex(/^\d+(\.\d+)?\s*(B|KiB|MiB|GiB|TiB)$/, 'a size such as 2GiB or 512MiB')
    .transform((s) => {
      const m = /^(\d+(?:\.\d+)?)\s*(\w+)$/.exec(s)!;
      return Math.round(Number(m[1]) * UNITS[m[2]!]!);
    }),
]);

export const uploadsSchema = z
  .object({
    /** Largest file a partner may upload (a partner's own maxUploadBytes overrides it). */
    maxBytes: byteSize.default(4 * 2 ** 30),
    /** Uploads are refused, with a protocol error, while the spool's disk has less free than this. */
    freeSpaceReserve: byteSize.default(2 ** 30),
    /** Temporary files (ours from a crash, or a client's own .part names) older than this are purged. */
    orphanGraceHours: z.number().positive().max(24 * 90).default(24),
  })
  .strict();
export type UploadsSettings = z.infer<typeof uploadsSchema>;

export const auditSchema = z
  .object({
    /**
     * Audit rows older than this are pruned by the purge job, behind a checkpoint that keeps the
     * rest of the chain verifiable. PCI DSS 10.5.1 keeps audit history for at least 12 months.
     */
    retentionDays: z.number().int().min(366).max(3650).default(400),
  })
  .strict();
export type AuditSettings = z.infer<typeof auditSchema>;

/** The landing limits for one partner. */
export function uploadLimits(uploads: UploadsSettings, partnerMaxBytes: number | undefined): LandingLimits {
  return { maxBytes: partnerMaxBytes ?? uploads.maxBytes, reserveBytes: uploads.freeSpaceReserve };
}

/** The landing limits of one partner of a config (every listener and the HULFT receive job use it). */
export function partnerUploadLimits(config: { uploads: UploadsSettings; partners: { id: string; maxUploadBytes?: number }[] }, partnerId: string): LandingLimits {
  return uploadLimits(config.uploads, config.partners.find((p) => p.id === partnerId)?.maxUploadBytes);
}

/**
 * The ledger and queue URLs may carry passwords: like every other secret they may come from an
 * environment variable or a file ({ env: NAME } / { file: PATH }) instead of the YAML. The value
 * read must still be a URL of the expected shape.
 */
export function urlOrSecret(literal: z.ZodString) {
  return z.union([literal, secretRefSchema]);
}

/** Replaces a secret reference by the URL it holds; returns the problem if it cannot. */
export function resolveUrlSecret(value: string | SecretRef, literal: z.ZodString, what: string): { url: string } | { problem: string } {
  if (typeof value === 'string') return { url: value };
  let text: string;
  try {
    text = readSecretString(value, what).trim();
  } catch (err) {
    return { problem: (err as Error).message };
  }
  const checked = literal.safeParse(text);
  // The message never repeats the value: it may hold a password.
  if (!checked.success) return { problem: `${what}: the value read from ${'env' in value ? `environment variable ${value.env}` : value.file} is not ${checked.error.issues[0]?.message ?? 'valid'}` };
  return { url: text };
}
