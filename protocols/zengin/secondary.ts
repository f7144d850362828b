// The secondary (二次局) side of one connection: login, then 連絡 (the partner sends files that land
// in its inbound folder) or 照会 (the partner asks for files from its outbound folder), until 閉局.
// Any error answers the due response with its 処理結果, or, where no response is due (data, a
// message out of sequence), sends 閉局要求 carrying the code, and closes the connection.
import { timingSafeEqual, X509Certificate } from 'node:crypto';
import { openSpoolFile } from '../../spool/encrypted-file.ts';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AuditWriteFailed, LandingRefused, assertFreeSpace, beginLanding, sizeRefusal } from '../../spool/landing.ts';
import type { AuditEvent } from '../../spool/ledger/audit.ts';
import type { AuditTrail } from '../audit-trail.ts';
import { tokyoDate, tokyoTime } from '../../spool/tree.ts';
import type { ListenerContext } from '../contract.ts';
import { LoginFailures, sleep } from '../login-failures.ts';
import { normaliseAddress } from '../admission.ts';
import { defaultRecordLength, type ZenginAccount, type ZenginAccountFile } from './config.ts';
import { dataTexts } from './data-source.ts';
import { ConnectionClosedError, InactivityTimeoutError, ZenginLink } from './link.ts';
import {
  CONTROL_LENGTH,
  TTC_LENGTH,
  FileKind,
  NotZenginError,
  ProtocolError,
  closeRequestResult,
  Result,
  SessionKind,
  countsFor,
  decodeFileControl,
  decodeSessionControl,
  decodeTtc,
  encodeFileControl,
  encodeSessionControl,
  isFileKind,
  isSessionKind,
  type FileControl,
  type Form,
  type Mode,
  type SessionControl,
} from './messages.ts';
import { PartialBusyError, type PartialFile, type RestartStore } from './restart-store.ts';
import { downloadDetail, isDuplicateUpload, pickOutbound, uploadDetail } from './spool-rules.ts';

export interface ResolvedAccount {
  partnerId: string;
  account: ZenginAccount;
  code: Buffer;
  password: Buffer;
}

export interface SecondaryDeps {
  ctx: ListenerContext;
  /** The listener's audit trail (an upload's row is committed before 0x00). */
  trail: AuditTrail;
  ownCode: Buffer;
  /** By partner centre code (hex, lower case). */
  accounts: Map<string, ResolvedAccount>;
  partials: RestartStore;
  inactivityMs: number;
  now?: () => Date;
  /** Called once the partner logged in (the connection leaves the not-logged-in count). */
  onLoggedIn?: () => void;
  /** Failed 開局要求 per centre code and address: growing delay and lockout. */
  failures?: LoginFailures;
}

/** Free space is checked again after this many bytes of one file. */
const SPACE_CHECK_BYTES = 16 << 20;

/** Ends the session: `result` goes in the due response or in a 閉局要求. */
class SessionEnd extends Error {
  constructor(
    readonly result: number,
    message: string,
    /** The response kind due, if any (else a 閉局要求 is sent). */
    readonly respond?: { kind: number; request: Buffer },
  ) {
    super(message);
  }
}

export async function serveConnection(socket: Socket, deps: SecondaryDeps): Promise<void> {
  const session = new SecondarySession(socket, deps);
  await session.run();
}

class SecondarySession {
  private readonly link: ZenginLink;
  private readonly remote: string;
  private login: ResolvedAccount | null = null;
  private loggedIn = false;
  private form: Form = 'pc';
  private mode: Mode = '0';
  private openRequest: SessionControl | null = null;
  private readonly log;

  constructor(
    private readonly socket: Socket,
    private readonly deps: SecondaryDeps,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.log = deps.ctx.log.child({ protocol: 'zengin', remote: this.remote });
    // Generous until login: 32,767 is the largest text any partner may send.
    this.link = new ZenginLink(socket, { wrapper: undefined, ackEvery: 1, maxText: 32767, timeoutMs: deps.inactivityMs });
  }

