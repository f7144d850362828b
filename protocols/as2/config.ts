// Config shapes for AS2: the partner's `as2` section (ids, keys, certificates, what we require of
// what it sends), its `delivery: { protocol: as2 }` endpoint (how we send), and `listeners.as2`.
// Keys are secret references; certificates are files.
import { z } from 'zod';
import { admissionFields } from '../admission.ts';
import { readSecret, secretRefSchema } from '../secrets.ts';
import { expiryProblems, loadOwnKey, parseCertificates, type Certificate, type ExpiryProblem, type OwnKey } from './certs.ts';

/** RFC 4130: 1 to 128 printable ASCII characters. */
const as2Id = z.string().regex(/^[\x20-\x7e]{1,128}$/, '1 to 128 printable ASCII characters');
const port = z.number().int().min(0).max(65535);

const keyPairSchema = z.object({ cert: secretRefSchema, key: secretRefSchema }).strict();

export const as2AccountSchema = z
  .object({
    /** The partner's AS2 id (its AS2-From to us, our AS2-To to it). */
    id: as2Id,
    /** Our AS2 id in this partnership. */
    ourId: as2Id,
    /** Our keys and certificates: the first valid one signs; all are tried to decrypt (rollover). */
    keys: z.array(keyPairSchema).min(1).max(2),
    /** The partner's certificates: all verify; the first valid one encrypts (rollover). */
    partnerCertificates: z.array(secretRefSchema).min(1).max(2),
    /** What the partner must do to what it sends us. */
    requireSigned: z.boolean().default(true),
    requireEncrypted: z.boolean().default(false),
  })
  .strict();
export type As2Account = z.infer<typeof as2AccountSchema>;

export const as2EndpointSchema = z
  .object({
    protocol: z.literal('as2'),
    url: z.string().regex(/^https?:\/\/.+/, 'an http:// or https:// URL'),
    sign: z.enum(['none', 'sha1', 'sha256', 'sha384', 'sha512']).default('sha256'),
    encrypt: z.enum(['none', 'aes128-cbc', 'aes192-cbc', 'aes256-cbc', 'aes128-gcm', 'aes192-gcm', 'aes256-gcm', 'des-ede3-cbc']).default('aes256-cbc'),
    keyTransport: z.enum(['rsa-pkcs1', 'rsa-oaep-sha256']).default('rsa-pkcs1'),
    compress: z.enum(['none', 'before-signing', 'after-signing']).default('none'),
    mdn: z.enum(['none', 'sync', 'async']).default('sync'),
    signedMdn: z.boolean().default(true),
    /** The MIC algorithm we ask for (signed-receipt-micalg). */
    micAlg: z.enum(['sha-1', 'sha-256', 'sha-384', 'sha-512']).default('sha-256'),
    /** Our receipt URL for async MDNs (the partner POSTs there: our listener's receiptPath). */
    receiptUrl: z.string().regex(/^https?:\/\/.+/, 'an http:// or https:// URL').optional(),
    contentType: z.string().regex(/^[\w.+-]+\/[\w.+-]+$/).default('application/octet-stream'),
    transferEncoding: z.enum(['binary', 'base64']).default('binary'),
    framing: z.enum(['content-length', 'chunked']).default('content-length'),
    subject: z.string().max(200).default('tsunagi file transfer'),
    /** Where MDNs are "sent" in Disposition-Notification-To (a mail address or our receipt URL). */
    notificationTo: z.string().max(200).optional(),
    tls: z
      .object({
        ca: secretRefSchema.optional(),
        cert: secretRefSchema.optional(),
        key: secretRefSchema.optional(),
        rejectUnauthorized: z.boolean().default(true),
        servername: z.string().optional(),
      })
      .strict()
      .optional(),
    timeoutSeconds: z.number().positive().max(3600).default(60),
    /** How long a push waits for an async MDN before the attempt counts as failed (resent later). */
    mdnTimeoutSeconds: z.number().positive().max(3600).default(300),
    /** Resend after a missing async MDN under a new Message-ID (default: the same one). */
    newMessageIdOnResend: z.boolean().default(false),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.mdn === 'async' && !d.receiptUrl) ctx.addIssue({ code: 'custom', path: ['receiptUrl'], message: 'an async MDN needs our receiptUrl' });
  });
export type As2Endpoint = z.infer<typeof as2EndpointSchema>;

