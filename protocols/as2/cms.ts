// CMS (RFC 5652) as AS2 uses it, over exact bytes: detached SignedData, EnvelopedData with RSA key
// transport (PKCS#1 v1.5 or OAEP) and AES-CBC / 3DES, AuthEnvelopedData with AES-GCM (RFC 5083/5084),
// and CompressedData with zlib (RFC 3274).
import { createCipheriv, createDecipheriv, createHash, randomBytes, sign, verify, constants } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import {
  algorithm,
  child,
  decode,
  explicit,
  header,
  integer,
  nullValue,
  octets,
  octetString,
  oid,
  oidOf,
  seq,
  setOf,
  TAG,
  tlv,
  utcTime,
  type Asn1,
} from './der.ts';
import { identifies, type Certificate, type OwnKey } from './certs.ts';
import { unwrapOaep, unwrapPkcs1v15, wrapOaep, wrapPkcs1v15 } from './rsa.ts';

export const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  authEnvelopedData: '1.2.840.113549.1.9.16.1.23',
  compressedData: '1.2.840.113549.1.9.16.1.9',
  zlib: '1.2.840.113549.1.9.16.3.8',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsaOaep: '1.2.840.113549.1.1.7',
  mgf1: '1.2.840.113549.1.1.8',
  contentTypeAttr: '1.2.840.113549.1.9.3',
  messageDigestAttr: '1.2.840.113549.1.9.4',
  signingTimeAttr: '1.2.840.113549.1.9.5',
} as const;

export type DigestName = 'sha1' | 'sha256' | 'sha384' | 'sha512';
export const DIGEST_OIDS: Record<DigestName, string> = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
};
const DIGEST_BY_OID = new Map(Object.entries(DIGEST_OIDS).map(([k, v]) => [v, k as DigestName]));
const RSA_SIGNATURE_OIDS = new Map<string, DigestName>([
  ['1.2.840.113549.1.1.5', 'sha1'],
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
]);

export type ContentCipher = 'aes128-cbc' | 'aes192-cbc' | 'aes256-cbc' | 'aes128-gcm' | 'aes192-gcm' | 'aes256-gcm' | 'des-ede3-cbc';
interface CipherInfo {
  name: ContentCipher;
  oid: string;
  keyLength: number;
  ivLength: number;
  gcm: boolean;
  node: string;
}
const CIPHERS: CipherInfo[] = [
  { name: 'aes128-cbc', oid: '2.16.840.1.101.3.4.1.2', keyLength: 16, ivLength: 16, gcm: false, node: 'aes-128-cbc' },
  { name: 'aes192-cbc', oid: '2.16.840.1.101.3.4.1.22', keyLength: 24, ivLength: 16, gcm: false, node: 'aes-192-cbc' },
  { name: 'aes256-cbc', oid: '2.16.840.1.101.3.4.1.42', keyLength: 32, ivLength: 16, gcm: false, node: 'aes-256-cbc' },
  { name: 'aes128-gcm', oid: '2.16.840.1.101.3.4.1.6', keyLength: 16, ivLength: 12, gcm: true, node: 'aes-128-gcm' },
  { name: 'aes192-gcm', oid: '2.16.840.1.101.3.4.1.26', keyLength: 24, ivLength: 12, gcm: true, node: 'aes-192-gcm' },
  { name: 'aes256-gcm', oid: '2.16.840.1.101.3.4.1.46', keyLength: 32, ivLength: 12, gcm: true, node: 'aes-256-gcm' },
  { name: 'des-ede3-cbc', oid: '1.2.840.113549.3.7', keyLength: 24, ivLength: 8, gcm: false, node: 'des-ede3-cbc' },
];
const CIPHER_BY_OID = new Map(CIPHERS.map((c) => [c.oid, c]));
const cipherInfo = (name: ContentCipher) => CIPHERS.find((c) => c.name === name)!;

export type KeyTransport = 'rsa-pkcs1' | 'rsa-oaep-sha256';

/** Every failure to decrypt, whatever its cause: one error, one text. */
export class DecryptionError extends Error {
  constructor() {
    super('decryption-failed');
  }
}
export class SignatureError extends Error {
  constructor(
    readonly kind: 'integrity' | 'authentication',
    message: string,
  ) {
    super(message);
  }
}
export class CmsFormatError extends Error {}

function contentInfo(type: string, content: Buffer): Buffer {
  return seq(oid(type), explicit(0, content));
}

export interface ParsedContentInfo {
  type: string;
  content: Asn1;
}

