// FTP/FTPS configuration shapes: our client's endpoint at a partner, our listener, and a partner's
// account on our listener. Explicit FTPS is the default everywhere; plain FTP is opt-in per partner.
import { z } from 'zod';
import { secretRefSchema } from '../secrets.ts';
import { admissionFields } from '../admission.ts';

/** A partner's FTP server we push to / pull from. */
export const ftpEndpointSchema = z
  .object({
    protocol: z.literal('ftp'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(21),
    user: z.string().min(1),
    password: secretRefSchema,
    /** explicit = AUTH TLS on the control connection and PROT P for data; none = plain FTP. */
    secure: z.enum(['explicit', 'none']).default('explicit'),
    /** PEM file of the CA that signed the partner's certificate (else the system store). */
    ca: z.string().min(1).optional(),
    rejectUnauthorized: z.boolean().default(true),
    path: z.string().min(1),
    pullPath: z.string().min(1).optional(),
    timeoutSeconds: z.number().int().positive().default(60),
  })
  .strict();
export type FtpEndpoint = z.infer<typeof ftpEndpointSchema>;

/** Our FTP server for partners. */
export const ftpListenerSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(2121),
    /** Address announced in PASV replies (defaults to host). */
    pasvHost: z.string().min(1).optional(),
    pasvMin: z.number().int().min(1024).max(65535).default(30000),
    pasvMax: z.number().int().min(1024).max(65535).default(30099),
    tls: z.object({ cert: secretRefSchema, key: secretRefSchema }).strict().optional(),
    idleTimeoutSeconds: z.number().int().positive().default(300),
    maxSessionsPerPartner: z.number().int().positive().default(4),
    ...admissionFields,
  })
  .strict()
  .refine((l) => l.pasvMin <= l.pasvMax, { message: 'pasvMin must not exceed pasvMax', path: ['pasvMax'] });
export type FtpListenerSettings = z.infer<typeof ftpListenerSchema>;

/** A partner's account on our FTP server. */
export const ftpAccountSchema = z
  .object({
    user: z.string().min(1).optional(),
    password: secretRefSchema,
    /** true lets this partner log in without TLS (plain FTP); false (default) requires explicit FTPS. */
    plain: z.boolean().default(false),
  })
  .strict();
export type FtpAccount = z.infer<typeof ftpAccountSchema>;
export type PartnerFtpAccount = { partnerId: string } & FtpAccount;
