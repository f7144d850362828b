// ZenginClient: the ProtocolClient face of the primary. push = 連絡 (one file per session), pull =
// 照会, list = the names we may ask for (全銀 has no directory listing). sendFiles/receiveFiles
// carry several files in one session.
//
// Restart (再送要求): the client keeps nothing on disk. When the connection breaks during a send it
// reconnects and sends 再送要求 for the file it was sending, up to `restartAttempts` times; the
// partner's answer says where to resume. A caller that knows an earlier attempt (another process)
// broke passes { restart: true } to sendFiles so the first attempt is a 再送要求 too.
// A pull that breaks is asked for again from the start (照会 restart is not implemented).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { InterruptedPush, ProtocolClient, PushOptions, RemoteFile, TransferResult } from '../contract.ts';
import type { ResumeOutcome } from '../staged-push.ts';
import { zenginEndpointSchema, type ZenginEndpoint, type ZenginEndpointInput } from './config.ts';
import { ConnectionClosedError, InactivityTimeoutError } from './link.ts';
import { PrimarySession, ZenginError, type EndpointFile, type ZenginTransferResult } from './primary.ts';

export interface SendItem {
  localPath: string;
  /** A configured 全銀ファイル名 (direction send), or a file type with exactly one such entry. */
  remoteName: string;
}

export interface ReceiveItem {
  remoteName: string;
  localPath: string;
}

/** Connection-level failures worth a restart; a 処理結果 from the partner is not one. */
export function isBrokenConnection(err: unknown): boolean {
  if (err instanceof ZenginError) return false;
  if (err instanceof ConnectionClosedError || err instanceof InactivityTimeoutError) return true;
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && ['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code);
}

export class ZenginClient implements ProtocolClient {
  readonly endpoint: ZenginEndpoint;

  constructor(
    endpoint: ZenginEndpointInput,
    private readonly log?: Logger,
  ) {
    this.endpoint = zenginEndpointSchema.parse(endpoint);
  }

  fileFor(remoteName: string, direction: 'send' | 'receive'): EndpointFile {
    const files = this.endpoint.files.filter((f) => f.direction === direction);
    const byName = files.find((f) => f.zenginName === remoteName);
    if (byName) return byName;
    const byType = files.filter((f) => f.fileType === remoteName);
    if (byType.length === 1) return byType[0]!;
    throw new Error(`zengin: '${remoteName}' is not a configured file to ${direction} (by 全銀ファイル名, or a file type with one entry)`);
  }

  /**
   * The delivery rule of protocols/staged-push.ts in 全銀 terms: the file is delivered once the
   * partner answered 終了回答 0x00 (or 0x16, "held already"); a failing 閉局 after that is not a
   * failure. The journal hears 'committing' just before 終了要求, the point after which the
   * partner may hold the whole file; 全銀 has no temporary name (the partner keeps partials).
   */
  async push(localPath: string, remoteName: string, options: PushOptions = {}): Promise<TransferResult> {
    await options.journal?.record('staging', '');
    const [result] = await this.sendFiles([{ localPath, remoteName }], { onEnding: () => options.journal?.record('committing', '') });
    return result!;
  }

  /**
   * An interrupted push is finished by asking the partner, never by sending anew: 再送要求 makes
   * the partner say how much it holds (and we send the rest), and a partner that holds the whole
   * file already answers 0x16 at 終了要求. Either way it ends with one copy at the partner.
   */
  async resume(localPath: string, remoteName: string, _interrupted: InterruptedPush): Promise<ResumeOutcome> {
    const [result] = await this.sendFiles([{ localPath, remoteName }], { restart: true });
    return { delivered: true, how: 'finished', result: { ...result!, note: result!.duplicate ? 'the partner held it already (0x16)' : '再送要求: sent the rest' } };
  }

  async pull(remoteName: string, localPath: string): Promise<TransferResult> {
    const [result] = await this.receiveFiles([{ remoteName, localPath }]);
    if (!result) throw new ZenginError(0x17, '開始', `the partner has no ${remoteName} to send`);
    return result;
  }

  /** The files we may ask for; sizes are unknown until asked (0). */
  async list(): Promise<RemoteFile[]> {
    return this.endpoint.files.filter((f) => f.direction === 'receive').map((f) => ({ name: f.zenginName, size: 0 }));
  }

  async close(): Promise<void> {}

  /** Sends files in one 連絡 session, reconnecting with 再送要求 after a broken connection. */
  async sendFiles(items: SendItem[], options: { restart?: boolean; onEnding?: () => Promise<void> | void } = {}): Promise<ZenginTransferResult[]> {
    const files = items.map((i) => ({ ...i, file: this.fileFor(i.remoteName, 'send') }));
    const results: ZenginTransferResult[] = [];
    let restart = options.restart ?? false;
    let attemptsLeft = this.endpoint.restartAttempts;
    let session: PrimarySession | null = null;
    try {
      while (results.length < files.length) {
        const item = files[results.length]!;
        try {
          session ??= await PrimarySession.open(this.endpoint, '0');
          const result = await session.sendFile(item.localPath, item.file, restart, options.onEnding);
          this.log?.info({ protocol: 'zengin', file: item.file.zenginName, bytes: result.bytes, duplicate: result.duplicate }, 'sent');
          results.push(result);
          restart = false;
          if (result.duplicate) session = null; // the partner closed after 0x16
        } catch (err) {
          session?.destroy();
          session = null;
          if (!isBrokenConnection(err) || attemptsLeft-- <= 0) throw err;
          this.log?.warn({ protocol: 'zengin', file: item.file.zenginName, err: (err as Error).message }, 'connection broken; restarting with 再送要求');
          restart = true;
          await sleep(this.endpoint.restartDelayMs);
        }
      }
      // Every file was acknowledged (終了回答): delivered. A 閉局 that fails now must not make the
      // caller retry, which would hand the partner a second copy.
      await session?.close().catch((err: Error) => this.log?.warn({ protocol: 'zengin', err: err.message }, '閉局 failed after every file was acknowledged; delivered'));
      session = null;
      return results;
    } finally {
      session?.destroy();
    }
  }

  /** Asks for files in one 照会 session; null where the partner had none (0x17). */
  async receiveFiles(items: ReceiveItem[]): Promise<(ZenginTransferResult | null)[]> {
    const files = items.map((i) => ({ ...i, file: this.fileFor(i.remoteName, 'receive') }));
    const results: (ZenginTransferResult | null)[] = [];
    let attemptsLeft = this.endpoint.restartAttempts;
    let session: PrimarySession | null = null;
    try {
      while (results.length < files.length) {
        const item = files[results.length]!;
        try {
          session ??= await PrimarySession.open(this.endpoint, '1');
          results.push(await session.receiveFile(item.file, item.localPath));
        } catch (err) {
          session?.destroy();
          session = null;
          if (!isBrokenConnection(err) || attemptsLeft-- <= 0) throw err;
          await sleep(this.endpoint.restartDelayMs);
        }
      }
      await session?.close();
      session = null;
      return results;
    } finally {
      session?.destroy();
    }
  }
}