  private async audit(event: AuditEvent, detail: string): Promise<void> {
    try {
      await this.durableAudit(event, detail);
    } catch {
      // logged (with an alert) by the trail; only an upload waits for its row
    }
  }

  private durableAudit(event: AuditEvent, detail: string): Promise<void> {
    return this.deps.trail.durable(this.login?.partnerId ?? null, event, this.remote, detail);
  }

  async run(): Promise<void> {
    try {
      await this.authenticate();
      await this.serve();
    } catch (err) {
      await this.fail(err);
    } finally {
      this.link.destroy();
    }
  }

  private async fail(err: unknown): Promise<void> {
    if (err instanceof ConnectionClosedError || err instanceof InactivityTimeoutError) {
      this.log.info({ partner: this.login?.partnerId }, `session ended: ${err.message}`);
      // A connection that never sent a byte is no event for the audit trail (scanners, floods).
      if (this.loggedIn || this.socket.bytesRead > 0) await this.audit('session_end', err.message);
      return;
    }
    if (err instanceof NotZenginError) {
      // Not a 全銀 peer: nothing it could read is worth sending; close at once.
      this.log.warn({ partner: this.login?.partnerId }, `session ended: ${err.message}`);
      await this.audit(this.loggedIn ? 'refused' : 'login_refused', err.message);
      return;
    }
    const end = err instanceof SessionEnd ? err : err instanceof ProtocolError ? new SessionEnd(err.result, err.message) : new SessionEnd(Result.other, (err as Error).message);
    if (!(err instanceof SessionEnd) && !(err instanceof ProtocolError)) this.log.error({ err }, 'session failed');
    else this.log.warn({ partner: this.login?.partnerId, result: end.result }, `session ended: ${end.message}`);
    await this.audit(this.loggedIn ? 'refused' : 'login_refused', `0x${end.result.toString(16).padStart(2, '0')} ${end.message}`);
    try {
      await this.link.send(this.endMessage(end));
      await this.link.close();
    } catch {
      // The peer went away first; nothing more to tell it.
    }
  }

  /** The due response with the code, or a 閉局要求 with it. */
  private endMessage(end: SessionEnd): Buffer {
    const req = end.respond?.request;
    if (req && isFileKind(req[5]!) && req.length === CONTROL_LENGTH) {
      // A file-control response echoes its request, even one we could not decode.
      const out = Buffer.from(req);
      out[5] = end.respond!.kind;
      out[6] = end.result;
      return out;
    }
    const base = (req && safeDecodeSession(req)) || this.openRequest;
    const partnerCode = this.login?.code ?? base?.senderCode ?? Buffer.alloc(7);
    const kind = end.respond && req && isSessionKind(req[5]!) ? end.respond.kind : SessionKind.closeRequest;
    return encodeSessionControl(
      {
        kind,
        result: kind === SessionKind.closeRequest ? closeRequestResult(end.result) : end.result,
        receiverCode: partnerCode,
        senderCode: this.deps.ownCode,
        timestamp: base?.timestamp ?? Buffer.alloc(6),
        password: Buffer.alloc(6),
        applicationId: base?.applicationId ?? '0',
        mode: base?.mode ?? this.mode,
      },
      this.form,
    );
  }