export const as2ListenerSchema = z
  .object({
    host: z.string().default('0.0.0.0'),
    port: port.default(4080),
    path: z.string().startsWith('/').default('/as2'),
    /** Where partners POST async MDNs for what we sent. */
    receiptPath: z.string().startsWith('/').default('/as2/mdn'),
    tls: z
      .object({
        cert: secretRefSchema,
        key: secretRefSchema,
        ca: secretRefSchema.optional(),
        /** Ask for a client certificate; with requireClientCert, refuse connections without a valid one. */
        requestClientCert: z.boolean().default(false),
        requireClientCert: z.boolean().default(false),
      })
      .strict()
      .optional(),
    maxBodyBytes: z.number().int().min(1024).max(2 ** 31 - 1).default(512 * 1024 * 1024),
    maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(32 * 1024),
    /** A request must arrive whole within this time (slow clients are cut off). */
    requestTimeoutSeconds: z.number().positive().max(3600).default(300),
    headersTimeoutSeconds: z.number().positive().max(600).default(20),
    /** A body that stops arriving for this long is cut off (a sender signs the body, so until it is
     * whole nobody is known: a stalled one must not hold a connection for the whole request time). */
    bodyIdleSeconds: z.number().positive().max(600).default(30),
    /** Async MDNs we owe: attempts and the pause between them. */
    mdnAttempts: z.number().int().min(1).max(100).default(10),
    mdnRetrySeconds: z.number().positive().max(86400).default(30),
    /** The host part of our Message-IDs. */
    messageIdHost: z.string().regex(/^[A-Za-z0-9.-]+$/).default('tsunagi.local'),
    /**
     * The admission gate every listener has (protocols/admission.ts). AS2 has no login: a
     * connection counts as "not logged in" until its request headers have arrived.
     */
    ...admissionFields,
    /** A partner may post several messages at once. */
    maxUnauthenticatedPerAddress: z.number().int().min(1).max(100_000).default(16),
  })
  .strict();
export type As2ListenerConfig = z.infer<typeof as2ListenerSchema>;

/** A partnership with its keys and certificates loaded. */
export interface As2Partnership {
  partnerId: string;
  account: As2Account;
  keys: OwnKey[];
  partnerCerts: Certificate[];
}

export function loadPartnership(partnerId: string, account: As2Account): As2Partnership {
  const keys = account.keys.map((k, i) => {
    try {
      return loadOwnKey(readSecret(k.cert, `partner ${partnerId} as2.keys[${i}].cert`), readSecret(k.key, `partner ${partnerId} as2.keys[${i}].key`));
    } catch (err) {
      throw new Error(`partner ${partnerId} as2.keys[${i}]: ${(err as Error).message}`);
    }
  });
  const partnerCerts = account.partnerCertificates.flatMap((ref, i) => {
    const certs = parseCertificates(readSecret(ref, `partner ${partnerId} as2.partnerCertificates[${i}]`));
    if (certs.length === 0) throw new Error(`partner ${partnerId} as2.partnerCertificates[${i}]: no certificate found`);
    return certs;
  });
  return { partnerId, account, keys, partnerCerts };
}

/** The key that signs and the certificate that encrypts now: the first currently valid one. */
export function activeKey(p: As2Partnership, now = Date.now()): OwnKey {
  return p.keys.find((k) => k.certificate.notBefore <= now && now <= k.certificate.notAfter) ?? p.keys[0]!;
}
export function activePartnerCert(p: As2Partnership, now = Date.now()): Certificate {
  return p.partnerCerts.find((c) => c.notBefore <= now && now <= c.notAfter) ?? p.partnerCerts[0]!;
}

/** check-config: every certificate of a partnership, expired (error) or expiring within 30 days (warning). */
export function partnershipCertificateProblems(partnerId: string, account: As2Account, now = Date.now()): ExpiryProblem[] {
  const problems: ExpiryProblem[] = [];
  let p: As2Partnership;
  try {
    p = loadPartnership(partnerId, account);
  } catch (err) {
    return [{ level: 'error', message: (err as Error).message }];
  }
  p.keys.forEach((k, i) => problems.push(...expiryProblems(k.certificate, `partners.${partnerId}.as2.keys[${i}]`, now)));
  p.partnerCerts.forEach((c, i) => problems.push(...expiryProblems(c, `partners.${partnerId}.as2.partnerCertificates[${i}]`, now)));
  return problems;
}
