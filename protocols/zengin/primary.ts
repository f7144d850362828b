// The primary (一次局): we call a partner's centre. A session logs in (開局) in 連絡 mode to send
// files or in 照会 mode to ask for them, carries several files, and closes (閉局).
import { open } from 'node:fs/promises';
import { openSpoolFile } from '../../spool/encrypted-file.ts';
import net from 'node:net';
import tls from 'node:tls';
import { readSecret, readSecretString } from '../secrets.ts';
import type { ZenginEndpoint } from './config.ts';
import { dataTexts } from './data-source.ts';
import { ZenginLink } from './link.ts';
import {
  FileKind,
  ProtocolError,
  closeRequestResult,
  Result,
  SessionKind,
  bcdTimestamp,
  codeBytes,
  countsFor,
  decodeFileControl,
  decodeSessionControl,
  decodeTtc,
  encodeFileControl,
  encodeSessionControl,
  passwordBytes,
  type FileControl,
  type Mode,
} from './messages.ts';

export type EndpointFile = ZenginEndpoint['files'][number];

/** The partner answered with a 処理結果 other than 0x00, or we found an error and told it so. */
export class ZenginError extends Error {
  constructor(
    readonly result: number,
    readonly stage: string,
    message: string,
  ) {
    super(`zengin ${stage}: 0x${result.toString(16).padStart(2, '0')} ${message}`);
  }
}

export interface ZenginTransferResult {
  remoteName: string;
  bytes: number;
  /** The partner already held exactly these bytes (answered 0x16): delivered before. */
  duplicate?: boolean;
}

