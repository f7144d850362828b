// Message Disposition Notifications (RFC 3798 / 8098 as RFC 4130 uses them), the
// Disposition-Notification-Options a sender asks with, MIC algorithm names, and multipart/signed.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { signDetached, type DigestName } from './cms.ts';
import type { OwnKey } from './certs.ts';
import { contentTypeOf, decodedBody, headerBlock, parseEntity, parseHeaderBlock, splitMultipart, type MimeEntity } from './mime.ts';

/** sha1, SHA1, sha-1, sha256, sha-256 ... -> our digest name; md5 and unknown names -> undefined. */
export function digestFromToken(token: string): DigestName | undefined {
  const t = token.trim().toLowerCase().replace(/-/g, '');
  return t === 'sha1' || t === 'sha256' || t === 'sha384' || t === 'sha512' ? t : undefined;
}

/** Our spelling (RFC 5751) of a digest in micalg and Received-Content-MIC. */
export function micToken(digest: DigestName): string {
  return { sha1: 'sha-1', sha256: 'sha-256', sha384: 'sha-384', sha512: 'sha-512' }[digest];
}

export interface NotificationOptions {
  signedReceipt: boolean;
  signedReceiptRequired: boolean;
  micAlgs: string[];
  micAlgRequired: boolean;
}

/**
 * Lenient: any case, any spacing (or none) after commas and semicolons, `required` or `optional`,
 * RFC 3851 (sha1) and RFC 5751 (sha-256) names, parameters in any order.
 */
export function parseNotificationOptions(value: string | undefined): NotificationOptions {
  const out: NotificationOptions = { signedReceipt: false, signedReceiptRequired: false, micAlgs: [], micAlgRequired: false };
  if (!value) return out;
  for (const param of value.split(';')) {
    const eq = param.indexOf('=');
    if (eq < 0) continue;
    const name = param.slice(0, eq).trim().toLowerCase();
    const values = param
      .slice(eq + 1)
      .split(',')
      .map((v) => v.trim().replace(/^"|"$/g, ''))
      .filter(Boolean);
    const importance = values[0]?.toLowerCase();
    const rest = importance === 'required' || importance === 'optional' ? values.slice(1) : values;
    if (name === 'signed-receipt-protocol') {
      out.signedReceipt = rest.some((v) => /^(pkcs7-signature|application\/pkcs7-signature)$/i.test(v));
      out.signedReceiptRequired = importance === 'required';
    } else if (name === 'signed-receipt-micalg') {
      out.micAlgs = rest;
      out.micAlgRequired = importance === 'required';
    }
  }
  return out;
}

export type MicChoice = { digest: DigestName; token: string } | { unsupported: true };

/** The first requested algorithm we support; none asked: the signer's digest or sha-256. */
export function chooseMic(options: NotificationOptions, fallback: DigestName = 'sha256'): MicChoice {
  for (const token of options.micAlgs) {
    const digest = digestFromToken(token);
    if (digest) return { digest, token };
  }
  if (options.micAlgs.length > 0 && options.micAlgRequired) return { unsupported: true };
  return { digest: fallback, token: micToken(fallback) };
}

export function boundary(): string {
  return `----=_Part_tsunagi_${randomBytes(12).toString('hex')}`;
}

export interface Entity {
  headers: [string, string][];
  body: Buffer[];
}

export function entityParts(e: Entity): Buffer[] {
  return [headerBlock(e.headers), ...e.body];
}

export function base64Lines(data: Buffer): Buffer {
  const b64 = data.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return Buffer.from(lines.join('\r\n'), 'ascii');
}

/**
 * multipart/signed around an entity given as parts (headers, blank line, body). The signed bytes
 * are exactly `parts`; `digest` may be precomputed over them.
 */
export function signedEntity(parts: Buffer[], own: OwnKey, digest: DigestName, precomputed?: Buffer): Entity {
  const b = boundary();
  const signature = signDetached(parts, own, digest, new Date(), precomputed);
  return {
    headers: [['Content-Type', `multipart/signed; protocol="application/pkcs7-signature"; micalg=${micToken(digest)}; boundary="${b}"`]],
    body: [
      Buffer.from(`--${b}\r\n`),
      ...parts,
      Buffer.from(
        `\r\n--${b}\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7s\r\n\r\n`,
      ),
      base64Lines(signature),
      Buffer.from(`\r\n--${b}--\r\n`),
    ],
  };
}