export function parseContentInfo(der: Buffer): ParsedContentInfo {
  const root = decode(der, true);
  if (root.tag !== TAG.SEQUENCE) throw new CmsFormatError('not a CMS ContentInfo');
  const type = oidOf(child(root, 0, 'contentType'));
  const wrapper = child(root, 1, 'content');
  if (wrapper.tag !== 0xa0) throw new CmsFormatError('CMS content is not [0] EXPLICIT');
  return { type, content: child(wrapper, 0, 'content') };
}

function hashParts(digest: DigestName, parts: Buffer[]): Buffer {
  const h = createHash(digest);
  for (const p of parts) h.update(p);
  return h.digest();
}

function issuerAndSerial(cert: Certificate): Buffer {
  return seq(cert.issuer, integer(cert.serial));
}

// ---- SignedData ----

/** A detached signature (eContent absent) over `parts` joined, with signed attributes. */
export function signDetached(parts: Buffer[], own: OwnKey, digest: DigestName, at = new Date(), precomputed?: Buffer): Buffer {
  const messageDigest = precomputed ?? hashParts(digest, parts);
  const attrs = [
    seq(oid(OID.contentTypeAttr), setOf(oid(OID.data))),
    seq(oid(OID.signingTimeAttr), setOf(utcTime(at))),
    seq(oid(OID.messageDigestAttr), setOf(octetString(messageDigest))),
  ];
  const signedAttrsSet = setOf(...attrs);
  const signature = sign(digest, signedAttrsSet, { key: own.privateKey, padding: constants.RSA_PKCS1_PADDING });
  const signedAttrs = Buffer.concat([Buffer.from([0xa0]), signedAttrsSet.subarray(1)]);
  const signerInfo = seq(integer(1), issuerAndSerial(own.certificate), algorithm(DIGEST_OIDS[digest], null), signedAttrs, algorithm(OID.rsaEncryption, null), octetString(signature));
  const signedData = seq(
    integer(1),
    setOf(algorithm(DIGEST_OIDS[digest], null)),
    seq(oid(OID.data)),
    tlv(0xa0, own.certificate.der),
    setOf(signerInfo),
  );
  return contentInfo(OID.signedData, signedData);
}

export interface VerifiedSignature {
  digest: DigestName;
  /** The digest of the signed content, as computed while verifying (the MIC when the algorithms agree). */
  contentDigest?: Buffer;
  /** The encapsulated content when the signature was not detached. */
  content?: Buffer;
  signer: Certificate;
}

/**
 * Verifies a SignedData over `detached` (or its own eContent) with the configured certificates only;
 * certificates inside the message are ignored.
 */
export function verifySignedData(signedData: Asn1, detached: Buffer | undefined, trusted: Certificate[]): VerifiedSignature {
  if (signedData.tag !== TAG.SEQUENCE) throw new CmsFormatError('SignedData is not a SEQUENCE');
  const encap = child(signedData, 2, 'encapContentInfo');
  const eContentWrapper = encap.children[1];
  const content = eContentWrapper ? octets(child(eContentWrapper, 0)) : undefined;
  const data = content ?? detached;
  if (!data) throw new CmsFormatError('SignedData without content');
  const signerInfos = signedData.children[signedData.children.length - 1]!;
  if (signerInfos.tag !== TAG.SET || signerInfos.children.length === 0) throw new CmsFormatError('SignedData has no signerInfos');
  let lastProblem = 'no signer matches a configured certificate';
  let digestMismatch = false;
  for (const si of signerInfos.children) {
    const sid = child(si, 1, 'sid');
    const digest = DIGEST_BY_OID.get(oidOf(child(child(si, 2), 0)));
    if (!digest) {
      lastProblem = 'unsupported digest algorithm';
      continue;
    }
    let i = 3;
    let signedAttrs: Asn1 | undefined;
    if (si.children[i]?.tag === 0xa0) signedAttrs = si.children[i++];
    const sigAlg = oidOf(child(child(si, i++), 0));
    const signature = octets(child(si, i, 'signature'));
    const sigDigest = sigAlg === OID.rsaEncryption ? digest : RSA_SIGNATURE_OIDS.get(sigAlg);
    if (!sigDigest) {
      lastProblem = `unsupported signature algorithm ${sigAlg}`;
      continue;
    }
    let signedBytes: Buffer;
    let contentDigest: Buffer | undefined;
    if (signedAttrs) {
      const md = signedAttrs.children.find((a) => oidOf(child(a, 0)) === OID.messageDigestAttr);
      if (!md) {
        lastProblem = 'signed attributes without messageDigest';
        continue;
      }
      const expected = octets(child(child(md, 1), 0));
      const actual = createHash(digest).update(data).digest();
      contentDigest = actual;
      if (expected.length !== actual.length || !expected.equals(actual)) {
        lastProblem = 'content digest does not match';
        digestMismatch = true;
        continue;
      }
      signedBytes = Buffer.concat([Buffer.from([TAG.SET]), signedAttrs.raw.subarray(1)]);
    } else {
      signedBytes = data;
    }
    // The sid picks the certificate when it names one of ours; during a rollover either may have signed.
    const candidates = [...trusted].sort((a, b) => Number(identifies(sid, b)) - Number(identifies(sid, a)));
    for (const cert of candidates) {
      if (cert.publicKey.asymmetricKeyType !== 'rsa') continue;
      if (verify(sigDigest, signedBytes, { key: cert.publicKey, padding: constants.RSA_PKCS1_PADDING }, signature)) return { digest, content, signer: cert, contentDigest };
    }
    lastProblem = 'signature does not verify with the configured certificate';
  }
  throw new SignatureError(digestMismatch ? 'integrity' : 'authentication', lastProblem);
}

