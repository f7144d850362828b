// Key-encryption keys (KEKs) for data at rest. A KEK never encrypts data itself: every spool file
// (or vault entry) gets its own random 256-bit data key, and only that data key is encrypted
// ("wrapped") by the KEK with AES-256-GCM. Rotating the KEK then means re-wrapping a few dozen
// bytes per file, not rewriting the data. Other users (a card vault's lookup hash, for example)
// get keys derived from the KEK with HKDF-SHA256 under their own purpose label, so one secret
// serves them all without reusing the same key for two jobs.
//
// A KEK comes from a file or an environment variable, the same `{ file }` / `{ env }` shapes the
// config uses for every secret (spool may not import protocols/secrets.ts, so the shape is
// repeated here). A key file readable or writable by group or others is refused: PCI DSS 3.6.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';

export type KekSource = { file: string } | { env: string };

export class KeyError extends Error {}

/** A loaded KEK. `id` (16 hex digits) names it in wrapped keys without revealing it. */
export interface Kek {
  readonly id: string;
  readonly key: Buffer;
}

export const KEY_BYTES = 32;
const WRAP_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const ID_BYTES = 8;
/** version(1) + kek id(8) + iv(12) + wrapped key(32) + tag(16). */
export const WRAPPED_KEY_BYTES = 1 + ID_BYTES + IV_BYTES + KEY_BYTES + TAG_BYTES;

/** The id of a key: the first 8 bytes of SHA-256 over a domain label and the key, in hex. */
export function kekId(key: Buffer): string {
  return createHash('sha256').update('tsunagi-kek-id\0').update(key).digest().subarray(0, ID_BYTES).toString('hex');
}

/** Builds a Kek from 32 raw bytes. */
export function kekFromBytes(key: Buffer): Kek {
  if (key.length !== KEY_BYTES) throw new KeyError(`a key-encryption key is ${KEY_BYTES} bytes, got ${key.length}`);
  return { id: kekId(key), key: Buffer.from(key) };
}

/**
 * Parses a KEK's text: 64 hex digits or base64 of 32 bytes (surrounding whitespace ignored),
 * or exactly 32 raw bytes. Anything else is refused rather than stretched into a key.
 */
export function parseKek(raw: Buffer, what: string): Kek {
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return kekFromBytes(Buffer.from(text, 'hex'));
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return kekFromBytes(Buffer.from(text, 'base64'));
  if (raw.length === KEY_BYTES) return kekFromBytes(raw);
  throw new KeyError(`${what}: not a 256-bit key (expected 64 hex digits, base64 of 32 bytes, or 32 raw bytes)`);
}

/** Refuses a key file that is not a regular file or that group or others may read or write. */
export function checkKeyFileMode(file: string, what = 'key file'): void {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new KeyError(`${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!st.isFile()) throw new KeyError(`${what}: ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new KeyError(`${what}: ${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; group and others must have no access (chmod 600 ${file})`);
  }
}

/** Loads a KEK from a file (mode checked) or an environment variable. */
export function loadKek(source: KekSource, what = 'key-encryption key'): Kek {
  if ('env' in source) {
    const value = process.env[source.env];
    if (value === undefined || value === '') throw new KeyError(`${what}: environment variable ${source.env} is not set`);
    return parseKek(Buffer.from(value, 'latin1'), `${what} (environment variable ${source.env})`);
  }
  checkKeyFileMode(source.file, what);
  return parseKek(readFileSync(source.file), `${what} (${source.file})`);
}

/** A fresh random KEK as the hex text a key file holds. */
export function generateKekText(): string {
  return `${randomBytes(KEY_BYTES).toString('hex')}\n`;
}

/** Writes a new KEK file with mode 0600; refuses to overwrite an existing one. */
export async function writeNewKekFile(file: string): Promise<Kek> {
  const text = generateKekText();
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return parseKek(Buffer.from(text), file);
}

/**
 * The current KEK (wraps every new data key) plus retired ones (still unwrap older files until
 * they are re-wrapped). Rotation: make the new key current, keep the old one in `retired`, run
 * the re-wrap over every file, then drop the old key.
 */
export class KeyRing {
  readonly current: Kek;
  readonly retired: readonly Kek[];
  private readonly byId = new Map<string, Kek>();

  constructor(current: Kek, retired: readonly Kek[] = []) {
    this.current = current;
    this.retired = retired.filter((k) => k.id !== current.id);
    for (const k of [current, ...this.retired]) this.byId.set(k.id, k);
  }