  private async authenticate(): Promise<void> {
    const msg = await this.link.readMessage();
    const ttc = decodeTtc(msg);
    this.form = ttc.form;
    if (ttc.isData || msg[5] !== SessionKind.openRequest) {
      throw new SessionEnd(isSessionKind(msg[5]!) || isFileKind(msg[5]!) ? Result.other : Result.unknownKind, 'the first message is not 開局要求');
    }
    const respond = { kind: SessionKind.openResponse, request: msg };
    let req: SessionControl;
    try {
      req = decodeSessionControl(msg);
    } catch (err) {
      if (err instanceof ProtocolError) throw new SessionEnd(err.result, err.message, respond);
      throw err;
    }
    this.openRequest = req;
    if (req.result !== Result.ok) throw new SessionEnd(Result.other, '開局要求 with a 処理結果', respond);
    if (!req.receiverCode.equals(this.deps.ownCode)) throw new SessionEnd(Result.receiverCodeWrong, '相手センター確認コード is not ours', respond);
    const codeHex = req.senderCode.toString('hex');
    const address = normaliseAddress(this.socket.remoteAddress);
    const verdict = this.deps.failures?.check(codeHex, address) ?? { delayMs: 0, locked: false };
    if (verdict.delayMs) await sleep(verdict.delayMs);
    const found = this.deps.accounts.get(codeHex);
    const failed = (result: number, why: string) => {
      this.deps.failures?.failed(codeHex, address, found?.partnerId ?? null);
      return new SessionEnd(result, why, respond);
    };
    if (!found) throw failed(Result.senderCodeWrong, `unknown centre code ${codeHex}`);
    this.login = found;
    const { account } = found;
    // A locked-out code gets the answer of a wrong password.
    if (verdict.locked) throw failed(Result.passwordWrong, 'locked out after repeated failures');
    if (!timingSafeEqual(req.password, found.password)) throw failed(Result.passwordWrong, 'password wrong');
    this.deps.failures?.succeeded(codeHex);
    if (account.requireTls && !('encrypted' in this.socket)) throw new SessionEnd(Result.other, 'this partner must log in over TLS', respond);
    const certProblem = this.checkClientCert(account);
    if (certProblem) throw new SessionEnd(Result.other, certProblem, respond);
    if (ttc.form !== account.form) throw new SessionEnd(Result.other, `connection form ${ttc.form}, agreed ${account.form}`, respond);
    if (this.link.wrapper !== account.wrapper.enabled) throw new SessionEnd(Result.other, `wrapper ${this.link.wrapper ? 'used' : 'missing'}, agreed ${account.wrapper.enabled ? 'on' : 'off'}`, respond);
    if (!withinServiceHours(account, this.deps.now?.() ?? new Date())) throw new SessionEnd(Result.outsideServiceHours, 'outside service hours', respond);
    if (req.applicationId !== account.applicationId) throw new SessionEnd(Result.applicationIdWrong, `application ID ${req.applicationId}`, respond);
    this.mode = req.mode;
    this.link.maxText = account.maxText;
    this.link.ackEvery = account.wrapper.ackEvery;
    this.link.timeoutMs = (account.timeoutSeconds ?? this.deps.inactivityMs / 1000) * 1000;
    await this.link.send(this.sessionResponse(req, SessionKind.openResponse));
    this.loggedIn = true;
    this.deps.onLoggedIn?.();
    this.log.info({ partner: found.partnerId, mode: this.mode }, 'logged in');
    await this.audit('login_ok', `mode=${this.mode === '0' ? '連絡' : '照会'} tls=${'encrypted' in this.socket}`);
  }

  private checkClientCert(account: ZenginAccount): string | null {
    if (!account.clientCertFingerprint && !account.clientCertSubject) return null;
    const tls = this.socket as TLSSocket;
    if (!('encrypted' in tls) || !tls.getPeerX509Certificate) return 'this partner must log in over TLS with its client certificate';
    const cert: X509Certificate | undefined = tls.getPeerX509Certificate();
    if (!cert || !tls.authorized) return 'no verified client certificate';
    if (account.clientCertFingerprint && cert.fingerprint256.replaceAll(':', '').toLowerCase() !== account.clientCertFingerprint.replaceAll(':', '').toLowerCase()) {
      return 'client certificate fingerprint does not match';
    }
    if (account.clientCertSubject && !cert.subject.split('\n').includes(`CN=${account.clientCertSubject}`)) return 'client certificate subject does not match';
    return null;
  }

  /** A session-control response: each message's 相手 is its receiver, so the codes swap. */
  private sessionResponse(req: SessionControl, kind: number, result: number = Result.ok): Buffer {
    return encodeSessionControl({ ...req, kind, result, receiverCode: req.senderCode, senderCode: req.receiverCode, password: Buffer.alloc(6), mode: this.mode }, this.form);
  }

