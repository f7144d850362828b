// Config shapes of the web listener (merchant portal, operator console, /metrics, /healthz) and of a
// partner's portal settings. They live in jobs/ because the config does; web/ reads them.
import { z } from 'zod';
import { secretRefSchema } from '../protocols/secrets.ts';
import { admissionFields } from '../protocols/admission.ts';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export const webListenerSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8443),
    /** HTTPS; without it the portal speaks plain HTTP, which is refused off loopback unless allowPlainHttp. */
    tls: z.object({ cert: secretRefSchema, key: secretRefSchema }).strict().optional(),
    /** Plain HTTP on a non-loopback address (behind a TLS-terminating proxy, say). */
    allowPlainHttp: z.boolean().default(false),
    /** The address merchants reach the portal at, for links in notice mails (default from host and port). */
    publicUrl: z.string().url().optional(),
    sessionMinutes: z.number().int().min(1).max(24 * 60).default(30),
    /** A connection that sends nothing for this long is closed, in the middle of a request too (an
     * upload keeps sending; a stalled body must not hold a connection: Fastify has no limit of its own). */
    idleTimeoutSeconds: z.number().positive().max(3600).default(60),
    /**
     * The admission gate and login-failure lockout every listener has (protocols/admission.ts):
     * here a connection counts as "not logged in" until it has sent its first whole request, and
     * failures of the login form and the TOTP step count per user name and per address.
     */
    ...admissionFields,
    /** A browser opens several connections at once before its first request: more than a protocol client. */
    maxUnauthenticatedPerAddress: z.number().int().min(1).max(100_000).default(16),
  })
  .strict()
  .superRefine((l, ctx) => {
    if (!l.tls && !l.allowPlainHttp && !LOOPBACK.has(l.host))
      ctx.addIssue({ code: 'custom', path: ['tls'], message: `plain HTTP on ${l.host} is refused: give tls { cert, key }, listen on 127.0.0.1, or set allowPlainHttp: true` });
  });
export type WebListenerSettings = z.infer<typeof webListenerSchema>;

/** A partner's portal settings. */
export const partnerWebSchema = z
  .object({
    /** TOTP second factor for this partner's users (operators always need it). */
    totp: z.enum(['required', 'optional']).default('optional'),
  })
  .strict();
export type PartnerWebSettings = z.infer<typeof partnerWebSchema>;

export function portalUrl(l: WebListenerSettings, boundPort = l.port): string {
  if (l.publicUrl) return l.publicUrl.replace(/\/$/, '');
  const host = l.host === '0.0.0.0' || l.host === '::' ? '127.0.0.1' : l.host;
  return `${l.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
}
