// `delivery: as2`: our side sending a file to a partner's AS2 endpoint. A push is done only when a
// valid MDN says `processed` with our MIC (sync: in the response; async: when it reaches our
// receipt URL and the listener records it in the ledger). The pending state and MIC digests live in
// the ledger (as2_sent), so a retry after a crash or a missing MDN reuses the same Message-ID.
import { createHash, randomBytes } from 'node:crypto';
import { readSpoolFile } from '../../spool/encrypted-file.ts';
import http from 'node:http';
import https from 'node:https';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Ledger } from '../../spool/ledger/db.ts';
import type { ProtocolClient, RemoteFile, TransferResult } from '../contract.ts';
import { readSecret } from '../secrets.ts';
import { allMics, buildMessage, type Mics } from './build.ts';
import { digestFromToken } from './mdn.ts';
import type { DigestName } from './cms.ts';
import { activeKey, activePartnerCert, type As2Endpoint, type As2Partnership } from './config.ts';
import { quoteIfNeeded } from './mime.ts';
import { entityFromHttp, judgeMdn, mdnMicDigest } from './receipt.ts';
import { As2Store, type SentRow } from './store.ts';

export function newMessageId(host = hostname()): string {
  const h = host.replace(/[^A-Za-z0-9.-]/g, '') || 'tsunagi';
  return `<tsunagi-${Date.now().toString(36)}-${randomBytes(8).toString('hex')}@${h}>`;
}

/** From this size on, only the MIC digests a partner will name are computed when sending. */
export const LAZY_MIC_BYTES = 16 << 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One POST with a body given as buffers; Content-Length or chunked. */
export function postBuffers(
  url: string,
  headers: Record<string, string>,
  body: Iterable<Buffer>,
  o: { chunked?: boolean; timeoutMs: number; tls?: https.RequestOptions; maxResponseBytes?: number; length?: number },
): Promise<HttpAnswer> {
  const u = new URL(url);
  const length = o.length ?? (Array.isArray(body) ? (body as Buffer[]).reduce((n, b) => n + b.length, 0) : 0);
  if (o.length === undefined && !Array.isArray(body) && !o.chunked) throw new Error("postBuffers: a streamed body needs its length");
  const h: Record<string, string | number> = { ...headers };
  if (!o.chunked) h['Content-Length'] = length;
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(u, { method: 'POST', headers: h, ...(u.protocol === 'https:' ? o.tls : {}), agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > (o.maxResponseBytes ?? 16 << 20)) req.destroy(new Error('response too large'));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', reject);
    (async () => {
      for (const b of body) {
        for (let off = 0; off < b.length; off += 1 << 20) {
          if (!req.write(b.subarray(off, Math.min(b.length, off + (1 << 20))))) await new Promise((r) => req.once('drain', r));
        }
      }
      req.end();
    })().catch(reject);
  });
}

export interface As2ClientOptions {
  partnership: As2Partnership;
  endpoint: As2Endpoint;
  ledger: Ledger;
  log: Logger;
  messageIdHost?: string;
  /** How often a push waiting for an async MDN looks at the ledger. */
  pollMs?: number;
}

export class As2Client implements ProtocolClient {
  private readonly store: As2Store;

  constructor(private readonly o: As2ClientOptions) {
    this.store = new As2Store(o.ledger);
  }

  private tlsOptions(): https.RequestOptions {
    const t = this.o.endpoint.tls;
    if (!t) return {};
    const what = `partner ${this.o.partnership.partnerId} delivery.tls`;
    return {
      ca: t.ca ? readSecret(t.ca, `${what}.ca`) : undefined,
      cert: t.cert ? readSecret(t.cert, `${what}.cert`) : undefined,
      key: t.key ? readSecret(t.key, `${what}.key`) : undefined,
      rejectUnauthorized: t.rejectUnauthorized,
      servername: t.servername,
    };
  }

  /** The Message-ID to use: the pending one of an earlier attempt at this payload, or a new one. */
  private async pick(remoteName: string, sha: string): Promise<{ reuse?: SentRow; done?: SentRow }> {
    const last = await this.store.latestSent(this.o.partnership.partnerId, sha, remoteName);
    if (!last) return {};
    // An MDN arrived after the push that waited for it gave up: that attempt succeeded.
    if (last.state === 'processed' && !last.reported) return { done: last };
    if (last.state === 'sending') return { reuse: last };
    if (last.state === 'awaiting') return this.o.endpoint.newMessageIdOnResend ? {} : { reuse: last };
    return {};
  }