  private async serve(): Promise<void> {
    for (;;) {
      const msg = await this.readControl();
      const kind = msg[5]!;
      if (kind === SessionKind.closeRequest) {
        const req = decodeOrEnd(msg, decodeSessionControl, SessionKind.closeResponse);
        await this.link.send(this.sessionResponse(req, SessionKind.closeResponse));
        await this.link.close();
        await this.audit('session_end', '閉局');
        return;
      }
      if (kind === SessionKind.modeChangeRequest) {
        const req = decodeOrEnd(msg, decodeSessionControl, SessionKind.modeChangeResponse);
        if (!this.login!.account.allowModeChange) throw new SessionEnd(Result.modeChangeRefused, 'mode change refused', { kind: SessionKind.modeChangeResponse, request: msg });
        this.mode = req.mode;
        await this.link.send(this.sessionResponse(req, SessionKind.modeChangeResponse));
        continue;
      }
      if (kind === FileKind.startRequest || kind === FileKind.restartRequest) {
        const req = decodeOrEnd(msg, decodeFileControl, FileKind.startResponse);
        if (this.mode === '0') await this.receiveFile(req, msg);
        else await this.sendFile(req, msg);
        continue;
      }
      throw new SessionEnd(isSessionKind(kind) || isFileKind(kind) ? Result.other : Result.unknownKind, `電文区分 0x${kind.toString(16)} out of sequence`);
    }
  }

  /** The next message, which must be a control message in the agreed form. */
  private async readControl(): Promise<Buffer> {
    const msg = await this.link.readMessage();
    const ttc = decodeTtc(msg);
    if (ttc.form !== this.form) throw new SessionEnd(Result.other, 'connection form changed within the session');
    if (ttc.isData) throw new SessionEnd(Result.other, `data message ${ttc.seq} out of sequence`);
    return msg;
  }

  private mapping(req: FileControl, raw: Buffer, direction: 'send' | 'receive'): { file: ZenginAccountFile; recordLength: number } {
    const respond = { kind: FileKind.startResponse, request: raw };
    const file = this.login!.account.files.find((f) => f.zenginName === req.fileName && f.direction === direction);
    if (!file) throw new SessionEnd(Result.fileNameUnknown, `file ${req.fileName} is not this partner's to ${direction === 'send' ? 'send' : 'ask for'}`, respond);
    if (file.accessKey !== req.accessKey) throw new SessionEnd(Result.accessKeyWrong, `access key wrong for ${req.fileName}`, respond);
    if (req.result !== Result.ok) throw new SessionEnd(Result.other, 'request with a 処理結果', respond);
    return { file, recordLength: file.recordLength ?? defaultRecordLength(file.fileType) };
  }

  // ---- 連絡: the partner sends, we receive -------------------------------------------------

