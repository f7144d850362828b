// Config shapes for 全銀TCP/IP. Every point the spec marks as a choice is a per-partner setting here.
// Passwords and TLS keys are secret references (file or environment), never values.
import { z } from 'zod';
import { secretRefSchema } from '../secrets.ts';
import { admissionFields } from '../admission.ts';

const centreCode = z.string().regex(/^[0-9A-Fa-f]{14}$/, '14 hex digits (7 bytes)');
const zenginName = z.string().regex(/^[A-Z0-9]{12}$/, '12 upper-case letters or digits');
const accessKey = z.string().regex(/^[A-Z0-9]{6}$/, '6 upper-case letters or digits');
const fileType = z.string().regex(/^[0-9]{2}$/, 'a two-digit file type (31, 33, ...)');
const port = z.number().int().min(0).max(65535);

export const wrapperSchema = z
  .object({
    /** The optional 8-byte outer wrapper with logical ACKs (off unless agreed). */
    enabled: z.boolean().default(false),
    /** The receiver ACKs after every `ackEvery` data messages; the sender waits for it. */
    ackEvery: z.number().int().min(1).max(15).default(1),
  })
  .strict();

const common = {
  passwordEncoding: z.enum(['ebcdic', 'hex']).default('ebcdic'),
  /** 接続形態区分: PC (0x1_) or host (0x0_). */
  form: z.enum(['pc', 'host']).default('pc'),
  wrapper: wrapperSchema.default({ enabled: false, ackEvery: 1 }),
  /** One EBCDIC character. */
  applicationId: z.string().regex(/^[A-Z0-9]$/).default('0'),
  maxText: z.number().int().min(256).max(32767).default(2048),
  timeoutSeconds: z.number().positive().max(3600).default(30),
};

export const endpointFileSchema = z
  .object({
    zenginName,
    accessKey,
    fileType,
    /** send: we send it to the partner (連絡); receive: we ask the partner for it (照会). */
    direction: z.enum(['send', 'receive']),
    /** Bytes per record as carried (including any line ending of the file's framing). */
    recordLength: z.number().int().min(1).max(32762),
  })
  .strict();

export const zenginEndpointSchema = z
  .object({
    protocol: z.literal('zengin'),
    host: z.string().min(1),
    port: port.default(5020),
    tls: z
      .object({
        ca: secretRefSchema.optional(),
        cert: secretRefSchema.optional(),
        key: secretRefSchema.optional(),
        servername: z.string().optional(),
      })
      .strict()
      .optional(),
    /** Our centre code (当方). */
    ownCode: centreCode,
    /** The partner's centre code (相手). */
    partnerCode: centreCode,
    password: secretRefSchema,
    ...common,
    /** After a broken connection, a push reconnects and sends 再送要求 this many times. */
    restartAttempts: z.number().int().min(0).max(20).default(3),
    restartDelayMs: z.number().int().min(0).max(600_000).default(1000),
    files: z.array(endpointFileSchema).default([]),
  })
  .strict();
export type ZenginEndpoint = z.infer<typeof zenginEndpointSchema>;
export type ZenginEndpointInput = z.input<typeof zenginEndpointSchema>;

export const zenginListenerSchema = z
  .object({
    /** Loopback unless set: a centre chooses to listen on a network address. */
    host: z.string().default('127.0.0.1'),
    /** Plain TCP port; null for a TLS-only centre. */
    port: port.nullable().default(5020),
    tlsPort: port.optional(),
    tls: z
      .object({
        cert: secretRefSchema,
        key: secretRefSchema,
        ca: secretRefSchema.optional(),
        requireClientCert: z.boolean().default(false),
      })
      .strict()
      .optional(),
    /** Our centre code as secondary (the 相手センター確認コード callers must send). */
    ownCode: centreCode,
    inactivitySeconds: z.number().positive().max(3600).default(30),
    /** Logged-in sessions; connections not yet logged in are capped apart (admissionFields). */
    maxSessions: z.number().int().min(1).max(10_000).default(64),
    ...admissionFields,
  })
  .strict()
  .refine((s) => s.tlsPort === undefined || s.tls !== undefined, { message: 'tlsPort needs tls settings', path: ['tls'] })
  .refine((s) => s.port !== null || s.tlsPort !== undefined, { message: 'set port, tlsPort or both', path: ['port'] });
export type ZenginListenerSettings = z.infer<typeof zenginListenerSchema>;
export type ZenginListenerInput = z.input<typeof zenginListenerSchema>;

export const accountFileSchema = z
  .object({
    zenginName,
    accessKey,
    fileType,
    /** send: the partner sends it to us (lands in its inbound); receive: the partner asks for it (from its outbound). */
    direction: z.enum(['send', 'receive']),
    /** Bytes per record as carried; defaults to the file type's (200 for 31/32/33/71/81, else 120). */
    recordLength: z.number().int().min(1).max(32762).optional(),
  })
  .strict();

export const zenginAccountSchema = z
  .object({
    partnerCode: centreCode,
    password: secretRefSchema,
    ...common,
    timeoutSeconds: z.number().positive().max(3600).optional(),
    /** sha256 of the client certificate (hex, colons allowed); only a TLS session with it may log in. */
    clientCertFingerprint: z
      .string()
      .regex(/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/)
      .optional(),
    /** Or the certificate subject's CN. */
    clientCertSubject: z.string().min(1).optional(),
    /** Only over the TLS port: a 開局要求 on the plain port is refused (0x99), whatever the password. */
    requireTls: z.boolean().default(false),
    /** Answer モード変更要求 (else 0x17 mode change refused). */
    allowModeChange: z.boolean().default(false),
    /** Service hours in Asia/Tokyo, 'HH:MM'; outside them 開局要求 gets 0x13. */
    serviceHours: z
      .object({ from: z.string().regex(/^\d\d:\d\d$/), to: z.string().regex(/^\d\d:\d\d$/) })
      .strict()
      .optional(),
    files: z.array(accountFileSchema).min(1),
  })
  .strict();
export type ZenginAccount = z.infer<typeof zenginAccountSchema>;
export type ZenginAccountInput = z.input<typeof zenginAccountSchema>;
export type ZenginAccountFile = z.infer<typeof accountFileSchema>;

/** Record lengths of the standard file types (../shared/specs/formats.md). */
export function defaultRecordLength(type: string): number {
  return ['31', '32', '33', '71', '81'].includes(type) ? 200 : 120;
}
