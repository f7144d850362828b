// Builds an outgoing AS2 message once: the MIME entity is assembled from buffers (the payload is
// never copied or re-encoded), signed over exactly those bytes, encrypted chunk by chunk, and the
// MIC digests are computed from the same bytes in one pass.
import { createHash } from 'node:crypto';
import { compress, envelope, type ContentCipher, type DigestName, type KeyTransport } from './cms.ts';
import type { Certificate, OwnKey } from './certs.ts';
import { base64Lines, entityParts, signedEntity, type Entity } from './mdn.ts';
import { quoteIfNeeded } from './mime.ts';

export const MIC_DIGESTS: DigestName[] = ['sha1', 'sha256', 'sha384', 'sha512'];
/** MIC digests (base64) by algorithm; a large plain-bodied message may hold only the ones asked for. */
export type Mics = Partial<Record<DigestName, string>>;

export interface BuildOptions {
  fileName: string;
  contentType: string;
  transferEncoding: 'binary' | 'base64';
  sign?: { key: OwnKey; digest: DigestName };
  encrypt?: { cert: Certificate; cipher: ContentCipher; keyTransport: KeyTransport };
  compress: 'none' | 'before-signing' | 'after-signing';
  /**
   * Compute only these MIC digests when the MIC basis is (headers, payload) so that any other can be
   * recomputed later from the file (`micPrefix` + payload); otherwise all four are computed.
   */
  onlyDigests?: DigestName[];
}

export interface BuiltMessage {
  /** Headers of the outermost entity, which travel as HTTP headers. */
  headers: [string, string][];
  /** Produced as it is consumed when encrypted: iterate once. */
  body: Iterable<Buffer>;
  length: number;
  mics: Mics;
  /** When not every MIC was computed: the bytes before the payload in the MIC basis. */
  micPrefix?: Buffer;
}

export function allMics(parts: Buffer[], digests: DigestName[] = MIC_DIGESTS): Mics {
  const hashes = digests.map((d) => createHash(d));
  for (const p of parts) for (let o = 0; o < p.length; o += 4 << 20) {
    const slice = p.subarray(o, Math.min(p.length, o + (4 << 20)));
    for (const h of hashes) h.update(slice);
  }
  return Object.fromEntries(digests.map((d, i) => [d, hashes[i]!.digest('base64')])) as Mics;
}

function compressedEntity(parts: Buffer[]): Entity {
  return {
    headers: [
      ['Content-Type', 'application/pkcs7-mime; smime-type=compressed-data; name=smime.p7z'],
      ['Content-Transfer-Encoding', 'binary'],
      ['Content-Disposition', 'attachment; filename=smime.p7z'],
    ],
    body: [compress(parts)],
  };
}

export function buildMessage(payload: Buffer, o: BuildOptions): BuiltMessage {
  const payloadEntity: Entity = {
    headers: [
      ['Content-Type', o.contentType],
      ['Content-Transfer-Encoding', o.transferEncoding],
      ['Content-Disposition', `attachment; filename=${quoteIfNeeded(o.fileName)}`],
    ],
    body: [o.transferEncoding === 'base64' ? Buffer.concat([base64Lines(payload), Buffer.from('\r\n')]) : payload],
  };
  let entity = payloadEntity;
  let micBasis: Buffer[] | undefined;
  // Uncompressed and binary: the MIC basis is (payload headers, payload), recomputable from the file.
  const lazy = o.onlyDigests && o.compress === 'none' && o.transferEncoding === 'binary';
  const micPrefix = lazy ? (o.sign || o.encrypt ? entityParts(payloadEntity)[0]! : Buffer.alloc(0)) : undefined;
  const digests = lazy ? [...new Set(o.onlyDigests)] : MIC_DIGESTS;
  if (o.compress === 'before-signing' || (o.compress === 'after-signing' && !o.sign)) {
    if (!o.sign && !o.encrypt) micBasis = entityParts(entity);
    entity = compressedEntity(entityParts(entity));
  }
  let mics: Mics | undefined;
  if (o.sign) {
    const signedParts = entityParts(entity);
    mics = allMics(signedParts, [...new Set([...digests, o.sign.digest])]);
    entity = signedEntity(signedParts, o.sign.key, o.sign.digest, Buffer.from(mics[o.sign.digest]!, 'base64'));
    if (o.compress === 'after-signing') entity = compressedEntity(entityParts(entity));
  }
  if (o.encrypt) {
    const parts = entityParts(entity);
    if (!mics) mics = allMics(micBasis ?? parts, digests);
    const env = envelope(parts, o.encrypt.cert, { cipher: o.encrypt.cipher, keyTransport: o.encrypt.keyTransport });
    const type = o.encrypt.cipher.endsWith('gcm') ? 'authEnveloped-data' : 'enveloped-data';
    return {
      headers: [
        ['Content-Type', `application/pkcs7-mime; smime-type=${type}; name=smime.p7m`],
        ['Content-Transfer-Encoding', 'binary'],
        ['Content-Disposition', 'attachment; filename=smime.p7m'],
      ],
      body: env.chunks,
      length: env.length,
      mics,
      micPrefix,
    };
  }
  mics ??= allMics(micBasis ?? entity.body, digests);
  return { headers: entity.headers, body: entity.body, length: entity.body.reduce((n, b) => n + b.length, 0), mics, micPrefix };
}
