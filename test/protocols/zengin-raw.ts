// A hand-driven primary for tests: sends exactly the bytes a test builds, reads what comes back.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { ZenginLink } from '../../protocols/zengin/link.ts';
import {
  FileKind,
  Result,
  SessionKind,
  bcdTimestamp,
  codeBytes,
  encodeFileControl,
  encodeSessionControl,
  encodeTtc,
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
  /** Over plain TCP, or over TLS trusting `tlsCa` (PEM). */
  static async connect(port: number, tlsCa?: Buffer): Promise<RawPeer> {
    const socket = tlsCa ? tls.connect({ port, host: '127.0.0.1', ca: tlsCa }) : net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once(tlsCa ? 'secureConnect' : 'connect', resolve).once('error', reject));
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
  /**
   * Writes `bytes` and resolves with how long the listener took to close the connection and
   * the 電文区分 and 処理結果 of what it sent back (null when it sent nothing).
   */
  async closesAfter(bytes: Buffer, ms = 10_000): Promise<{ ms: number; answer: [number, number] | null }> {
    const t0 = Date.now();
    const answer = this.read().then((r) => [r[5]!, r[6]!] as [number, number], () => null);
    this.write(bytes);
    await this.closed(ms);
    return { ms: Date.now() - t0, answer: await answer };
  }
  /** Logs in and checks the 開局応答 is OK. */
  async login(mode: Mode = '0'): Promise<void> {
    this.write(openRequest({ mode }));
    const r = await this.read();
    if (r[5] !== SessionKind.openResponse || r[6] !== 0) throw new Error(`login refused 0x${r[6]!.toString(16)}`);
  }
}

/**
 * A message whose TTC length runs past the bytes sent is never held beyond the frame deadline
 * (the inactivity timeout, which bytes trickling in do not extend), before or after login; a
 * control message announcing another length than 69 is refused at its header (閉局要求 0x99),
 * without waiting for the bytes it announced. `inactivityMs` is the listener's; plain TCP, or
 * TLS when `tlsCa` is given: every 全銀 listener reads through the same link.
 */
export async function checkFramesRunningPastWhatWasSent(port: number, inactivityMs: number, tlsCa?: Buffer): Promise<void> {
  const open = openRequest();
  const held = (what: string, r: { ms: number; answer: [number, number] | null }) => {
    assert.ok(r.ms >= inactivityMs * 0.8 && r.ms < inactivityMs + 2000, `${what}: closed after ${r.ms} ms (inactivity ${inactivityMs} ms)`);
    assert.equal(r.answer, null, `${what}: nothing is answered to a message that never came whole`);
  };
  const refused = (what: string, r: { ms: number; answer: [number, number] | null }) => {
    assert.ok(r.ms < inactivityMs * 0.5, `${what}: refused at once, not after ${r.ms} ms`);
    assert.deepEqual(r.answer, [SessionKind.closeRequest, Result.other], what);
  };
  const controlHeader = (length: number) => Buffer.concat([Buffer.from([0x10, 0, 0, length >> 8, length & 0xff]), open.subarray(5)]);
  const fresh = () => RawPeer.connect(port, tlsCa);
  const loggedIn = async () => {
    const p = await fresh();
    await p.login();
    return p;
  };
  held('開局要求 cut after 15 of its 69 bytes', await (await fresh()).closesAfter(open.subarray(0, 15)));
  refused('a control header announcing 3,000 bytes before login', await (await fresh()).closesAfter(controlHeader(3000)));
  {
    // One byte every inactivity/5: the frame's deadline does not move with them.
    const p = await fresh();
    const t0 = Date.now();
    let sent = 1;
    const timer = setInterval(() => p.write(open.subarray(sent, ++sent)), inactivityMs / 5);
    const r = await p.closesAfter(open.subarray(0, 1)).finally(() => clearInterval(timer));
    held('開局要求 trickled a byte at a time', { ...r, ms: Date.now() - t0 });
  }
  refused('a control header announcing 400 bytes after login', await (await loggedIn()).closesAfter(controlHeader(400).subarray(0, 100)));
  {
    const p = await loggedIn();
    p.write(fileControl());
    assert.equal((await p.read())[6], Result.ok, '開始要求 answered');
    const data = Buffer.alloc(400, 0x40);
    encodeTtc({ form: 'pc', isData: true, seq: 1, length: 405 }, data);
    held('a data message cut after 100 of its 405 bytes', await p.closesAfter(data.subarray(0, 100)));
  }
}