  static load(current: KekSource, retired: readonly KekSource[] = []): KeyRing {
    return new KeyRing(
      loadKek(current, 'key-encryption key'),
      retired.map((s, i) => loadKek(s, `retired key-encryption key ${i + 1}`)),
    );
  }

  get(id: string): Kek | undefined {
    return this.byId.get(id);
  }

  /** Every KEK, current first. */
  all(): Kek[] {
    return [this.current, ...this.retired];
  }
}

/** A fresh random 256-bit data key. */
export function newDataKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/**
 * Wraps a data key with a KEK (AES-256-GCM). `context` (for example a file's role) is bound as
 * associated data, so a wrapped key moved to another context does not unwrap.
 */
export function wrapDataKey(kek: Kek, dataKey: Buffer, context = ''): Buffer {
  if (dataKey.length !== KEY_BYTES) throw new KeyError(`a data key is ${KEY_BYTES} bytes, got ${dataKey.length}`);
  const iv = randomBytes(IV_BYTES);
  const header = Buffer.concat([Buffer.from([WRAP_VERSION]), Buffer.from(kek.id, 'hex')]);
  const cipher = createCipheriv('aes-256-gcm', kek.key, iv);
  cipher.setAAD(Buffer.concat([header, Buffer.from(context, 'utf8')]));
  const body = Buffer.concat([cipher.update(dataKey), cipher.final()]);
  return Buffer.concat([header, iv, body, cipher.getAuthTag()]);
}

/** The id of the KEK that wrapped this key. */
export function wrappedKekId(wrapped: Buffer): string {
  if (wrapped.length !== WRAPPED_KEY_BYTES || wrapped[0] !== WRAP_VERSION) throw new KeyError('not a wrapped data key');
  return wrapped.subarray(1, 1 + ID_BYTES).toString('hex');
}

/** Unwraps a data key with whichever KEK of the ring wrapped it; a tampered key is refused. */
export function unwrapDataKey(ring: KeyRing | Kek, wrapped: Buffer, context = ''): Buffer {
  const id = wrappedKekId(wrapped);
  const kek = ring instanceof KeyRing ? ring.get(id) : ring.id === id ? ring : undefined;
  if (!kek) throw new KeyError(`data key was wrapped by key-encryption key ${id}, which is not loaded`);
  const header = wrapped.subarray(0, 1 + ID_BYTES);
  const iv = wrapped.subarray(1 + ID_BYTES, 1 + ID_BYTES + IV_BYTES);
  const body = wrapped.subarray(1 + ID_BYTES + IV_BYTES, 1 + ID_BYTES + IV_BYTES + KEY_BYTES);
  const tag = wrapped.subarray(WRAPPED_KEY_BYTES - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', kek.key, iv);
  decipher.setAAD(Buffer.concat([header, Buffer.from(context, 'utf8')]));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    throw new KeyError(`wrapped data key failed authentication (key-encryption key ${id})`);
  }
}

/** Re-wraps a data key under the ring's current KEK (rotation); already current: returned as is. */
export function rewrapDataKey(ring: KeyRing, wrapped: Buffer, context = ''): { wrapped: Buffer; changed: boolean } {
  if (wrappedKekId(wrapped) === ring.current.id) return { wrapped, changed: false };
  return { wrapped: wrapDataKey(ring.current, unwrapDataKey(ring, wrapped, context), context), changed: true };
}

/**
 * A key derived from a KEK for another purpose (HKDF-SHA256; `purpose` is the info label, for
 * example 'card-vault/hmac'). The same KEK and purpose always give the same key; a different
 * purpose gives an unrelated one.
 */
export function deriveKey(kek: Kek, purpose: string, bytes = 32): Buffer {
  if (!purpose) throw new KeyError('a derived key needs a purpose label');
  return Buffer.from(hkdfSync('sha256', kek.key, Buffer.from('tsunagi-kdf-v1'), Buffer.from(purpose, 'utf8'), bytes));
}

/** An HMAC-SHA256 key for `purpose`, derived from the ring's current KEK. */
export function deriveHmacKey(source: KeyRing | Kek, purpose: string): { kekId: string; key: Buffer } {
  const kek = source instanceof KeyRing ? source.current : source;
  return { kekId: kek.id, key: deriveKey(kek, `hmac:${purpose}`) };
}

/**
 * HMAC keys for `purpose` under every KEK of the ring, current first: a lookup table keyed by
 * HMAC (a card vault) can still find entries written before a rotation while it re-keys them.
 */
export function deriveHmacKeys(ring: KeyRing, purpose: string): { kekId: string; key: Buffer }[] {
  return ring.all().map((k) => deriveHmacKey(k, purpose));
}

/** Constant-time comparison for MACs. */
export function macEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