export interface MdnFields {
  reportingUA: string;
  originalRecipient?: string;
  finalRecipient: string;
  originalMessageId: string;
  /** e.g. `processed`, `processed/Error: decryption-failed`, `failed/Failure: unknown-trading-partner` */
  disposition: string;
  mic?: { value: string; token: string };
  text: string;
}

/** The multipart/report entity of an MDN. */
export function buildReport(f: MdnFields): Entity {
  const b = boundary();
  const fields = [
    `Reporting-UA: ${f.reportingUA}`,
    ...(f.originalRecipient ? [`Original-Recipient: rfc822; ${f.originalRecipient}`] : []),
    `Final-Recipient: rfc822; ${f.finalRecipient}`,
    `Original-Message-ID: ${f.originalMessageId}`,
    `Disposition: automatic-action/MDN-sent-automatically; ${f.disposition}`,
    ...(f.mic ? [`Received-Content-MIC: ${f.mic.value}, ${f.mic.token}`] : []),
  ];
  const body =
    `--${b}\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${f.text}\r\n` +
    `--${b}\r\nContent-Type: message/disposition-notification\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${fields.join('\r\n')}\r\n\r\n` +
    `--${b}--\r\n`;
  return { headers: [['Content-Type', `multipart/report; report-type=disposition-notification; boundary="${b}"`]], body: [Buffer.from(body, 'latin1')] };
}

export interface ParsedDisposition {
  /** processed | failed | ... (lower case) */
  type: string;
  /** error | warning | failure (lower case), when there is a modifier */
  modifier?: string;
  /** the modifier's text: decryption-failed, duplicate-document, ... */
  detail?: string;
}

export function parseDisposition(value: string): ParsedDisposition {
  const semi = value.indexOf(';');
  const rest = (semi >= 0 ? value.slice(semi + 1) : value).trim();
  const slash = rest.indexOf('/');
  if (slash < 0) return { type: rest.toLowerCase() };
  const type = rest.slice(0, slash).trim().toLowerCase();
  const mod = rest.slice(slash + 1);
  const colon = mod.indexOf(':');
  return colon < 0 ? { type, modifier: mod.trim().toLowerCase() } : { type, modifier: mod.slice(0, colon).trim().toLowerCase(), detail: mod.slice(colon + 1).trim() };
}

export interface ParsedMdn {
  originalMessageId?: string;
  disposition: ParsedDisposition;
  dispositionText: string;
  mic?: { value: string; token: string };
  text: string;
}

/** Reads a multipart/report (already unwrapped from any multipart/signed). */
export function parseReport(entity: MimeEntity): ParsedMdn {
  const ct = contentTypeOf(entity);
  if (ct.type !== 'multipart/report') throw new Error(`an MDN must be multipart/report, not ${ct.type}`);
  const parts = splitMultipart(entity.body, ct.params.get('boundary') ?? '').map((p) => parseEntity(p));
  const notification = parts.find((p) => contentTypeOf(p).type === 'message/disposition-notification');
  if (!notification) throw new Error('MDN without a message/disposition-notification part');
  const fields = parseHeaderBlock(decodedBody(notification).toString('latin1'));
  const dispositionText = fields.get('disposition');
  if (!dispositionText) throw new Error('MDN without a Disposition');
  const micField = fields.get('received-content-mic');
  let mic: ParsedMdn['mic'];
  if (micField) {
    const comma = micField.lastIndexOf(',');
    mic = comma < 0 ? { value: micField.trim(), token: '' } : { value: micField.slice(0, comma).trim(), token: micField.slice(comma + 1).trim() };
  }
  const textPart = parts.find((p) => contentTypeOf(p).type === 'text/plain');
  return {
    originalMessageId: fields.get('original-message-id') ?? fields.get('message-id'),
    disposition: parseDisposition(dispositionText),
    dispositionText,
    mic,
    text: textPart ? decodedBody(textPart).toString('latin1').trim() : '',
  };
}

/** Constant-time comparison of two base64 MICs (decoded). */
export function micEquals(a: string, b: string): boolean {
  const x = Buffer.from(a.trim(), 'base64');
  const y = Buffer.from(b.trim(), 'base64');
  if (x.length === 0 || x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}