  private async receiveFile(req: FileControl, raw: Buffer): Promise<void> {
    const restart = req.kind === FileKind.restartRequest;
    const respond = { kind: FileKind.startResponse, request: raw };
    const { file, recordLength } = this.mapping(req, raw, 'send');
    if (req.recordLength !== recordLength) throw new SessionEnd(Result.recordLengthWrong, `record length ${req.recordLength}, agreed ${recordLength}`, respond);
    if (req.restartFrom !== 0 || req.restartTo !== 0) throw new SessionEnd(Result.other, '再送指定 must be 0, 0 in a request', respond);
    const partnerId = this.login!.partnerId;
    const limits = this.deps.ctx.limitsFor?.(partnerId) ?? {};
    const announced = sizeRefusal(req.recordCount * recordLength, limits.maxBytes);
    if (announced) throw new SessionEnd(Result.other, announced.message, respond);
    try {
      await assertFreeSpace(this.deps.ctx.spool.inbound(partnerId), limits.reserveBytes);
    } catch (err) {
      if (err instanceof LandingRefused) throw new SessionEnd(Result.other, err.message, respond);
      throw err;
    }
    let partial: PartialFile;
    try {
      partial = await this.deps.partials.open({ partnerId, fileName: req.fileName, accessKey: req.accessKey, textCount: req.textCount, recordCount: req.recordCount, recordLength }, !restart, () => this.link.destroy());
    } catch (err) {
      if (err instanceof PartialBusyError) throw new SessionEnd(Result.other, err.message, respond);
      throw err;
    }
    const state = { outcome: 'keep' as 'keep' | 'discard' | 'landed' };
    try {
      const answer: FileControl = { ...req, kind: FileKind.startResponse, result: Result.ok };
      if (restart) Object.assign(answer, { restartFrom: partial.heldTexts + 1, restartTo: req.textCount });
      await this.link.send(encodeFileControl(answer, this.form));
      this.link.resetWindow();
      this.log.info({ partner: partnerId, file: req.fileName, from: partial.heldTexts + 1 }, restart ? 'receiving (restart)' : 'receiving');
      const end = await this.receiveTexts(req, partial, limits).catch((err: unknown) => {
        // Refused for its size or the disk: nothing to resume, the partial goes.
        if (err instanceof SessionEnd && err.cause instanceof LandingRefused) state.outcome = 'discard';
        throw err;
      });
      const endRaw = end.raw;
      const endReq = end.fc;
      const fail = (result: number, why: string) => {
        state.outcome = 'discard';
        return new SessionEnd(result, why, { kind: FileKind.endResponse, request: endRaw });
      };
      if (endReq.fileName !== req.fileName || endReq.accessKey !== req.accessKey) throw fail(Result.other, '終了要求 names another file');
      if (endReq.result !== Result.ok || endReq.restartFrom !== 0 || endReq.restartTo !== 0) throw fail(Result.other, '終了要求 with a 処理結果 or a 再送指定');
      if (endReq.recordLength !== recordLength) throw fail(Result.recordLengthWrong, `終了要求 record length ${endReq.recordLength}`);
      if (endReq.textCount !== partial.heldTexts || (req.textCount !== 0 && req.textCount !== endReq.textCount)) {
        throw fail(Result.textCountDiffers, `${partial.heldTexts} data messages received, 終了要求 says ${endReq.textCount} (開始要求 ${req.textCount})`);
      }
      if (endReq.recordCount !== partial.records || (req.recordCount !== 0 && req.recordCount !== endReq.recordCount)) {
        throw fail(Result.recordCountDiffers, `${partial.records} records received, 終了要求 says ${endReq.recordCount} (開始要求 ${req.recordCount})`);
      }
      await partial.flush();
      const sha256 = await partial.digest();
      if (await isDuplicateUpload(this.deps.ctx.ledger, partnerId, req.fileName, sha256)) throw fail(Result.duplicateTransfer, `${req.fileName} with these bytes was already received`);
      // Committed in the instant before 終了回答 0x00 so that 0x00 never acknowledges a file we do
      // not hold; if the connection dies in between, the sender's retry is answered 0x16.
      const at = new Date();
      const name = `${req.fileName}_${file.fileType}_${tokyoDate(at)}${tokyoTime(at)}_${sha256.slice(0, 8)}`;
      const landing = await beginLanding(this.deps.ctx.spool.inbound(partnerId), name, { maxBytes: limits.maxBytes });
      let landed: { path: string; size: number };
      try {
        await partial.handOver(landing.tempPath);
        state.outcome = 'landed';
        // The upload's audit row is committed before the file and before 0x00 (PCI DSS 10.5): when it
        // cannot be, the file is not committed and the sender gets an error 終了回答 instead.
        landed = await landing.commit((bytes) => this.durableAudit('upload', uploadDetail({ fileName: req.fileName, accessKey: req.accessKey, fileType: file.fileType, sha256, bytes, records: endReq.recordCount, landed: name })));
      } catch (err) {
        await landing.abort();
        if (err instanceof AuditWriteFailed) throw fail(Result.other, err.message);
        throw err;
      }
      await this.link.send(encodeFileControl({ ...endReq, kind: FileKind.endResponse, result: Result.ok }, this.form));
      this.log.info({ partner: partnerId, file: req.fileName, bytes: landed.size, landed: name }, 'file landed');
      try {
        await this.deps.ctx.onLanded?.(partnerId, landed.path);
      } catch (err) {
        this.log.error({ err }, 'onLanded failed');
      }
    } finally {
      if (state.outcome === 'keep') await partial.suspend().catch((err) => this.log.error({ err }, 'cannot keep the partial file'));
      else if (state.outcome === 'discard') await partial.discard().catch(() => undefined);
    }
  }