// ---- EnvelopedData / AuthEnvelopedData ----

export interface EncryptOptions {
  cipher: ContentCipher;
  keyTransport: KeyTransport;
}

function keyTransportRecipient(cert: Certificate, cek: Buffer, transport: KeyTransport): Buffer {
  const encryptedKey = transport === 'rsa-oaep-sha256' ? wrapOaep(cert.publicKey, cek, 'sha256') : wrapPkcs1v15(cert.publicKey, cek);
  const alg =
    transport === 'rsa-oaep-sha256'
      ? algorithm(OID.rsaOaep, seq(explicit(0, algorithm(DIGEST_OIDS.sha256)), explicit(1, algorithm(OID.mgf1, algorithm(DIGEST_OIDS.sha256)))))
      : algorithm(OID.rsaEncryption, null);
  return seq(integer(0), issuerAndSerial(cert), alg, octetString(encryptedKey));
}

/** Encrypted length of `n` plaintext bytes. */
function cipherLength(info: CipherInfo, n: number): number {
  return info.gcm ? n : (Math.floor(n / info.ivLength) + 1) * info.ivLength;
}

/**
 * Encrypts `parts` (joined) for one recipient. The DER comes as chunks produced while they are
 * consumed (the ciphertext is never held whole); their total length is known up front.
 */
export function envelope(parts: Buffer[], recipient: Certificate, options: EncryptOptions): { chunks: Iterable<Buffer>; length: number } {
  const info = cipherInfo(options.cipher);
  const cek = randomBytes(info.keyLength);
  const iv = randomBytes(info.ivLength);
  const plainLength = parts.reduce((n, p) => n + p.length, 0);
  const encLength = cipherLength(info, plainLength);
  const ri = setOf(keyTransportRecipient(recipient, cek, options.keyTransport));
  const params = info.gcm ? seq(octetString(iv), integer(16)) : octetString(iv);
  const eciPrefix = Buffer.concat([oid(OID.data), algorithm(info.oid, params), header(0x80, encLength)]);
  const eciLength = eciPrefix.length + encLength;
  const tagLength = info.gcm ? 18 : 0; // OCTET STRING of the 16-byte tag
  const version = integer(0);
  const innerLength = version.length + ri.length + header(TAG.SEQUENCE, eciLength).length + eciLength + tagLength;
  const inner = Buffer.concat([header(TAG.SEQUENCE, innerLength), version, ri, header(TAG.SEQUENCE, eciLength), eciPrefix]);
  const typeOid = oid(info.gcm ? OID.authEnvelopedData : OID.envelopedData);
  const explicitLength = inner.length + encLength + tagLength;
  const outerLength = typeOid.length + header(0xa0, explicitLength).length + explicitLength;
  const head = Buffer.concat([header(TAG.SEQUENCE, outerLength), typeOid, header(0xa0, explicitLength), inner]);
  function* chunks(): Generator<Buffer> {
    const cipher = info.gcm ? createCipheriv(info.node as 'aes-256-gcm', cek, iv, { authTagLength: 16 }) : createCipheriv(info.node, cek, iv);
    yield head;
    for (const p of parts) {
      for (let o = 0; o < p.length; o += 1 << 20) yield cipher.update(p.subarray(o, Math.min(p.length, o + (1 << 20))));
    }
    yield cipher.final();
    if (info.gcm) yield octetString((cipher as ReturnType<typeof createCipheriv> & { getAuthTag(): Buffer }).getAuthTag());
  }
  return { chunks: { [Symbol.iterator]: chunks }, length: head.length + encLength + tagLength };
}

/** Decrypts in place: plaintext never runs ahead of the ciphertext consumed, so it overwrites `data`. */
function decryptInto(decipher: ReturnType<typeof createDecipheriv>, data: Buffer): Buffer {
  let pos = 0;
  for (let o = 0; o < data.length; o += 1 << 20) pos += decipher.update(data.subarray(o, Math.min(data.length, o + (1 << 20)))).copy(data, pos);
  const last = decipher.final();
  if (pos + last.length > data.length) return Buffer.concat([data.subarray(0, pos), last]);
  pos += last.copy(data, pos);
  return data.subarray(0, pos);
}

