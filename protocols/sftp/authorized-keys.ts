// Partner public keys from authorized_keys lines, and the checks our SFTP server makes with them.
import { createHash, timingSafeEqual } from 'node:crypto';
import ssh2 from 'ssh2';
import type { ParsedKey, PublicKeyAuthContext } from 'ssh2';

const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+)$/;

export interface AuthorizedKey {
  parsed: ParsedKey;
  blob: Buffer;
  fingerprint: string;
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Parses one authorized_keys line (options before the key type are skipped). */
export function parseAuthorizedKey(line: string): AuthorizedKey {
  const tokens = line.trim().split(/\s+/);
  const at = tokens.findIndex((t) => KEY_TYPE.test(t));
  if (at < 0 || !tokens[at + 1]) throw new Error(`not an authorized_keys line: ${line.slice(0, 40)}...`);
  const parsed = ssh2.utils.parseKey(`${tokens[at]} ${tokens[at + 1]}`);
  if (parsed instanceof Error) throw new Error(`bad public key: ${parsed.message}`);
  const key = Array.isArray(parsed) ? parsed[0]! : parsed;
  const blob = key.getPublicSSH();
  return { parsed: key, blob, fingerprint: fingerprintOf(blob) };
}

export function findKey(keys: AuthorizedKey[], offered: Buffer): AuthorizedKey | undefined {
  return keys.find((k) => k.blob.length === offered.length && timingSafeEqual(k.blob, offered));
}

/**
 * The user-key signature algorithms we accept: ed25519, ECDSA and RSA with SHA-2 only. ssh-rsa
 * signs with SHA-1 and DSA keys are 1024-bit SHA-1: both refused (PCI DSS 4.2.1, 8.3.2).
 */
export function acceptableSignature(keyAlgo: string, hashAlgo: string | undefined): boolean {
  if (keyAlgo === 'ssh-ed25519' || /^ecdsa-sha2-nistp(256|384|521)$/.test(keyAlgo)) return true;
  return keyAlgo === 'ssh-rsa' && (hashAlgo === 'sha256' || hashAlgo === 'sha512');
}

/** A key type no account may list (check-config refuses it). */
export function refusedKeyType(line: string): string | undefined {
  return /(^|\s)ssh-dss\s/.test(` ${line.trim()} `) ? 'DSA keys (ssh-dss) are refused: use ed25519, ECDSA or RSA of 3072 bits' : undefined;
}

/** The client proved it holds the private key: the signature over the session blob verifies. */
export function signatureVerifies(key: AuthorizedKey, ctx: PublicKeyAuthContext): boolean {
  if (!ctx.signature || !ctx.blob) return false;
  try {
    return key.parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
  } catch {
    return false;
  }
}

/** Constant-time password comparison (hashes first so lengths do not leak). */
export function passwordMatches(expected: Buffer, offered: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(offered, 'utf8').digest();
  return timingSafeEqual(a, b);
}