  async push(localPath: string, remoteName: string): Promise<TransferResult> {
    const { endpoint: e, partnership: p, log } = this.o;
    const payload = await readSpoolFile(localPath);
    const sha = createHash('sha256').update(payload).digest('hex');
    const { reuse, done } = await this.pick(remoteName, sha);
    if (done) {
      await this.store.updateSent(done.message_id, { reported: true });
      log.info({ messageId: done.message_id, remoteName }, 'AS2 MDN had arrived after the last attempt gave up');
      return { remoteName, bytes: payload.length, verifiedSha256: sha };
    }
    const messageId = reuse?.message_id ?? newMessageId(this.o.messageIdHost);
    const built = buildMessage(payload, {
      fileName: remoteName,
      contentType: e.contentType,
      transferEncoding: e.transferEncoding,
      sign: e.sign === 'none' ? undefined : { key: activeKey(p), digest: e.sign as DigestName },
      encrypt: e.encrypt === 'none' ? undefined : { cert: activePartnerCert(p), cipher: e.encrypt, keyTransport: e.keyTransport },
      compress: e.compress,
      // Large files: hash only what the MDN will name; any other MIC is recomputed from the file.
      onlyDigests: payload.length >= LAZY_MIC_BYTES ? [...(e.sign === 'none' ? [] : [e.sign as DigestName]), digestFromToken(e.micAlg)!] : undefined,
    });
    const recipe = { mic_prefix: built.micPrefix ? built.micPrefix.toString('base64') : null, payload_path: built.micPrefix ? localPath : null };
    if (reuse) await this.store.updateSent(messageId, { mics: built.mics, state: 'sending', ...recipe });
    else await this.store.insertSent({ message_id: messageId, partner_id: p.partnerId, remote_name: remoteName, payload_sha256: sha, mdn_mode: e.mdn, mics: built.mics, ...recipe });
    const headers: Record<string, string> = {
      'AS2-Version': '1.2',
      'AS2-From': quoteIfNeeded(p.account.ourId),
      'AS2-To': quoteIfNeeded(p.account.id),
      'Message-ID': messageId,
      Subject: e.subject,
      Date: new Date().toUTCString(),
      'MIME-Version': '1.0',
      'User-Agent': 'tsunagi AS2',
      'EDIINT-Features': 'multiple-attachments',
    };
    for (const [k, v] of built.headers) headers[k] = v;
    if (e.mdn !== 'none') {
      headers['Disposition-Notification-To'] = e.notificationTo ?? e.receiptUrl ?? `as2@${hostname()}`;
      if (e.signedMdn) headers['Disposition-Notification-Options'] = `signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, ${e.micAlg}`;
      if (e.mdn === 'async') headers['Receipt-Delivery-Option'] = e.receiptUrl!;
    }
    const answer = await postBuffers(e.url, headers, built.body, { chunked: e.framing === 'chunked', timeoutMs: e.timeoutSeconds * 1000, tls: this.tlsOptions(), length: built.length });
    const sends = (reuse?.sends ?? 0) + 1;
    if (answer.status < 200 || answer.status > 299) {
      await this.store.updateSent(messageId, { state: 'failed', disposition: `HTTP ${answer.status}`, sends });
      throw new Error(`AS2 partner answered HTTP ${answer.status}: ${answer.body.subarray(0, 200).toString('latin1').replace(/[^\x20-\x7e]/g, '?')}`);
    }
    if (e.mdn === 'none') {
      await this.store.updateSent(messageId, { state: 'processed', reported: true, disposition: `HTTP ${answer.status}`, sends });
      return { remoteName, bytes: payload.length };
    }
    if (e.mdn === 'sync') {
      const mdnEntity = entityFromHttp(answer.headers, answer.body);
      const named = mdnMicDigest(mdnEntity);
      if (named && !built.mics[named] && built.micPrefix) built.mics[named] = allMics([built.micPrefix, payload], [named])[named];
      const verdict = judgeMdn(mdnEntity, p.partnerCerts, e.signedMdn, built.mics, messageId);
      if (!verdict.ok) {
        await this.store.updateSent(messageId, { state: 'failed', disposition: verdict.reason.slice(0, 1000), sends });
        throw new Error(`AS2 MDN: ${verdict.reason}`);
      }
      await this.store.updateSent(messageId, { state: 'processed', reported: true, disposition: verdict.mdn.dispositionText.slice(0, 1000), sends });
      log.info({ messageId, remoteName, duplicate: verdict.duplicate }, 'AS2 sync MDN processed');
      return { remoteName, bytes: payload.length, verifiedSha256: sha };
    }
    // async: the listener records the MDN; wait for it until the deadline.
    const deadline = Date.now() + e.mdnTimeoutSeconds * 1000;
    await this.store.updateSent(messageId, { state: 'awaiting', deadline_at: deadline, sends }, ['sending']);
    for (;;) {
      const row = await this.store.sent(messageId);
      if (row?.state === 'processed') {
        await this.store.updateSent(messageId, { reported: true });
        return { remoteName, bytes: payload.length, verifiedSha256: sha };
      }
      if (row?.state === 'failed') throw new Error(`AS2 async MDN: ${row.disposition ?? 'failed'}`);
      if (Date.now() > deadline) throw new Error(`AS2: no async MDN for ${messageId} within ${e.mdnTimeoutSeconds} s (will resend)`);
      await sleep(this.o.pollMs ?? 250);
    }
  }

  async pull(): Promise<TransferResult> {
    throw new Error('AS2 partners push their files to our listener; there is nothing to pull');
  }

  async list(): Promise<RemoteFile[]> {
    return [];
  }

  async close(): Promise<void> {}
}

export type { Mics };