export async function connectTo(ep: ZenginEndpoint): Promise<net.Socket> {
  const timeoutMs = ep.timeoutSeconds * 1000;
  return new Promise<net.Socket>((resolve, reject) => {
    let socket: net.Socket;
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    if (ep.tls) {
      socket = tls.connect({
        host: ep.host,
        port: ep.port,
        servername: ep.tls.servername ?? (net.isIP(ep.host) ? undefined : ep.host),
        ca: ep.tls.ca ? readSecret(ep.tls.ca, 'zengin TLS CA') : undefined,
        cert: ep.tls.cert ? readSecret(ep.tls.cert, 'zengin TLS client certificate') : undefined,
        key: ep.tls.key ? readSecret(ep.tls.key, 'zengin TLS client key') : undefined,
        minVersion: 'TLSv1.2',
      });
      socket.once('secureConnect', () => done());
    } else {
      socket = net.connect({ host: ep.host, port: ep.port });
      socket.once('connect', () => done());
    }
    const timer = setTimeout(() => fail(new Error(`zengin: no connection to ${ep.host}:${ep.port} within ${ep.timeoutSeconds} s`)), timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    function done() {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    }
  });
}

export class PrimarySession {
  private closed = false;

  private constructor(
    private readonly ep: ZenginEndpoint,
    private readonly link: ZenginLink,
    readonly mode: Mode,
  ) {}

  /** Connects and logs in; throws ZenginError with the partner's 処理結果 if it refuses. */
  static async open(ep: ZenginEndpoint, mode: Mode): Promise<PrimarySession> {
    const socket = await connectTo(ep);
    const link = new ZenginLink(socket, { wrapper: ep.wrapper.enabled, ackEvery: ep.wrapper.ackEvery, maxText: ep.maxText, timeoutMs: ep.timeoutSeconds * 1000 });
    const session = new PrimarySession(ep, link, mode);
    try {
      const own = codeBytes(ep.ownCode);
      const partner = codeBytes(ep.partnerCode);
      await link.send(
        encodeSessionControl(
          {
            kind: SessionKind.openRequest,
            result: Result.ok,
            receiverCode: partner,
            senderCode: own,
            timestamp: bcdTimestamp(),
            password: passwordBytes(readSecretString(ep.password, 'zengin password'), ep.passwordEncoding),
            applicationId: ep.applicationId,
            mode,
          },
          ep.form,
        ),
      );
      const answer = await session.expect(SessionKind.openResponse, '開局');
      const resp = decodeSessionControl(answer);
      if (resp.result !== Result.ok) throw new ZenginError(resp.result, '開局', 'the partner refused the login');
      const differs = !resp.senderCode.equals(partner) ? ['当方センター確認コード (their code)', resp.senderCode.toString('hex'), partner.toString('hex')]
        : !resp.receiverCode.equals(own) ? ['相手センター確認コード (our code)', resp.receiverCode.toString('hex'), own.toString('hex')]
        : resp.mode !== mode ? ['モード (mode)', resp.mode, mode] : null;
      if (differs) throw await session.abort(new ZenginError(Result.other, '開局', `開局応答 does not echo the request: ${differs[0]} is '${differs[1]}', expected '${differs[2]}'`));
      return session;
    } catch (err) {
      link.destroy();
      throw err;
    }
  }

  /** The next control message, which must be `kind`; a 閉局要求 instead carries the partner's code. */
  private async expect(kind: number, stage: string): Promise<Buffer> {
    let msg: Buffer;
    try {
      msg = await this.link.readMessage();
    } catch (err) {
      if (err instanceof ProtocolError) throw await this.abort(new ZenginError(err.result, stage, err.message));
      throw err;
    }
    const ttc = decodeTtc(msg);
    if (!ttc.isData && msg[5] === kind) return msg;
    if (!ttc.isData && msg[5] === SessionKind.closeRequest) {
      this.link.destroy();
      throw new ZenginError(msg[6] ?? Result.other, stage, 'the partner ended the session');
    }
    throw await this.abort(new ZenginError(Result.other, stage, `${ttc.isData ? 'data message' : `電文区分 0x${msg[5]!.toString(16)}`} out of sequence`));
  }

  /** Tells the partner why we end the session (閉局要求 with the code), closes, returns the error. */
  async abort(err: ZenginError): Promise<ZenginError> {
    this.closed = true;
    try {
      const own = codeBytes(this.ep.ownCode);
      await this.link.send(
        encodeSessionControl(
          { kind: SessionKind.closeRequest, result: closeRequestResult(err.result), receiverCode: codeBytes(this.ep.partnerCode), senderCode: own, timestamp: bcdTimestamp(), password: Buffer.alloc(6), applicationId: this.ep.applicationId, mode: this.mode },
          this.ep.form,
        ),
      );
      await this.link.close();
    } catch {
      this.link.destroy();
    }
    return err;
  }

  private fileRequest(kind: number, file: EndpointFile, counts: { textCount: number; recordCount: number }): FileControl {
    return { kind, result: Result.ok, fileName: file.zenginName, accessKey: file.accessKey, textCount: counts.textCount, recordCount: counts.recordCount, recordLength: file.recordLength, restartFrom: 0, restartTo: 0, auxInfo: '' };
  }

  private checkEcho(answer: FileControl, req: FileControl, stage: string): Promise<never> | null {
    const differs = answer.fileName !== req.fileName ? ['全銀ファイル名 (fileName)', answer.fileName, req.fileName] : answer.accessKey !== req.accessKey ? ['ファイルアクセスキー (accessKey)', answer.accessKey, req.accessKey] : null;
    if (differs) {
      return this.abort(new ZenginError(Result.other, stage, `開始回答 does not echo the request: ${differs[0]} is '${differs[1]}', asked for '${differs[2]}'`)).then((e) => Promise.reject(e));
    }
    return null;
  }

  /** 連絡: sends one file; `restart` sends 再送要求 and resumes where the partner's answer says. */
  async sendFile(localPath: string, file: EndpointFile, restart = false, onEnding?: () => Promise<void> | void): Promise<ZenginTransferResult> {
    if (this.mode !== '0') throw new Error('sendFile needs a 連絡 (mode 0) session');
    const fh = await openSpoolFile(localPath);
    try {
      const size = fh.size;
      const counts = countsFor(size, file.recordLength, this.ep.maxText);
      const req = this.fileRequest(restart ? FileKind.restartRequest : FileKind.startRequest, file, counts);
      await this.link.send(encodeFileControl(req, this.ep.form));
      const answer = decodeFileControl(await this.expect(FileKind.startResponse, '開始'));
      if (answer.result !== Result.ok) throw new ZenginError(answer.result, '開始', `the partner refused ${file.zenginName}`);
      await this.checkEcho(answer, req, '開始');
      const from = restart ? answer.restartFrom : 1;
      if (from < 1 || from > counts.textCount + 1) throw await this.abort(new ZenginError(Result.other, '開始', `restart from message ${from} of ${counts.textCount}`));
      this.link.resetWindow();
      for await (const { seq, payload } of dataTexts(fh, size, file.recordLength, counts.perText, from)) {
        const interrupted = await this.link.sendData(seq, payload, this.ep.form);
        if (interrupted) {
          this.link.destroy();
          throw new ZenginError(interrupted[6] ?? Result.other, 'データ', 'the partner ended the session while receiving data');
        }
      }
      await onEnding?.(); // from 終了要求 on, the partner may hold the whole file
      await this.link.send(encodeFileControl({ ...req, kind: FileKind.endRequest }, this.ep.form));
      const end = decodeFileControl(await this.expect(FileKind.endResponse, '終了'));
      if (end.result === Result.duplicateTransfer) {
        // The partner holds exactly these bytes already: delivered before (idempotent retry).
        this.closed = true;
        this.link.destroy();
        return { remoteName: file.zenginName, bytes: size, duplicate: true };
      }
      if (end.result !== Result.ok) throw new ZenginError(end.result, '終了', `the partner refused ${file.zenginName}`);
      await this.checkEcho(end, req, '終了');
      return { remoteName: file.zenginName, bytes: size };
    } finally {
      await fh.close();
    }
  }

  /** 照会: asks for one file and writes it to `localPath`; null when the partner has none (0x17). */
  async receiveFile(file: EndpointFile, localPath: string): Promise<ZenginTransferResult | null> {
    if (this.mode !== '1') throw new Error('receiveFile needs a 照会 (mode 1) session');
    const req = this.fileRequest(FileKind.startRequest, file, { textCount: 0, recordCount: 0 });
    await this.link.send(encodeFileControl(req, this.ep.form));
    const answer = decodeFileControl(await this.expect(FileKind.startResponse, '開始'));
    if (answer.result === Result.noFileToSend) return null;
    if (answer.result !== Result.ok) throw new ZenginError(answer.result, '開始', `the partner refused ${file.zenginName}`);
    await this.checkEcho(answer, req, '開始');
    if (answer.recordLength !== file.recordLength) throw await this.abort(new ZenginError(Result.recordLengthWrong, '開始', `record length ${answer.recordLength}, agreed ${file.recordLength}`));
    const fh = await open(localPath, 'w');
    try {
      const out = new BatchWriter(fh);
      let texts = 0;
      let records = 0;
      this.link.resetWindow();
      for (;;) {
        let msg: Buffer;
        try {
          msg = await this.link.readMessage();
        } catch (err) {
          if (err instanceof ProtocolError) throw await this.abort(new ZenginError(err.result, 'データ', err.message));
          throw err;
        }
        const ttc = decodeTtc(msg);
        if (ttc.isData) {
          const payload = msg.subarray(5);
          if (ttc.seq !== texts + 1) throw await this.abort(new ZenginError(Result.textCountDiffers, 'データ', `data message ${ttc.seq}, expected ${texts + 1}`));
          if (payload.length % file.recordLength !== 0) throw await this.abort(new ZenginError(Result.recordLengthWrong, 'データ', 'a data message is not whole records'));
          records += payload.length / file.recordLength;
          if (records > answer.recordCount) throw await this.abort(new ZenginError(Result.recordCountDiffers, 'データ', `more than the ${answer.recordCount} records announced`));
          texts++;
          await out.write(payload);
          await this.link.dataReceived();
          continue;
        }
        if (msg[5] === SessionKind.closeRequest) {
          this.link.destroy();
          throw new ZenginError(msg[6] ?? Result.other, 'データ', 'the partner ended the session');
        }
        if (msg[5] !== FileKind.endRequest) throw await this.abort(new ZenginError(Result.other, 'データ', `電文区分 0x${msg[5]!.toString(16)} while receiving data`));
        const end = decodeFileControl(msg);
        let result: number = Result.ok;
        if (end.fileName !== req.fileName || end.accessKey !== req.accessKey) result = Result.other;
        else if (end.textCount !== texts || end.textCount !== answer.textCount) result = Result.textCountDiffers;
        else if (end.recordCount !== records || end.recordCount !== answer.recordCount) result = Result.recordCountDiffers;
        if (result === Result.ok) {
          await out.flush();
          await fh.sync(); // the file is safe before the partner marks it picked up
        }
        await this.link.send(encodeFileControl({ ...end, kind: FileKind.endResponse, result }, this.ep.form));
        if (result !== Result.ok) {
          await this.link.close();
          this.closed = true;
          throw new ZenginError(result, '終了', `counts of ${file.zenginName} do not match what arrived`);
        }
        return { remoteName: file.zenginName, bytes: out.bytes };
      }
    } finally {
      await fh.close();
    }
  }

  /** 閉局: 閉局要求, 閉局応答, close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.link.send(
        encodeSessionControl(
          { kind: SessionKind.closeRequest, result: Result.ok, receiverCode: codeBytes(this.ep.partnerCode), senderCode: codeBytes(this.ep.ownCode), timestamp: bcdTimestamp(), password: Buffer.alloc(6), applicationId: this.ep.applicationId, mode: this.mode },
          this.ep.form,
        ),
      );
      const resp = decodeSessionControl(await this.expect(SessionKind.closeResponse, '閉局'));
      if (resp.result !== Result.ok) throw new ZenginError(resp.result, '閉局', 'the partner refused to close');
      await this.link.close();
    } finally {
      this.link.destroy();
    }
  }

  /** Drops the connection without 閉局 (tests, or after an error). */
  destroy(): void {
    this.closed = true;
    this.link.destroy();
  }
}

/** Writes in 4 MiB batches so a pull is not one disk write per message. */
class BatchWriter {
  private parts: Buffer[] = [];
  private size = 0;
  bytes = 0;
  constructor(private readonly fh: import('node:fs/promises').FileHandle) {}
  async write(b: Buffer): Promise<void> {
    this.parts.push(b);
    this.size += b.length;
    this.bytes += b.length;
    if (this.size >= 4 << 20) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.size === 0) return;
    const data = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    await this.fh.write(data);
  }
}
