// Takes a received AS2 entity apart, layer by layer, in whatever order the sender stacked them
// (encryption, signing, compression before or after signing), over the exact received bytes.
import { CmsFormatError, decompress, decryptEnveloped, DecryptionError, OID, parseContentInfo, SignatureError, verifySignedData, type DigestName } from './cms.ts';
import type { Certificate, OwnKey } from './certs.ts';
import { contentTypeOf, decodedBody, parseEntity, splitMultipart, type MimeEntity } from './mime.ts';

export const AS2_ERRORS = [
  'decryption-failed',
  'authentication-failed',
  'integrity-check-failed',
  'insufficient-message-security',
  'decompression-failed',
  'unexpected-processing-error',
] as const;
export type As2ErrorCode = (typeof AS2_ERRORS)[number];

export class As2ProcessingError extends Error {
  constructor(
    readonly code: As2ErrorCode,
    /** For our log only; never sent to the partner for decryption failures. */
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export interface Unwrapped {
  /** The innermost entity: the payload with its headers. */
  entity: MimeEntity;
  signed?: { digest: DigestName; signer: Certificate; contentDigest?: Buffer };
  encrypted: boolean;
  compressed: boolean;
  /** The bytes the MIC is computed over (see the spec's "MIC" rule). */
  micBasis: Buffer;
}

export interface UnwrapKeys {
  /** Ours, for decryption (two during a rollover). */
  keys: OwnKey[];
  /** The partner's, for signatures (two during a rollover). */
  certs: Certificate[];
  maxDecompressedBytes: number;
}

function pkcs7Der(entity: MimeEntity): Buffer {
  const cte = entity.headers.get('content-transfer-encoding');
  if (!cte && entity.body[0] !== 0x30) return Buffer.from(entity.body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  return decodedBody(entity);
}

const SMIME_TYPES = new Set(['application/pkcs7-mime', 'application/x-pkcs7-mime']);
const SIGNATURE_TYPES = new Set(['application/pkcs7-signature', 'application/x-pkcs7-signature']);

export function unwrap(top: MimeEntity, k: UnwrapKeys): Unwrapped {
  let entity = top;
  let signed: Unwrapped['signed'];
  let signatureBasis: Buffer | undefined;
  let decryptedBasis: Buffer | undefined;
  let compressedBasis: Buffer | undefined;
  let encrypted = false;
  let compressed = false;
  for (let depth = 0; depth < 8; depth++) {
    const ct = contentTypeOf(entity);
    if (SMIME_TYPES.has(ct.type)) {
      const smimeType = (ct.params.get('smime-type') ?? '').toLowerCase();
      let info;
      try {
        info = parseContentInfo(pkcs7Der(entity));
      } catch (err) {
        if (smimeType === 'compressed-data') throw new As2ProcessingError('decompression-failed', (err as Error).message);
        if (smimeType === 'signed-data') throw new As2ProcessingError('integrity-check-failed', (err as Error).message);
        throw new As2ProcessingError('decryption-failed', (err as Error).message);
      }
      if (info.type === OID.envelopedData || info.type === OID.authEnvelopedData) {
        let plain: Buffer;
        try {
          plain = decryptEnveloped(info.type, info.content, k.keys);
          entity = parseEntity(plain);
        } catch {
          throw new As2ProcessingError('decryption-failed', 'cannot decrypt');
        }
        decryptedBasis ??= plain;
        encrypted = true;
      } else if (info.type === OID.compressedData) {
        let out: Buffer;
        try {
          out = decompress(info.content, k.maxDecompressedBytes);
          entity = parseEntity(out);
        } catch (err) {
          throw new As2ProcessingError('decompression-failed', (err as Error).message);
        }
        compressedBasis ??= out;
        compressed = true;
      } else if (info.type === OID.signedData) {
        const v = verifyOrThrow(() => verifySignedData(info.content, undefined, k.certs));
        if (!v.content) throw new As2ProcessingError('integrity-check-failed', 'signed-data without content');
        if (!signed) {
          signed = { digest: v.digest, signer: v.signer, contentDigest: v.contentDigest };
          signatureBasis = v.content;
        }
        entity = parseEntityOr(v.content, 'integrity-check-failed');
      } else {
        throw new As2ProcessingError('unexpected-processing-error', `unsupported CMS content ${info.type}`);
      }
      continue;
    }
    if (ct.type === 'multipart/signed') {
      let parts: Buffer[];
      try {
        parts = splitMultipart(entity.body, ct.params.get('boundary') ?? '');
      } catch (err) {
        throw new As2ProcessingError('integrity-check-failed', (err as Error).message);
      }
      if (parts.length < 2) throw new As2ProcessingError('integrity-check-failed', 'multipart/signed needs two parts');
      const first = parts[0]!;
      const sigEntity = parseEntityOr(parts[1]!, 'integrity-check-failed');
      if (!SIGNATURE_TYPES.has(contentTypeOf(sigEntity).type)) throw new As2ProcessingError('integrity-check-failed', 'the second part is not a pkcs7-signature');
      const v = verifyOrThrow(() => {
        const info = parseContentInfo(pkcs7Der(sigEntity));
        if (info.type !== OID.signedData) throw new CmsFormatError('signature is not SignedData');
        return verifySignedData(info.content, first, k.certs);
      });
      if (!signed) {
        signed = { digest: v.digest, signer: v.signer, contentDigest: v.contentDigest };
        signatureBasis = first;
      }
      entity = parseEntityOr(first, 'integrity-check-failed');
      continue;
    }
    break;
  }
  return { entity, signed, encrypted, compressed, micBasis: signatureBasis ?? decryptedBasis ?? compressedBasis ?? top.body };
}

function parseEntityOr(raw: Buffer, code: As2ErrorCode): MimeEntity {
  try {
    return parseEntity(raw);
  } catch (err) {
    throw new As2ProcessingError(code, (err as Error).message);
  }
}

function verifyOrThrow<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SignatureError) throw new As2ProcessingError(err.kind === 'integrity' ? 'integrity-check-failed' : 'authentication-failed', err.message);
    if (err instanceof DecryptionError) throw new As2ProcessingError('decryption-failed', 'cannot decrypt');
    throw new As2ProcessingError('integrity-check-failed', (err as Error).message);
  }
}
