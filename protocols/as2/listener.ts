// `listeners.as2`: our AS2 endpoint. Partners POST messages to `path`; we take them apart in any
// layer order, answer an MDN (sync in the response, or async to their Receipt-Delivery-Option URL,
// queued durably in the ledger), and land the payload in the partner's inbound once, only after the
// MDN was written or queued. Partners' async MDNs for what we sent arrive at `receiptPath`.
//
// A received message goes staged (payload written under a temporary name in the partner's
// inbound, fsynced; ledger row) -> answered (MDN written / queued) -> landed (renamed to its final
// name). A restart lands what was answered; a staged message whose answer never went out waits for
// the partner's retry, which is answered and landed then. Duplicates by (AS2-From, Message-ID).
import { createHash } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { LandingRefused, beginLanding, sizeRefusal } from '../../spool/landing.ts';
import { createSpoolReadStream } from '../../spool/encrypted-file.ts';
import { AdmissionGate } from '../admission.ts';
import type { Socket } from 'node:net';
import { fsyncDir, pathExists } from '../../spool/atomic.ts';
import { recordAudit } from '../../spool/ledger/audit.ts';
import type { ListenerContext, ProtocolListener } from '../contract.ts';
import { readSecret } from '../secrets.ts';
import { newMessageId, postBuffers } from './client.ts';
import type { DigestName } from './cms.ts';
import { activeKey, type As2Endpoint, type As2ListenerConfig, type As2Partnership } from './config.ts';
import { buildReport, chooseMic, entityParts, parseNotificationOptions, parseReport, signedEntity, type Entity } from './mdn.ts';
import { contentTypeOf, decodedBody, fileNameOf, parseEntity, quoteIfNeeded, splitMultipart, unquote } from './mime.ts';
import { entityFromHttp, judgeMdn, mdnMicDigest } from './receipt.ts';
import type { Mics } from './build.ts';
import { As2Store, type ReceivedRow } from './store.ts';
import { As2ProcessingError, unwrap, type As2ErrorCode } from './unwrap.ts';

export interface As2ListenerPartner extends As2Partnership {
  /** How we send to this partner (whether we asked for signed MDNs), for the MDNs it returns. */
  endpoint?: As2Endpoint;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const header = (req: http.IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v)?.trim();
};

function safeFileName(name: string | undefined, messageId: string): string {
  const base = name ? path.basename(name.replace(/\\/g, '/')).replace(/[\x00-\x1f\x7f]/g, '') : '';
  if (base && base.length <= 200 && !base.startsWith('.') && base !== '..') return base;
  return `as2-${createHash('sha256').update(messageId).digest('hex').slice(0, 16)}.dat`;
}

export class As2Listener implements ProtocolListener {
  private server?: http.Server;
  private readonly store: As2Store;
  private readonly byAs2Id = new Map<string, As2ListenerPartner[]>();
  private readonly byPartnerId = new Map<string, As2ListenerPartner>();
  private mdnTimer?: NodeJS.Timeout;
  private sendingMdns = false;
  private boundPort = 0;
  /** Test hook: pause between staging a message and answering it (crash tests). */
  private readonly pauseBeforeAnswerMs = Number(process.env.TSUNAGI_AS2_PAUSE_BEFORE_ANSWER_MS ?? 0);