  /** Takes data messages until 終了要求; anything else ends the session. */
  private async receiveTexts(req: FileControl, partial: PartialFile, limits: { maxBytes?: number; reserveBytes?: number }): Promise<{ fc: FileControl; raw: Buffer }> {
    const recordLength = partial.key.recordLength;
    let nextSpaceCheck = partial.records * recordLength + SPACE_CHECK_BYTES;
    const refuse = (refusal: LandingRefused) => Object.assign(new SessionEnd(Result.other, refusal.message), { cause: refusal });
    for (;;) {
      // As views of the socket's chunks: a data message's bytes are copied only into the file.
      const { parts, length } = await this.link.readMessageParts();
      const ttc = decodeTtc(parts[0]!);
      if (ttc.form !== this.form) throw new SessionEnd(Result.other, 'connection form changed within the session');
      if (!ttc.isData) {
        const msg = parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
        if (msg[5] === FileKind.endRequest) return { fc: decodeOrEnd(msg, decodeFileControl, FileKind.endResponse), raw: msg };
        throw new SessionEnd(isSessionKind(msg[5]!) || isFileKind(msg[5]!) ? Result.other : Result.unknownKind, `電文区分 0x${msg[5]!.toString(16)} while receiving data`);
      }
      const expected = partial.heldTexts + 1;
      if (ttc.seq !== expected) throw new SessionEnd(Result.textCountDiffers, `data message ${ttc.seq}, expected ${expected}`);
      if (req.textCount !== 0 && ttc.seq > req.textCount) throw new SessionEnd(Result.textCountDiffers, `data message ${ttc.seq} beyond the ${req.textCount} announced`);
      const payload = { parts: dropTtc(parts), length: length - TTC_LENGTH };
      if (payload.length % recordLength !== 0) throw new SessionEnd(Result.recordLengthWrong, `data message ${ttc.seq} of ${payload.length} bytes is not whole ${recordLength}-byte records`);
      if (req.recordCount !== 0 && partial.records + payload.length / recordLength > req.recordCount) {
        throw new SessionEnd(Result.recordCountDiffers, `more than the ${req.recordCount} records announced`);
      }
      const end = partial.records * recordLength + payload.length;
      const tooLarge = sizeRefusal(end, limits.maxBytes);
      if (tooLarge) throw refuse(tooLarge);
      if (limits.reserveBytes && end >= nextSpaceCheck) {
        nextSpaceCheck = end + SPACE_CHECK_BYTES;
        try {
          await assertFreeSpace(this.deps.ctx.spool.inbound(this.login!.partnerId), limits.reserveBytes);
        } catch (err) {
          if (err instanceof LandingRefused) throw refuse(err);
          throw err;
        }
      }
      const problem = await partial.append(payload.parts, payload.length);
      if (problem) throw new SessionEnd(Result.other, problem);
      await this.link.dataReceived();
    }
  }

  // ---- 照会: the partner asks, we send -------------------------------------------------------

