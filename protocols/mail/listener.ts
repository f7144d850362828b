// The mail channel (Web-JTRANS): an SMTP listener that takes a merchant's sales or validity file as
// an attachment and lands it in the merchant's inbound folder through the spool's landing. STARTTLS
// is required before AUTH and before MAIL; AUTH is per merchant; the envelope sender must be one of
// the merchant's configured addresses. Anything else is refused with an SMTP error.
import { createHash, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from 'smtp-server';
import { simpleParser } from 'mailparser';
import type { ListenerContext, ProtocolListener } from '../contract.ts';
import { readSecret } from '../secrets.ts';
import { AuditWriteFailed, assertSafeFileName, landFile, LandingRefused, UnsafeNameError } from '../../spool/landing.ts';
import { displayName } from '../../spool/names.ts';
import type { AuditEvent } from '../../spool/ledger/index.ts';
import { recordUpload, type UploadRow } from '../../spool/ledger/uploads.ts';
import { createAuditTrail } from '../audit-trail.ts';
import { AdmissionGate, normaliseAddress, type Ticket } from '../admission.ts';
import { LoginFailures, sleep } from '../login-failures.ts';
import { isTemporaryName } from '../../spool/tree.ts';
import type { MailListenerSettings, PartnerMailAccount } from './config.ts';

export interface MailListenerOptions {
  /** Where merchants follow their upload (the portal's base URL), for the 250 reply. */
  portalUrl?: string;
}

function smtpError(code: number, message: string): Refusal {
  return Object.assign(new Error(message), { responseCode: code });
}

const digest = (b: Buffer | string) => createHash('sha256').update(b).digest();

/** A refusal of the message as a whole (550), with what the audit row should say, when anything. */
type Refusal = Error & { responseCode: number; auditDetail?: string };

/**
 * The files attached to a message (parsed from the partner's bytes), each with a name that may
 * land; anything else is a 550 refusal. mailparser's own errors on broken MIME are refusals too.
 */
export async function attachmentsOf(raw: Buffer): Promise<{ name: string; content: Buffer }[]> {
  let parsed;
  try {
    parsed = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
  } catch (err) {
    throw smtpError(550, `Message could not be read as MIME: ${(err as Error).message.slice(0, 100)}`);
  }
  const files = parsed.attachments.filter((a) => a.contentDisposition === 'attachment' || a.filename);
  if (files.length === 0) throw smtpError(550, 'No file attached: attach a sales (31), validity (41) or gift (61) file');
  return files.map((att) => {
    const name = path.basename(att.filename ?? '');
    try {
      assertSafeFileName(name);
      if (isTemporaryName(name)) throw new UnsafeNameError(name);
    } catch {
      const refusal: Refusal = smtpError(550, `Attachment name ${JSON.stringify(displayName(name, 100))} is not allowed`);
      refusal.auditDetail = `attachment name ${JSON.stringify(displayName(name, 100))} refused`;
      throw refusal;
    }
    return { name, content: att.content };
  });
}

export function createMailListener(settings: MailListenerSettings, accounts: PartnerMailAccount[], ctx: ListenerContext, options: MailListenerOptions = {}): ProtocolListener {
  const byUser = new Map(accounts.map((a) => [a.user ?? a.partnerId, a]));
  const byPartner = new Map(accounts.map((a) => [a.partnerId, a]));
  const { log } = ctx;
  let server: SMTPServer | undefined;
  let boundPort = 0;
  let open = 0;

  const trail = createAuditTrail(ctx.ledger, log, 'mail');
  const audit = async (partnerId: string | null, event: AuditEvent, session: SMTPServerSession, detail: string) => trail.note(partnerId, event, session.remoteAddress, detail);
  const gate = new AdmissionGate(settings, log, 'mail');
  const failures = new LoginFailures(settings, log, 'mail');
  // The gate's tickets, by the connection's remote address and port (what a session carries).
  const ticketsByRemote = new Map<string, Ticket>();
  const remoteKey = (address: string | undefined, port: number | undefined) => `${normaliseAddress(address).toLowerCase()}|${port}`;
  // smtp-server writes IPv6 addresses in full: when the exact key misses, the port decides.
  const ticketOf = (session: SMTPServerSession) =>
    ticketsByRemote.get(remoteKey(session.remoteAddress, session.remotePort)) ?? [...ticketsByRemote].find(([k]) => k.endsWith(`|${session.remotePort}`))?.[1];
  /** SMTP AUTH failures one connection may make before we hang up on it. */
  const FAILURES_PER_CONNECTION = 3;
  const failuresOn = new Map<string, number>();

  function onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, done: (err: Error | null | undefined, response?: { user: string }) => void) {
    void checkAuth(auth, session).then(
      (user) => done(null, { user }),
      (err: Error) => done(err),
    );
  }

  async function checkAuth(auth: SMTPServerAuthentication, session: SMTPServerSession): Promise<string> {
    const username = String(auth.username ?? '');
    const address = normaliseAddress(session.remoteAddress);
    const verdict = failures.check(username, address);
    if (verdict.delayMs) await sleep(verdict.delayMs);
    const account = byUser.get(username);
    let ok = false;
    if (account && typeof auth.password === 'string') {
      try {
        ok = timingSafeEqual(digest(readSecret(account.password, `mail password of ${account.partnerId}`)), digest(auth.password as string));
      } catch (err) {
        log.error({ partner: account.partnerId, err: (err as Error).message }, 'mail password unreadable');
      }
    }
    if (!ok || verdict.locked) {
      // A locked name gets the answer of a wrong password (the operator learns of it from the alert).
      const why = verdict.locked ? 'locked out after repeated failures' : 'wrong user or password';
      await audit(account?.partnerId ?? null, 'login_refused', session, `user ${username.slice(0, 64)}: ${why}`);
      failures.failed(username, address, account?.partnerId ?? null);
      const key = remoteKey(session.remoteAddress, session.remotePort);
      const n = (failuresOn.get(key) ?? 0) + 1;
      failuresOn.set(key, n);
      throw smtpError(n >= FAILURES_PER_CONNECTION ? 421 : 535, n >= FAILURES_PER_CONNECTION ? 'Authentication failed, closing connection' : 'Authentication failed');
    }
    failures.succeeded(username);
    ticketOf(session)?.loggedIn();
    await audit(account!.partnerId, 'login_ok', session, `user ${username} (${auth.method})`);
    return account!.partnerId;
  }

  function onMailFrom(address: { address: string }, session: SMTPServerSession, done: (err?: Error | null) => void) {
    if (!session.secure) return done(smtpError(530, 'Must issue a STARTTLS command first'));
    const partnerId = session.user as string | undefined;
    const account = partnerId ? byPartner.get(partnerId) : undefined;
    if (!account) return done(smtpError(530, 'Authentication required'));
    const from = address.address.toLowerCase();
    if (!account.senders.some((s) => s.toLowerCase() === from)) {
      void audit(account.partnerId, 'refused', session, `sender ${from.slice(0, 100)} is not one of the account's senders`).then(() => done(smtpError(550, `Sender ${from} is not allowed for this account`)));
      return;
    }
    done();
  }

  async function receive(stream: NodeJS.ReadableStream & { sizeExceeded?: boolean }, session: SMTPServerSession): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    if (stream.sizeExceeded) throw smtpError(552, `Message exceeds ${settings.maxMessageBytes} bytes`);
    const partnerId = session.user as string;
    let files: { name: string; content: Buffer }[];
    try {
      files = await attachmentsOf(Buffer.concat(chunks));
    } catch (err) {
      const detail = (err as Refusal).auditDetail;
      if (detail) await audit(partnerId, 'refused', session, detail);
      throw err;
    }
    const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : 'unknown';
    const landed: string[] = [];
    for (const att of files) {
      const name = att.name;
      const sha256 = createHash('sha256').update(att.content).digest('hex');
      let upload: UploadRow | undefined;
      let result: { path: string; size: number };
      try {
        // The upload and its audit row are committed before the file, and before the 250 reply.
        result = await landFile(ctx.spool.inbound(partnerId), name, att.content, ctx.limitsFor?.(partnerId), async (size) => {
          upload = await recordUpload(ctx.ledger, { partner_id: partnerId, username: sender.slice(0, 128), channel: 'mail', name, sha256, size, detail: null });
          await trail.durable(partnerId, 'upload', session.remoteAddress, `${name} (${size} bytes, sha256 ${sha256.slice(0, 16)}) from ${sender} upload ${upload.id}`);
        });
      } catch (err) {
        if (err instanceof LandingRefused) {
          await audit(partnerId, 'refused', session, `attachment ${name}: ${err.message}`);
          throw smtpError(err.reason === 'too-large' ? 552 : 452, err.message);
        }
        if (err instanceof AuditWriteFailed) throw smtpError(451, err.message);
        throw err;
      }
      if (!upload) throw new Error('unreachable: landed without its upload row');
      log.info({ partner: partnerId, fileName: name, bytes: result.size, upload: upload.id }, 'file received by mail');
      await ctx.onLanded?.(partnerId, result.path);
      landed.push(options.portalUrl ? `${name}: ${options.portalUrl}/portal/uploads/${upload.id}` : `${name} (upload ${upload.id})`);
    }
    return `Accepted ${landed.join(', ')}`;
  }

  return {
    get port() {
      return boundPort;
    },
    connections: () => open,
    async start() {
      server = new SMTPServer({
        name: settings.name,
        banner: 'tsunagi Web-JTRANS mail channel',
        secure: false,
        key: readSecret(settings.tls.key, 'mail listener TLS key'),
        cert: readSecret(settings.tls.cert, 'mail listener certificate'),
        minVersion: 'TLSv1.2',
        allowInsecureAuth: false,
        authOptional: false,
        authMethods: ['PLAIN', 'LOGIN'],
        size: settings.maxMessageBytes,
        disabledCommands: [],
        logger: false,
        onConnect(_session, done) {
          open++;
          done();
        },
        onClose(session: SMTPServerSession) {
          open = Math.max(0, open - 1);
          failuresOn.delete(remoteKey(session.remoteAddress, session.remotePort));
          // smtp-server lingers on a socket it has answered 221 or 421: it no longer counts as waiting.
          ticketOf(session)?.loggedIn();
        },
        onAuth,
        onMailFrom,
        onData(stream, session, done) {
          receive(stream, session).then(
            (message) => done(null, message),
            (err: Error & { responseCode?: number }) => {
              if (!err.responseCode) log.error({ err, partner: session.user }, 'mail landing failed');
              // Drain what is left so that the client gets our answer.
              stream.resume();
              done(err.responseCode ? err : smtpError(451, 'Could not take the file; try again later'));
            },
          );
        },
      } as ConstructorParameters<typeof SMTPServer>[0]);
      server.on('error', (err) => log.warn({ err: err.message }, 'smtp error'));
      // The admission gate runs on the TCP accept, before the greeting and STARTTLS.
      const tickets = gate.guard(server.server);
      server.server.on('connection', (socket: Socket) => {
        const ticket = tickets.get(socket);
        if (!ticket) return;
        const key = remoteKey(socket.remoteAddress, socket.remotePort);
        ticketsByRemote.set(key, ticket);
        socket.once('close', () => ticketsByRemote.delete(key));
      });
      await new Promise<void>((resolve, reject) => {
        server!.server.once('error', reject);
        server!.listen(settings.port, settings.host, () => {
          server!.server.off('error', reject);
          resolve();
        });
      });
      boundPort = (server.server.address() as AddressInfo).port;
      log.info({ port: boundPort }, 'mail listener listening');
    },
    async stop() {
      if (!server) return;
      await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
      await trail.settled();
    },
  };
}