  constructor(
    private readonly config: As2ListenerConfig,
    partners: As2ListenerPartner[],
    private readonly ctx: ListenerContext,
  ) {
    this.store = new As2Store(ctx.ledger);
    for (const p of partners) {
      const list = this.byAs2Id.get(p.account.id) ?? [];
      list.push(p);
      this.byAs2Id.set(p.account.id, list);
      this.byPartnerId.set(p.partnerId, p);
    }
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    await this.recover();
    const c = this.config;
    const options: http.ServerOptions = {
      maxHeaderSize: c.maxHeaderBytes,
      requestTimeout: c.requestTimeoutSeconds * 1000,
      headersTimeout: c.headersTimeoutSeconds * 1000,
      keepAliveTimeout: 5000,
    };
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    if (c.tls) {
      this.server = https.createServer(
        {
          ...options,
          cert: readSecret(c.tls.cert, 'listeners.as2.tls.cert'),
          key: readSecret(c.tls.key, 'listeners.as2.tls.key'),
          ca: c.tls.ca ? readSecret(c.tls.ca, 'listeners.as2.tls.ca') : undefined,
          requestCert: c.tls.requestClientCert || c.tls.requireClientCert,
          rejectUnauthorized: c.tls.requireClientCert,
        },
        handler,
      );
    } else this.server = http.createServer(options, handler);
    // The admission gate on the TCP accept (before TLS); a connection leaves it with its first request.
    const tickets = new AdmissionGate(c, this.ctx.log, 'as2').guard(this.server);
    this.server.on('request', (req: http.IncomingMessage) => {
      const socket = req.socket as Socket & { _parent?: Socket };
      (tickets.get(socket) ?? (socket._parent && tickets.get(socket._parent)))?.loggedIn();
    });
    // The request timeout is checked on this interval; keep it short enough to matter.
    (this.server as http.Server & { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1000;
    this.server.on('clientError', (err, socket) => {
      if (socket.writable) socket.end(`HTTP/1.1 ${(err as { code?: string }).code === 'HPE_HEADER_OVERFLOW' ? '431' : '400'} Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(c.port, c.host, () => resolve());
    });
    this.boundPort = (this.server.address() as { port: number }).port;
    this.mdnTimer = setInterval(() => void this.sendDueMdns(), 1000);
    this.mdnTimer.unref();
    void this.sendDueMdns();
    this.ctx.log.info({ port: this.boundPort, path: c.path, tls: !!c.tls }, 'AS2 listener started');
  }

  async stop(): Promise<void> {
    if (this.mdnTimer) clearInterval(this.mdnTimer);
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 2000).unref();
    });
  }

  // ---- recovery and landing ----

  /** After a restart: land every message that was answered but not yet landed. */
  private async recover(): Promise<void> {
    // Staged rows whose temporary file is gone were published just before a crash: landed.
    for (const row of await this.store.receivedInState('staged')) {
      if (row.temp_path && !(await pathExists(row.temp_path)) && row.final_path && (await pathExists(row.final_path))) {
        await this.store.updateReceived(row.partner_id, row.message_id, { state: 'landed', temp_path: null });
        await this.ctx.onLanded?.(row.partner_id, row.final_path);
      }
    }
    for (const row of await this.store.receivedInState('answered')) {
      await this.land(row).catch((err) => this.ctx.log.error({ err, partner: row.partner_id, messageId: row.message_id }, 'AS2 landing after restart failed'));
    }
  }

  private async land(row: Pick<ReceivedRow, 'partner_id' | 'message_id' | 'temp_path' | 'final_path'>): Promise<void> {
    let final = row.final_path!;
    if (row.temp_path && (await pathExists(row.temp_path))) {
      if (await pathExists(final)) {
        // Another file of that name waits in inbound: never overwrite it.
        const ext = path.extname(final);
        final = `${final.slice(0, final.length - ext.length)}.${createHash('sha256').update(row.message_id).digest('hex').slice(0, 8)}${ext}`;
        await this.store.updateReceived(row.partner_id, row.message_id, { final_path: final });
      }
      // The temporary file was fsynced when staged: rename, then make the rename durable.
      await rename(row.temp_path, final);
      await fsyncDir(path.dirname(final));
    }
    await this.store.updateReceived(row.partner_id, row.message_id, { state: 'landed', temp_path: null });
    await this.ctx.onLanded?.(row.partner_id, final);
  }

  // ---- HTTP ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'POST') throw new HttpError(405, 'POST only');
      if (url === this.config.path) await this.handleMessage(req, res);
      else if (url === this.config.receiptPath) await this.handleReceipt(req, res);
      else throw new HttpError(404, 'not an AS2 endpoint');
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.ctx.log.error({ err }, 'AS2 request failed');
      if (!res.headersSent) {
        const text = err instanceof HttpError ? err.message : 'unexpected-processing-error';
        res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) + 1, Connection: 'close' });
        res.end(`${text}\n`);
      } else res.destroy();
      if (status === 413) req.destroy();
    }
  }

  private readBody(req: http.IncomingMessage): Promise<Buffer> {
    const limit = this.config.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? -1);
    if (declared > limit) return Promise.reject(new HttpError(413, `body larger than ${limit} bytes`));
    return new Promise((resolve, reject) => {
      // With a Content-Length the body goes straight into one buffer (no second copy at the end).
      const whole = declared >= 0 ? Buffer.allocUnsafe(declared) : undefined;
      const chunks: Buffer[] = [];
      let n = 0;
      const idleMs = this.config.bodyIdleSeconds * 1000;
      const cutOff = () => {
        req.removeAllListeners('data');
        reject(new HttpError(408, `no body bytes for ${this.config.bodyIdleSeconds} s after ${n} bytes`));
        req.destroy();
      };
      const idle = setTimeout(cutOff, idleMs);
      req.once('close', () => clearTimeout(idle));
      req.on('data', (c: Buffer) => {
        idle.refresh();
        if (n + c.length > limit || (whole && n + c.length > whole.length)) {
          clearTimeout(idle);
          req.removeAllListeners('data');
          reject(new HttpError(413, `body larger than ${limit} bytes`));
          req.destroy();
          return;
        }
        if (whole) c.copy(whole, n);
        else chunks.push(c);
        n += c.length;
      });
      req.on('end', () => {
        clearTimeout(idle);
        resolve(whole ? whole.subarray(0, n) : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n));
      });
      req.on('error', reject);
      req.on('aborted', () => reject(new HttpError(400, 'request aborted')));
    });
  }

  private mdnHeaders(ourId: string, theirId: string, entity: Entity): [string, string][] {
    return [
      ['AS2-Version', '1.2'],
      ['AS2-From', quoteIfNeeded(ourId)],
      ['AS2-To', quoteIfNeeded(theirId)],
      ['Message-ID', newMessageId(this.config.messageIdHost)],
      ['Date', new Date().toUTCString()],
      ['Subject', 'Message Disposition Notification'],
      ['MIME-Version', '1.0'],
      ...entity.headers,
    ];
  }

  private async handleMessage(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const from = unquote(header(req, 'as2-from') ?? '');
    const to = unquote(header(req, 'as2-to') ?? '');
    const messageId = header(req, 'message-id') ?? '';
    const body = await this.readBody(req);
    if (!from || !to || !messageId) throw new HttpError(400, 'AS2-From, AS2-To and Message-ID are required');
    if (messageId.length > 300) throw new HttpError(400, 'Message-ID longer than 255 characters');
    const wantsMdn = header(req, 'disposition-notification-to') !== undefined;
    const options = parseNotificationOptions(header(req, 'disposition-notification-options'));
    const asyncUrl = header(req, 'receipt-delivery-option');
    const partner = (this.byAs2Id.get(from) ?? []).find((p) => p.account.ourId === to);
    const remote = req.socket.remoteAddress ?? undefined;
    if (!partner) {
      await recordAudit(this.ctx.ledger, { partnerId: null, protocol: 'as2', event: 'refused', remote, detail: `unknown trading partner ${from} -> ${to}` });
      const text = `unknown trading partner ${from} -> ${to}`;
      if (!wantsMdn) throw new HttpError(403, text);
      const report = buildReport({
        reportingUA: 'tsunagi AS2',
        finalRecipient: to,
        originalRecipient: to,
        originalMessageId: messageId,
        disposition: 'failed/Failure: unknown-trading-partner',
        text,
      });
      const out = Buffer.concat(report.body);
      res.writeHead(403, Object.fromEntries([...this.mdnHeaders(to, from, report), ['Content-Length', String(out.length)]]));
      res.end(out);
      return;
    }
    const log = this.ctx.log.child({ partner: partner.partnerId, protocol: 'as2', messageId });
    let disposition = 'processed';
    let micValue: { value: string; token: string } | undefined;
    let staged: { temp: string; final: string; name: string; size: number } | undefined;
    let duplicate = false;
    const mic = chooseMic(options);
    if ('unsupported' in mic) {
      disposition = 'failed/Failure: unsupported MIC-algorithms';
    } else {
      try {
        const u = unwrap(entityFromHttp(req.headers, body), { keys: partner.keys, certs: partner.partnerCerts, maxDecompressedBytes: Math.min(2 ** 31 - 1, this.config.maxBodyBytes * 16) });
        const choice = options.micAlgs.length ? mic : chooseMic(options, u.signed?.digest ?? 'sha256');
        if (!('unsupported' in choice)) {
          // The signature check already hashed the signed part: reuse it when the algorithms agree.
          const known = u.signed && u.signed.digest === choice.digest ? u.signed.contentDigest : undefined;
          micValue = { value: (known ?? createHash(choice.digest as DigestName).update(u.micBasis).digest()).toString('base64'), token: choice.token };
        }
        if (partner.account.requireEncrypted && !u.encrypted) throw new As2ProcessingError('insufficient-message-security', 'the partnership requires encryption');
        if (partner.account.requireSigned && !u.signed) throw new As2ProcessingError('insufficient-message-security', 'the partnership requires a signature');
        const payload = decodedBody(u.entity);
        const name = safeFileName(fileNameOf(u.entity), messageId);
        const existing = await this.store.received(partner.partnerId, messageId);
        // A staged row whose temporary file is gone was published (a crash before its row said so).
        if (existing && (existing.state !== 'staged' || (existing.temp_path && !(await pathExists(existing.temp_path))))) duplicate = true;
        else {
          // This partner's size limit and the disk's reserve, as on every listener: an error MDN, nothing lands.
          const limits = this.ctx.limitsFor?.(partner.partnerId) ?? {};
          const tooLarge = sizeRefusal(payload.length, limits.maxBytes);
          if (tooLarge) throw new As2ProcessingError('unexpected-processing-error', tooLarge.message);
          const landing = await beginLanding(this.ctx.spool.inbound(partner.partnerId), name, limits).catch((err: unknown) => {
            throw err instanceof LandingRefused ? new As2ProcessingError('unexpected-processing-error', err.message) : err;
          });
          try {
            for (let o = 0; o < payload.length; o += 16 << 20) await landing.handle.write(payload.subarray(o, Math.min(payload.length, o + (16 << 20))));
            await landing.handle.sync();
            await landing.release();
          } catch (err) {
            await landing.abort();
            throw err;
          }
          const row = { file_name: name, temp_path: landing.tempPath, final_path: landing.finalPath, size: payload.length };
          let ok: boolean;
          try {
            if (existing) {
              ok = await this.store.restage(partner.partnerId, messageId, row);
              if (ok && existing.temp_path) await rm(existing.temp_path, { force: true });
              // The staged row's audit row (in the same commit) is committed before the MDN answers it.
            } else ok = await this.store.stage({ partner_id: partner.partnerId, message_id: messageId, ...row }, { remote, detail: `${messageId} ${name} ${payload.length} bytes` });
          } catch (err) {
            // No staged row and no audit row: the MDN says error and nothing lands.
            await rm(landing.tempPath, { force: true });
            throw err;
          }
          if (ok) staged = { temp: landing.tempPath, final: landing.finalPath, name, size: payload.length };
          else {
            // A twin of this message got there first.
            await rm(landing.tempPath, { force: true });
            duplicate = true;
          }
        }
        if (duplicate) disposition = 'processed/Warning: duplicate-document';
        log.info({ bytes: payload.length, signed: !!u.signed, encrypted: u.encrypted, compressed: u.compressed, duplicate, fileName: name }, 'AS2 message received');
      } catch (err) {
        if (!(err instanceof As2ProcessingError)) {
          log.error({ err }, 'AS2 message processing failed');
          err = new As2ProcessingError('unexpected-processing-error', (err as Error).message);
        }
        const e = err as As2ProcessingError;
        // Nothing about why a decryption failed reaches the partner, nor our log in detail.
        if (e.code !== 'decryption-failed') log.warn({ code: e.code, detail: e.detail }, 'AS2 message refused');
        else log.warn({ code: e.code }, 'AS2 message refused');
        disposition = `processed/Error: ${e.code satisfies As2ErrorCode}`;
        if (e.code === 'decryption-failed') micValue = undefined;
      }
    }
    if (!staged) await recordAudit(this.ctx.ledger, { partnerId: partner.partnerId, protocol: 'as2', event: 'refused', remote, detail: `${messageId} ${disposition}` });
    if (this.pauseBeforeAnswerMs > 0 && staged) await new Promise((r) => setTimeout(r, this.pauseBeforeAnswerMs));

    const mdn = wantsMdn ? this.buildMdn(partner, from, to, messageId, disposition, micValue, options.signedReceipt, mic) : undefined;
    if (mdn && asyncUrl) {
      // Durably queued before anything is released; the partner gets an empty 200 now.
      const out = Buffer.concat(mdn.body);
      const queued = {
        mdn_state: 'pending' as const,
        mdn_url: asyncUrl,
        mdn_headers: JSON.stringify(mdn.headers),
        mdn_body: out.toString('base64'),
        mdn_attempts: 0,
        mdn_next_at: Date.now(),
      };
      if (staged) await this.store.updateReceived(partner.partnerId, messageId, { ...queued, state: 'answered' }, { state: 'staged' });
      else await this.queueLooseMdn(partner.partnerId, messageId, queued, duplicate);
      res.writeHead(200, { 'Content-Length': '0' });
      res.end();
      if (staged) await this.land({ partner_id: partner.partnerId, message_id: messageId, temp_path: staged.temp, final_path: staged.final });
      void this.sendDueMdns();
      return;
    }
    const status = !mdn && disposition !== 'processed' && !duplicate ? 400 : 200;
    const out = mdn ? Buffer.concat(mdn.body) : Buffer.from(status === 200 ? '' : `${disposition}\n`);
    const finished = new Promise<boolean>((resolve) => {
      res.once('finish', () => resolve(true));
      res.once('close', () => resolve(res.writableFinished));
    });
    const headers: [string, string][] = mdn ? [...mdn.headers, ['Content-Length', String(out.length)]] : [['Content-Length', String(out.length)], ['Content-Type', 'text/plain']];
    // 'answered' before the answer goes: the same Message-ID sent again the moment the partner has
    // our MDN is a duplicate, also while this message is still being landed (a crash from here on
    // lands it at the restart, and the partner's retry is told duplicate-document).
    if (staged) await this.store.updateReceived(partner.partnerId, messageId, { state: 'answered' }, { state: 'staged' });
    res.writeHead(status, Object.fromEntries(headers));
    res.end(out);
    if (!staged) return;
    if (!(await finished)) {
      // Not delivered: the partner sends it again, and that is a new message, not a duplicate.
      await this.store.updateReceived(partner.partnerId, messageId, { state: 'staged' }, { state: 'answered' });
      log.warn('AS2 answer was not delivered; the message waits for the partner to send it again');
      return;
    }
    // A test's window between the answer and the landing (never set in production).
    const pause = Number(process.env.TSUNAGI_AS2_PAUSE_BEFORE_LANDING_MS ?? 0);
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    await this.land({ partner_id: partner.partnerId, message_id: messageId, temp_path: staged.temp, final_path: staged.final });
  }

  /** An async MDN for a message that landed nothing (an error or a duplicate). */
  private async queueLooseMdn(partnerId: string, messageId: string, queued: Partial<ReceivedRow>, duplicate: boolean): Promise<void> {
    // Kept under its own key so that it never collides with the message's dedupe row.
    const key = `${duplicate ? 'dup' : 'err'}:${Date.now()}:${messageId}`.slice(0, 300);
    await this.store.stage({ partner_id: partnerId, message_id: key, file_name: '-', temp_path: null, final_path: null, size: 0 });
    await this.store.updateReceived(partnerId, key, { ...queued, state: 'landed' });
  }

  private buildMdn(
    partner: As2ListenerPartner,
    from: string,
    to: string,
    messageId: string,
    disposition: string,
    mic: { value: string; token: string } | undefined,
    signed: boolean,
    choice: ReturnType<typeof chooseMic>,
  ): { headers: [string, string][]; body: Buffer[] } {
    const text =
      disposition === 'processed'
        ? `The AS2 message ${messageId} from ${from} was received and processed.`
        : `The AS2 message ${messageId} from ${from} was received: ${disposition}.`;
    let entity: Entity = buildReport({ reportingUA: 'tsunagi AS2', originalRecipient: to, finalRecipient: to, originalMessageId: messageId, disposition, mic, text });
    if (signed) entity = signedEntity(entityParts(entity), activeKey(partner), 'unsupported' in choice ? 'sha256' : choice.digest);
    return { headers: this.mdnHeaders(to, from, entity), body: entity.body };
  }

  // ---- async MDNs we owe ----

  private async sendDueMdns(): Promise<void> {
    if (this.sendingMdns) return;
    this.sendingMdns = true;
    try {
      for (const row of await this.store.mdnsDue(Date.now())) {
        try {
          const headers = Object.fromEntries(JSON.parse(row.mdn_headers ?? '[]') as [string, string][]);
          const answer = await postBuffers(row.mdn_url!, headers, [Buffer.from(row.mdn_body ?? '', 'base64')], { timeoutMs: 30_000 });
          if (answer.status < 200 || answer.status > 299) throw new Error(`HTTP ${answer.status}`);
          await this.store.updateReceived(row.partner_id, row.message_id, { mdn_state: 'sent', mdn_attempts: row.mdn_attempts + 1 });
        } catch (err) {
          const attempts = row.mdn_attempts + 1;
          const giveUp = attempts >= this.config.mdnAttempts;
          await this.store.updateReceived(row.partner_id, row.message_id, {
            mdn_state: giveUp ? 'failed' : 'pending',
            mdn_attempts: attempts,
            mdn_next_at: Date.now() + this.config.mdnRetrySeconds * 1000,
          });
          const fields = { partner: row.partner_id, messageId: row.message_id, attempts, reason: (err as Error).message };
          if (giveUp) this.ctx.log.error({ alert: 'as2-mdn-failed', ...fields }, 'AS2 async MDN could not be delivered; gave up');
          else this.ctx.log.warn(fields, 'AS2 async MDN delivery failed; will retry');
        }
      }
    } catch (err) {
      this.ctx.log.error({ err }, 'AS2 async MDN sender failed');
    } finally {
      this.sendingMdns = false;
    }
  }

  // ---- async MDNs for what we sent ----

  private async handleReceipt(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await this.readBody(req);
    if (body.length > 4 << 20) throw new HttpError(413, 'MDN too large');
    const entity = entityFromHttp(req.headers, body);
    let original: string | undefined;
    try {
      original = peekOriginalMessageId(entity);
    } catch (err) {
      throw new HttpError(400, `not an MDN: ${(err as Error).message}`);
    }
    const row = original ? await this.store.sent(original) : undefined;
    if (!row) {
      await recordAudit(this.ctx.ledger, { partnerId: null, protocol: 'as2', event: 'refused', remote: req.socket.remoteAddress, detail: `MDN for unknown Message-ID ${original ?? '(none)'}` });
      throw new HttpError(400, 'unknown Original-Message-ID');
    }
    const partner = this.byPartnerId.get(row.partner_id);
    if (!partner) throw new HttpError(400, 'unknown Original-Message-ID');
    const mics = JSON.parse(row.mics) as Mics;
    const named = mdnMicDigest(entity);
    if (named && !mics[named] && row.mic_prefix !== null && row.payload_path) mics[named] = await micFromFile(named, Buffer.from(row.mic_prefix, 'base64'), row.payload_path, row.payload_sha256);
    const verdict = judgeMdn(entity, partner.partnerCerts, partner.endpoint?.signedMdn ?? true, mics, row.message_id);
    const changed = await this.store.updateSent(
      row.message_id,
      { state: verdict.ok ? 'processed' : 'failed', disposition: (verdict.ok ? verdict.mdn.dispositionText : verdict.reason).slice(0, 1000) },
      ['sending', 'awaiting'],
    );
    this.ctx.log.info({ partner: row.partner_id, messageId: row.message_id, ok: verdict.ok, changed, reason: verdict.ok ? undefined : verdict.reason }, 'AS2 async MDN received');
    res.writeHead(200, { 'Content-Length': '0' });
    res.end();
  }
}

/** Original-Message-ID of an MDN, signed or not, before its signature is checked (to find the partner). */
function peekOriginalMessageId(entity: import('./mime.ts').MimeEntity): string | undefined {
  let e = entity;
  const ct = contentTypeOf(e);
  if (ct.type === 'multipart/signed') e = parseEntity(splitMultipart(e.body, ct.params.get('boundary') ?? '')[0]!);
  return parseReport(e).originalMessageId?.trim();
}

/** A MIC not kept when sending: recomputed from the file, if it still holds the bytes we sent. */
async function micFromFile(digest: DigestName, prefix: Buffer, file: string, sha256: string): Promise<string | undefined> {
  const h = createHash(digest).update(prefix);
  const check = createHash('sha256');
  try {
    for await (const chunk of await createSpoolReadStream(file)) {
      h.update(chunk as Buffer);
      check.update(chunk as Buffer);
    }
  } catch {
    return undefined;
  }
  return check.digest('hex') === sha256 ? h.digest('base64') : undefined;
}

export function createAs2Listener(config: As2ListenerConfig, partners: As2ListenerPartner[], ctx: ListenerContext): As2Listener {
  return new As2Listener(config, partners, ctx);
}
