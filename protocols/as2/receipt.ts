// Judging an MDN the partner returned for a message we sent (sync in the HTTP response, or async on
// our receipt URL): signature with the partner's configured certificates, disposition, and the
// MIC compared in constant time with the digest we kept for the algorithm the MDN names.
import type { Certificate } from './certs.ts';
import { digestFromToken, micEquals, parseReport, type ParsedMdn } from './mdn.ts';
import { contentTypeOf, parseEntity, splitMultipart, type MimeEntity } from './mime.ts';
import { unwrap } from './unwrap.ts';
import type { Mics } from './build.ts';

export type MdnVerdict = { ok: true; mdn: ParsedMdn; duplicate: boolean } | { ok: false; reason: string; mdn?: ParsedMdn };

/** An HTTP message (headers as Node gives them, lower-case) as a MIME entity. */
export function entityFromHttp(headers: Record<string, string | string[] | undefined>, body: Buffer): MimeEntity {
  const pick = (n: string) => {
    const v = headers[n];
    return Array.isArray(v) ? v[0] : v;
  };
  const map = new Map<string, string>();
  for (const n of ['content-type', 'content-transfer-encoding', 'content-disposition']) {
    const v = pick(n);
    if (v !== undefined) map.set(n, v);
  }
  return { headers: map, body, raw: body };
}

export function readMdn(entity: MimeEntity, partnerCerts: Certificate[], requireSigned: boolean): { mdn: ParsedMdn; signed: boolean } {
  const u = unwrap(entity, { keys: [], certs: partnerCerts, maxDecompressedBytes: 1 << 20 });
  if (requireSigned && !u.signed) throw new Error('the MDN is not signed, and a signed MDN was asked for');
  return { mdn: parseReport(u.entity), signed: !!u.signed };
}

export function judgeMdn(entity: MimeEntity, partnerCerts: Certificate[], requireSigned: boolean, mics: Mics, messageId: string): MdnVerdict {
  let mdn: ParsedMdn;
  try {
    mdn = readMdn(entity, partnerCerts, requireSigned).mdn;
  } catch (err) {
    return { ok: false, reason: `invalid MDN: ${(err as Error).message}` };
  }
  if (mdn.originalMessageId && mdn.originalMessageId.trim() !== messageId) return { ok: false, reason: `MDN is for ${mdn.originalMessageId}, not ${messageId}`, mdn };
  const d = mdn.disposition;
  if (d.type !== 'processed') return { ok: false, reason: `partner answered ${mdn.dispositionText}`, mdn };
  const duplicate = d.modifier === 'warning' && /duplicate-document/i.test(d.detail ?? '');
  if (d.modifier && !duplicate) return { ok: false, reason: `partner answered ${mdn.dispositionText}`, mdn };
  if (!mdn.mic) return { ok: false, reason: 'MDN without Received-Content-MIC', mdn };
  const digest = digestFromToken(mdn.mic.token);
  if (!digest) return { ok: false, reason: `MDN names an unknown MIC algorithm '${mdn.mic.token}'`, mdn };
  const expected = mics[digest];
  if (!expected) return { ok: false, reason: `no MIC kept for ${mdn.mic.token}`, mdn };
  if (!micEquals(mdn.mic.value, expected)) return { ok: false, reason: `MIC mismatch (${mdn.mic.token})`, mdn };
  return { ok: true, mdn, duplicate };
}

export { parseEntity };

/** The MIC algorithm an MDN names, read before judging it (to compute a MIC not kept). */
export function mdnMicDigest(entity: MimeEntity): import('./cms.ts').DigestName | undefined {
  try {
    let e = entity;
    const ct = contentTypeOf(e);
    if (ct.type === 'multipart/signed') e = parseEntity(splitMultipart(e.body, ct.params.get('boundary') ?? '')[0]!);
    const token = parseReport(e).mic?.token;
    return token ? digestFromToken(token) : undefined;
  } catch {
    return undefined;
  }
}
