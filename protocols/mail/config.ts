// Mail channel config shapes: our SMTP listener (STARTTLS required, SMTP AUTH per merchant), a
// merchant's mail account, and the smarthost that carries our notice mails.
import { z } from 'zod';
import { secretRefSchema } from '../secrets.ts';
import { admissionFields } from '../admission.ts';

export const mailListenerSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(2525),
    /** STARTTLS certificate: required, no mail is taken before TLS. */
    tls: z.object({ cert: secretRefSchema, key: secretRefSchema }).strict(),
    /** The name we greet with. */
    name: z.string().min(1).default('tsunagi'),
    maxMessageBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(50 * 1024 * 1024),
    ...admissionFields,
  })
  .strict();
export type MailListenerSettings = z.infer<typeof mailListenerSchema>;

export const mailAccountSchema = z
  .object({
    /** SMTP AUTH user name (default the partner id). */
    user: z.string().min(1).optional(),
    password: secretRefSchema,
    /** Envelope senders this merchant may send from; any other is refused. */
    senders: z.array(z.string().email()).min(1),
  })
  .strict();
export type MailAccount = z.infer<typeof mailAccountSchema>;
export type PartnerMailAccount = { partnerId: string } & MailAccount;

/** Outgoing notice mails. */
export const mailSettingsSchema = z
  .object({
    smarthost: z
      .object({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(587),
        /** implicit TLS (465); otherwise STARTTLS is required unless requireTLS is false */
        secure: z.boolean().default(false),
        requireTLS: z.boolean().default(true),
        user: z.string().min(1).optional(),
        password: secretRefSchema.optional(),
        /** PEM file of the CA of the smarthost's certificate (else the system store). */
        ca: z.string().min(1).optional(),
      })
      .strict(),
    from: z.string().email(),
    /** How often the notifier looks for new files to announce. */
    pollSeconds: z.number().min(0.05).max(3600).default(30),
  })
  .strict();
export type MailSettings = z.infer<typeof mailSettingsSchema>;

/** A partner's notice addresses and which outbound file types get a notice mail. */
export const partnerNoticeSchema = z
  .object({
    to: z.array(z.string().email()).min(1),
    fileTypes: z.array(z.string().regex(/^\d\d$/)).default(['33', '42', '51', '52', '71', '91']),
  })
  .strict();
export type PartnerNoticeSettings = z.infer<typeof partnerNoticeSchema>;
