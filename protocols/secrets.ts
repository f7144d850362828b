// Secrets (passwords, private keys, TLS keys) come from files or environment variables, never from
// the YAML itself. A config names where a secret lives with one of these shapes.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const secretRefSchema = z.union([
  z.object({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name') }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
]);
export type SecretRef = z.infer<typeof secretRefSchema>;

export class SecretError extends Error {}

/** Reads a secret; file contents lose one trailing newline (keys keep their inner lines). */
export function readSecret(ref: SecretRef, what: string): Buffer {
  if ('env' in ref) {
    const value = process.env[ref.env];
    if (value === undefined || value === '') throw new SecretError(`${what}: environment variable ${ref.env} is not set`);
    return Buffer.from(value);
  }
  try {
    const data = readFileSync(ref.file);
    return data.at(-1) === 0x0a && !data.includes('-----BEGIN') ? data.subarray(0, -1) : data;
  } catch (err) {
    throw new SecretError(`${what}: cannot read secret file ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function readSecretString(ref: SecretRef, what: string): string {
  return readSecret(ref, what).toString('utf8');
}
