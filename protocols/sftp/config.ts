// SFTP configuration shapes: our client's endpoint at a partner, our listener, and a partner's
// account on our listener. Secrets (keys, passwords) are references, never values.
import { z } from 'zod';
import { secretRefSchema } from '../secrets.ts';
import { admissionFields } from '../admission.ts';
import { refusedKeyType } from './authorized-keys.ts';

const seconds = (fallback: number) => z.number().int().positive().default(fallback);

/** A partner's SFTP server we push to / pull from. */
export const sftpEndpointSchema = z
  .object({
    protocol: z.literal('sftp'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    user: z.string().min(1),
    /** Remote folder we push into. */
    path: z.string().min(1),
    /** Remote folder we pull from (defaults to `path`). */
    pullPath: z.string().min(1).optional(),
    privateKey: secretRefSchema,
    passphrase: secretRefSchema.optional(),
    /** known_hosts file holding the partner's host key: required, we never trust a host blindly. */
    knownHosts: z.string().min(1),
    timeoutSeconds: seconds(60),
    keepaliveSeconds: seconds(15),
  })
  .strict();
export type SftpEndpoint = z.infer<typeof sftpEndpointSchema>;

/** Our SFTP server for partners. */
export const sftpListenerSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(2222),
    hostKey: secretRefSchema,
    idleTimeoutSeconds: seconds(300),
    maxSessionsPerPartner: z.number().int().positive().default(4),
    ...admissionFields,
  })
  .strict();
export type SftpListenerSettings = z.infer<typeof sftpListenerSchema>;

/** A partner's account on our SFTP server. */
export const sftpAccountSchema = z
  .object({
    /** Login name; defaults to the partner id. */
    user: z.string().min(1).optional(),
    /** authorized_keys lines ("ssh-ed25519 AAAA... comment"). */
    publicKeys: z
      .array(
        z
          .string()
          .min(1)
          .superRefine((line, ctx) => {
            const problem = refusedKeyType(line);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          }),
      )
      .default([]),
    /** Only honoured when allowPassword is true. */
    password: secretRefSchema.optional(),
    allowPassword: z.boolean().default(false),
  })
  .strict()
  .refine((a) => a.publicKeys.length > 0 || (a.allowPassword && a.password), {
    message: 'an SFTP account needs publicKeys, or allowPassword with a password',
  });
export type SftpAccount = z.infer<typeof sftpAccountSchema>;
export type PartnerSftpAccount = { partnerId: string } & SftpAccount;
