// RSA key transport. Node 20 refuses privateDecrypt with PKCS#1 v1.5 padding (CVE-2023-46809), yet
// it is every AS2 product's default: we decrypt with RSA_NO_PADDING and check the padding ourselves
// in constant time, with implicit rejection: on bad padding the caller gets a pseudo-random key
// derived from the ciphertext and the private key, so the content decryption fails exactly as it
// would with a wrong key, and nothing tells a sender which of the two happened.
import { constants, createHash, createHmac, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';

const derivationKeys = new WeakMap<KeyObject, Buffer>();

function derivationKey(key: KeyObject): Buffer {
  let k = derivationKeys.get(key);
  if (!k) {
    k = createHash('sha256').update('tsunagi-as2-implicit-rejection').update(key.export({ format: 'der', type: 'pkcs8' })).digest();
    derivationKeys.set(key, k);
  }
  return k;
}

/** A deterministic pseudo-random key for this ciphertext (the same bad message always fails the same way). */
function syntheticKey(key: KeyObject, ciphertext: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  let filled = 0;
  for (let counter = 0; filled < length; counter++) {
    const block = createHmac('sha256', derivationKey(key)).update(Buffer.from([counter])).update(ciphertext).digest();
    filled += block.copy(out, filled);
  }
  return out;
}

/** 1 when a === b, else 0, without branches on the values. */
const eq = (a: number, b: number) => (((a ^ b) - 1) >>> 31) & 1;
/** 1 when a >= b (both small non-negative integers), else 0. */
const ge = (a: number, b: number) => 1 - (((a - b) >>> 31) & 1);

/**
 * Unwraps a PKCS#1 v1.5 key of `keyLength` bytes. Never throws for a bad ciphertext: returns either
 * the real key or the synthetic one, chosen with a mask.
 */
export function unwrapPkcs1v15(key: KeyObject, ciphertext: Buffer, keyLength: number): Buffer {
  const synthetic = syntheticKey(key, ciphertext, keyLength);
  const k = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 2048) / 8);
  let em: Buffer;
  let decrypted = 1;
  try {
    em = ciphertext.length === k ? privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, ciphertext) : Buffer.alloc(k);
    if (ciphertext.length !== k) decrypted = 0;
  } catch {
    em = Buffer.alloc(k);
    decrypted = 0;
  }
  let good = decrypted & eq(em.length, k) & eq(em[0] ?? 1, 0) & eq(em[1] ?? 0, 2);
  let found = 0;
  let zeroIndex = 0;
  for (let i = 2; i < em.length; i++) {
    const isZero = eq(em[i]!, 0);
    const take = isZero & (1 - found);
    zeroIndex = (zeroIndex & (take - 1)) | (i & -take);
    found |= isZero;
  }
  good &= found & ge(zeroIndex, 10) & eq(em.length - zeroIndex - 1, keyLength);
  const mask = -good & 0xff;
  const out = Buffer.alloc(keyLength);
  const offset = Math.max(0, em.length - keyLength);
  for (let j = 0; j < keyLength; j++) out[j] = ((em[offset + j] ?? 0) & mask) | (synthetic[j]! & ~mask & 0xff);
  return out;
}

/** RSA-OAEP unwrap; a failure also yields the synthetic key, so it looks like any other bad key. */
export function unwrapOaep(key: KeyObject, ciphertext: Buffer, hash: string, keyLength: number): Buffer {
  try {
    const out = privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, ciphertext);
    if (out.length === keyLength) return out;
  } catch {
    // fall through
  }
  return syntheticKey(key, ciphertext, keyLength);
}

export function wrapPkcs1v15(publicKey: KeyObject, cek: Buffer): Buffer {
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, cek);
}

export function wrapOaep(publicKey: KeyObject, cek: Buffer, hash: string): Buffer {
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, cek);
}