function unwrapKey(ktri: Asn1, own: OwnKey, keyLength: number): Buffer {
  const alg = child(ktri, 2);
  const algOid = oidOf(child(alg, 0));
  const encryptedKey = octets(child(ktri, 3));
  if (algOid === OID.rsaEncryption) return unwrapPkcs1v15(own.privateKey, encryptedKey, keyLength);
  if (algOid === OID.rsaOaep) {
    let hash: string = 'sha1';
    const params = alg.children[1];
    const hashParam = params?.children.find((c) => c.tag === 0xa0);
    if (hashParam) hash = DIGEST_BY_OID.get(oidOf(child(child(hashParam, 0), 0))) ?? 'unsupported';
    return unwrapOaep(own.privateKey, encryptedKey, hash === 'unsupported' ? 'sha256' : hash, keyLength);
  }
  throw new DecryptionError();
}

/**
 * Decrypts EnvelopedData or AuthEnvelopedData with one of our keys. Whatever goes wrong (no
 * recipient for our certificate, bad padding, wrong key, bad ciphertext, bad tag) ends in the same
 * DecryptionError after the same work: an RSA operation and a content decryption.
 */
export function decryptEnveloped(type: string, node: Asn1, keys: OwnKey[]): Buffer {
  if (keys.length === 0) throw new DecryptionError();
  try {
    let i = 1;
    if (node.children[i]?.tag === 0xa0) i++; // originatorInfo
    const recipientInfos = child(node, i++);
    const eci = child(node, i++);
    const info = CIPHER_BY_OID.get(oidOf(child(child(eci, 1), 0)));
    const ktris = recipientInfos.children.filter((r) => r.tag === TAG.SEQUENCE);
    if (!info || ktris.length === 0) throw new DecryptionError();
    if (info.gcm !== (type === OID.authEnvelopedData)) throw new DecryptionError();
    let chosen: { ktri: Asn1; own: OwnKey } | undefined;
    for (const own of keys) {
      const ktri = ktris.find((r) => identifies(child(r, 1), own.certificate));
      if (ktri) {
        chosen = { ktri, own };
        break;
      }
    }
    // No recipient for us: do the same work with the first one, so that it fails the same way.
    const { ktri, own } = chosen ?? { ktri: ktris[0]!, own: keys[0]! };
    const cek = unwrapKey(ktri, own, info.keyLength);
    const params = child(child(eci, 1), 1);
    const encryptedNode = eci.children[2];
    if (!encryptedNode || (encryptedNode.tag !== 0x80 && encryptedNode.tag !== 0xa0)) throw new DecryptionError();
    const encrypted = octets(encryptedNode);
    if (info.gcm) {
      const nonce = octets(child(params, 0));
      const tagLength = params.children[1] ? Number(params.children[1].content.readUIntBE(0, params.children[1].content.length)) : 12;
      let j = i;
      let aad: Buffer | undefined;
      if (node.children[j]?.tag === 0xa1) aad = Buffer.concat([Buffer.from([TAG.SET]), node.children[j++]!.raw.subarray(1)]);
      const mac = octets(child(node, j));
      const decipher = createDecipheriv(info.node as 'aes-256-gcm', cek, nonce, { authTagLength: tagLength });
      decipher.setAuthTag(mac);
      if (aad) decipher.setAAD(aad);
      const out = decryptInto(decipher, encrypted);
      if (!chosen) throw new DecryptionError();
      return out;
    }
    const iv = octets(params);
    const out = decryptInto(createDecipheriv(info.node, cek, iv), encrypted);
    if (!chosen) throw new DecryptionError();
    return out;
  } catch {
    throw new DecryptionError();
  }
}

// ---- CompressedData ----

export function compress(parts: Buffer[]): Buffer {
  const deflated = deflateSync(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  const compressedData = seq(integer(0), algorithm(OID.zlib), seq(oid(OID.data), explicit(0, octetString(deflated))));
  return contentInfo(OID.compressedData, compressedData);
}

export function decompress(node: Asn1, maxOutput: number): Buffer {
  const alg = oidOf(child(child(node, 1), 0));
  if (alg !== OID.zlib) throw new CmsFormatError(`unsupported compression ${alg}`);
  const encap = child(node, 2);
  const data = octets(child(child(encap, 1), 0));
  return inflateSync(data, { maxOutputLength: maxOutput });
}

export function digestOf(digest: DigestName, parts: Buffer[]): Buffer {
  return hashParts(digest, parts);
}