  private async sendFile(req: FileControl, raw: Buffer): Promise<void> {
    const respond = { kind: FileKind.startResponse, request: raw };
    const { file, recordLength } = this.mapping(req, raw, 'receive');
    if (req.kind === FileKind.restartRequest) throw new SessionEnd(Result.other, '再送要求 in 照会 is not supported; ask again with 開始要求', respond);
    if (req.recordLength !== 0 && req.recordLength !== recordLength) throw new SessionEnd(Result.recordLengthWrong, `record length ${req.recordLength}, agreed ${recordLength}`, respond);
    const { partnerId, account } = this.login!;
    const picked = await pickOutbound(this.deps.ctx.ledger, this.deps.ctx.spool.outbound(partnerId), partnerId, file.fileType);
    if (!picked) {
      // Not an error of the session: the partner may ask for another file or close.
      await this.link.send(encodeFileControl({ ...req, kind: FileKind.startResponse, result: Result.noFileToSend, textCount: 0, recordCount: 0, recordLength, restartFrom: 0, restartTo: 0 }, this.form));
      await this.audit('refused', `0x17 no file of type ${file.fileType} for ${req.fileName}`);
      return;
    }
    // Decrypted here, as the bytes leave to the partner.
    const fh = await openSpoolFile(picked.path);
    try {
      const size = fh.size;
      let counts;
      try {
        counts = countsFor(size, recordLength, account.maxText);
      } catch (err) {
        this.log.error({ file: picked.name }, (err as Error).message);
        throw new SessionEnd(Result.other, `cannot serve ${picked.name}`, respond);
      }
      const header: FileControl = { ...req, result: Result.ok, textCount: counts.textCount, recordCount: counts.recordCount, recordLength, restartFrom: 0, restartTo: 0 };
      await this.link.send(encodeFileControl({ ...header, kind: FileKind.startResponse }, this.form));
      this.link.resetWindow();
      for await (const { seq, payload } of dataTexts(fh, size, recordLength, counts.perText)) {
        const interrupted = await this.link.sendData(seq, payload, this.form);
        if (interrupted) throw peerEnded(interrupted);
      }
      await this.link.send(encodeFileControl({ ...header, kind: FileKind.endRequest }, this.form));
      const answer = await this.readControl();
      if (answer[5] !== FileKind.endResponse) throw peerEnded(answer);
      const fc = decodeFileControl(answer);
      if (fc.result !== Result.ok) throw new SessionEnd(fc.result, `the partner answered 終了回答 0x${fc.result.toString(16)}`);
      await this.audit('download', downloadDetail({ fileName: req.fileName, served: picked.name, bytes: size }));
      this.log.info({ partner: partnerId, file: req.fileName, served: picked.name, bytes: size }, 'file picked up');
      try {
        await this.deps.ctx.onPickedUp?.(partnerId, picked.name, size);
      } catch (err) {
        this.log.error({ err }, 'onPickedUp failed');
      }
    } finally {
      await fh.close();
    }
  }
}

/** A data message's payload: its parts without the 5-byte TTC header (which parts[0] holds). */
function dropTtc(parts: Buffer[]): Buffer[] {
  const first = parts[0]!.subarray(TTC_LENGTH);
  return first.length > 0 ? [first, ...parts.slice(1)] : parts.slice(1);
}

/** A message where another was due: the peer ending the session with a code, or out of sequence. */
function peerEnded(msg: Buffer): SessionEnd {
  const code = msg[6] ?? Result.other;
  if (msg[5] === SessionKind.closeRequest) return new SessionEnd(code === Result.ok ? Result.other : code, `the partner ended the session (0x${code.toString(16)})`);
  return new SessionEnd(Result.other, `電文区分 0x${(msg[5] ?? 0).toString(16)} out of sequence`);
}

function decodeOrEnd<T>(msg: Buffer, decode: (b: Buffer) => T, responseKind: number): T {
  try {
    return decode(msg);
  } catch (err) {
    if (err instanceof ProtocolError) throw new SessionEnd(err.result, err.message, { kind: responseKind, request: msg });
    throw err;
  }
}

function safeDecodeSession(buf: Buffer): SessionControl | null {
  try {
    return decodeSessionControl(buf);
  } catch {
    return null;
  }
}

function withinServiceHours(account: ZenginAccount, now: Date): boolean {
  if (!account.serviceHours) return true;
  const hhmm = tokyoTime(now).slice(0, 4);
  const from = account.serviceHours.from.replace(':', '');
  const to = account.serviceHours.to.replace(':', '');
  return from <= to ? hhmm >= from && hhmm < to : hhmm >= from || hhmm < to;
}
