// Host key checking for our SFTP client against an OpenSSH known_hosts file. We never trust a host
// blindly: no file, no entry, or a different key means the connection is refused.
// Supports plain and hashed (|1|salt|hash) host names, "[host]:port", '*'/'?' patterns, '!'
// negation and @revoked. @cert-authority lines are ignored (we do not do host certificates).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface KnownHostKey {
  keyType: string;
  blob: Buffer;
  revoked: boolean;
}

export class HostKeyError extends Error {}

function hostTokens(host: string, port: number): string[] {
  return port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`];
}

function globMatch(pattern: string, text: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(text);
}

function hashedMatch(entry: string, token: string): boolean {
  const [, magic, salt, hash] = entry.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64');
  const got = createHmac('sha1', Buffer.from(salt, 'base64')).update(token).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

function hostsFieldMatches(field: string, tokens: string[]): boolean {
  if (field.startsWith('|')) return tokens.some((t) => hashedMatch(field, t));
  let matched = false;
  for (const pattern of field.split(',')) {
    const negated = pattern.startsWith('!');
    const p = negated ? pattern.slice(1) : pattern;
    if (tokens.some((t) => globMatch(p, t))) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The keys known_hosts lists for host:port, in file order. */
export function knownKeysFor(knownHostsFile: string, host: string, port: number): KnownHostKey[] {
  let text: string;
  try {
    text = readFileSync(knownHostsFile, 'utf8');
  } catch (err) {
    throw new HostKeyError(`known_hosts ${knownHostsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const tokens = hostTokens(host, port);
  const keys: KnownHostKey[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]!.startsWith('@')) {
      const marker = fields.shift();
      if (marker === '@cert-authority') continue;
      revoked = marker === '@revoked';
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64) continue;
    if (!hostsFieldMatches(hosts, tokens)) continue;
    keys.push({ keyType, blob: Buffer.from(b64, 'base64'), revoked });
  }
  return keys;
}

/** True when the server's host key blob is listed (and not revoked) for this host. */
export function isKnownHostKey(known: KnownHostKey[], presented: Buffer): boolean {
  const same = (k: KnownHostKey) => k.blob.length === presented.length && timingSafeEqual(k.blob, presented);
  if (known.some((k) => k.revoked && same(k))) return false;
  return known.some((k) => !k.revoked && same(k));
}

/** Host key algorithms to offer, preferring the types we hold keys for (as OpenSSH does). */
export function hostKeyAlgorithmsFor(known: KnownHostKey[]): string[] {
  const algos: string[] = [];
  for (const k of known) {
    if (k.revoked) continue;
    const names = k.keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k.keyType];
    for (const n of names) if (!algos.includes(n)) algos.push(n);
  }
  return algos;
}
