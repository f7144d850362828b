// A hand-driven primary for tests: sends exactly the bytes a test builds, reads what comes back.
import net from 'node:net';
import { ZenginLink } from '../../protocols/zengin/link.ts';
import {
  FileKind,
  Result,
  SessionKind,
  bcdTimestamp,
  codeBytes,
  encodeFileControl,
  encodeSessionControl,
  passwordBytes,
  type FileControl,
  type Mode,
  type SessionControl,
} from '../../protocols/zengin/messages.ts';
import { CENTRE_CODE, MERCHANT_CODE } from './zengin-helpers.ts';

export function openRequest(overrides: Partial<SessionControl> = {}): Buffer {
  return encodeSessionControl({
    kind: SessionKind.openRequest,
    result: Result.ok,
    receiverCode: codeBytes(CENTRE_CODE),
    senderCode: codeBytes(MERCHANT_CODE),
    timestamp: bcdTimestamp(),
    password: passwordBytes('PASS01', 'ebcdic'),
    applicationId: '0',
    mode: '0' as Mode,
    ...overrides,
  });
}

export function closeRequest(): Buffer {
  return openRequest({ kind: SessionKind.closeRequest, password: Buffer.alloc(6) });
}

export function fileControl(overrides: Partial<FileControl> = {}): Buffer {
  return encodeFileControl({
    kind: FileKind.startRequest,
    result: Result.ok,
    fileName: 'ZGN310000001',
    accessKey: 'KEY031',
    textCount: 1,
    recordCount: 2,
    recordLength: 200,
    restartFrom: 0,
    restartTo: 0,
    auxInfo: '',
    ...overrides,
  });
}

export class RawPeer {
  readonly link: ZenginLink;
  private closedP: Promise<void>;
  private constructor(readonly socket: net.Socket) {
    this.link = new ZenginLink(socket, { wrapper: false, ackEvery: 1, maxText: 32767, timeoutMs: 5000 });
    this.closedP = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
  }
  static async connect(port: number): Promise<RawPeer> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawPeer(socket);
  }
  write(b: Buffer): void {
    this.socket.write(b);
  }
  read(): Promise<Buffer> {
    return this.link.readMessage();
  }
  /** Resolves when the listener closed the connection; rejects after `ms`. */
  closed(ms = 5000): Promise<void> {
    return Promise.race([this.closedP, new Promise<void>((_, reject) => setTimeout(() => reject(new Error('listener did not close the connection')), ms).unref())]);
  }
  destroy(): void {
    this.socket.destroy();
  }
  /** Logs in and checks the 開局応答 is OK. */
  async login(mode: Mode = '0'): Promise<void> {
    this.write(openRequest({ mode }));
    const r = await this.read();
    if (r[5] !== SessionKind.openResponse || r[6] !== 0) throw new Error(`login refused 0x${r[6]!.toString(16)}`);
  }
}
