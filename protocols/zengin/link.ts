// One 全銀 connection's framing: splits the byte stream into messages by the TTC length (or the
// optional 8-byte wrapper's length), enforces maxText and the inactivity timeout, and runs the
// wrapper's logical-ACK window. Both roles use it; it knows nothing about sessions.
import type { Socket } from 'node:net';
import { CONTROL_LENGTH, NotZenginError, ProtocolError, Result, TTC_LENGTH, encodeTtc, type Form } from './messages.ts';

export const WRAPPER_LENGTH = 8;
const WRAP_TEXT = 0x10;
const WRAP_ACK = 0x11;
/** Stop reading the socket once this much is buffered (back-pressure to the sender). */
const HIGH_WATER = 4 << 20;
/**
 * Keep writing until this much is queued in the socket: waiting for 'drain' after every
 * 32 KB message (the socket's own 16 KB mark) leaves the connection idle between messages.
 */
const SEND_HIGH_WATER = 2 << 20;
const CORK_BYTES = 1 << 20;

export class ConnectionClosedError extends Error {}

/** The first byte of a TTC header: 0x00/0x01 (host form) or 0x10/0x11 (PC form). */
function checkTtcByte(b: number): void {
  if (b !== 0x00 && b !== 0x01 && b !== 0x10 && b !== 0x11) throw new NotZenginError(Result.other, `not a 全銀 message: byte 0x${b.toString(16).padStart(2, '0')} where a TTC header starts`);
}
export class InactivityTimeoutError extends Error {}

export type Frame = { ack: true } | { ack: false; message: Buffer };
type PartsFrame = { ack: false; parts: Buffer[]; length: number };

export interface LinkOptions {
  /** true/false as agreed; undefined (listener, before login) = recognise it from the first frame. */
  wrapper: boolean | undefined;
  ackEvery: number;
  maxText: number;
  timeoutMs: number;
}

export class ZenginLink {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private wake: (() => void) | null = null;
  private ended: Error | null = null;
  wrapper: boolean | undefined;
  ackEvery: number;
  maxText: number;
  timeoutMs: number;
  /** Data messages since the last ACK, on whichever side counts them. */
  private unacked = 0;
  private corked = false;
  private corkedBytes = 0;

  constructor(
    readonly socket: Socket,
    options: LinkOptions,
  ) {
    this.wrapper = options.wrapper;
    this.ackEvery = options.ackEvery;
    this.maxText = options.maxText;
    this.timeoutMs = options.timeoutMs;
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered > HIGH_WATER) socket.pause();
      this.notify();
    });
    const end = (err?: Error) => {
      this.ended ??= new ConnectionClosedError(err ? `connection broken: ${err.message}` : 'connection closed by the peer');
      this.notify();
    };
    socket.on('end', () => end());
    socket.on('close', () => end());
    socket.on('error', (err) => end(err));
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /**
   * Waits until `n` bytes are buffered; the deadline covers the whole frame. Callers test
   * `buffered < n` first, so a frame already buffered is taken without an await per field.
   */
  private async need(n: number, deadline: number): Promise<void> {
    while (this.buffered < n) {
      if (this.ended) throw this.ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new InactivityTimeoutError(`no message for ${this.timeoutMs} ms`);
      if (this.socket.isPaused()) this.socket.resume();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The first `n` buffered bytes in one buffer (copied only when they span socket chunks). */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    for (let i = 0, at = 0; at < n; i++) at += this.chunks[i]!.copy(out, at, 0, Math.min(this.chunks[i]!.length, n - at));
    return out;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return this.takeParts(n)[0]!;
    return Buffer.concat(this.takeParts(n), n);
  }

  /** The next `n` bytes as views of the socket's chunks: no copy. */
  private takeParts(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        out.push(c);
        this.chunks.shift();
        left -= c.length;
      } else {
        out.push(c.subarray(0, left));
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    if (this.buffered <= HIGH_WATER / 2 && this.socket.isPaused()) this.socket.resume();
    return out;
  }

  /** The next frame: a logical ACK or one whole application message (TTC header included). */
  nextFrame(): Promise<Frame> {
    return this.frame(false) as Promise<Frame>;
  }

  private async frame(asParts: boolean): Promise<Frame | PartsFrame> {
    const deadline = Date.now() + this.timeoutMs;
    if (this.wrapper === undefined) {
      // Before login: a wrapped 開局要求 starts 00 4D 10 (length 77, text follows); a bare one 1x 00 00.
      // Anything else (an HTTP request, a TLS hello) is no 全銀 peer: refuse at its first byte.
      if (this.buffered < 1) await this.need(1, deadline);
      const first = this.peek(1)[0]!;
      if (first !== 0x00) checkTtcByte(first);
      if (this.buffered < 3) await this.need(3, deadline);
      const head = this.peek(3);
      this.wrapper = head.readUInt16BE(0) === WRAPPER_LENGTH + CONTROL_LENGTH && head[2] === WRAP_TEXT;
    }
    let textLength: number;
    if (this.wrapper) {
      if (this.buffered < WRAPPER_LENGTH) await this.need(WRAPPER_LENGTH, deadline);
      const w = this.take(WRAPPER_LENGTH);
      const length = w.readUInt16BE(0);
      if (w.readUInt32BE(3) !== 0 || w[7] !== 0) throw new ProtocolError(Result.other, 'wrapper reserved bytes are not zero');
      if (w[2] === WRAP_ACK) {
        if (length !== WRAPPER_LENGTH) throw new ProtocolError(Result.other, `ACK wrapper with length ${length}`);
        return { ack: true };
      }
      if (w[2] !== WRAP_TEXT) throw new ProtocolError(Result.other, `wrapper type 0x${w[2]!.toString(16)}`);
      textLength = length - WRAPPER_LENGTH;
      if (textLength > 0) {
        if (this.buffered < 1) await this.need(1, deadline);
        checkTtcByte(this.peek(1)[0]!);
      }
      const head = Math.min(TTC_LENGTH, Math.max(textLength, 0));
      if (this.buffered < head) await this.need(head, deadline);
      if (textLength < TTC_LENGTH || this.peek(TTC_LENGTH).readUInt16BE(3) !== textLength) {
        throw new ProtocolError(Result.other, `wrapper length ${length} does not match the message`);
      }
    } else {
      if (this.buffered < 1) await this.need(1, deadline);
      checkTtcByte(this.peek(1)[0]!);
      if (this.buffered < TTC_LENGTH) await this.need(TTC_LENGTH, deadline);
      textLength = this.peek(TTC_LENGTH).readUInt16BE(3);
    }
    if (textLength <= TTC_LENGTH) throw new ProtocolError(Result.other, `message length ${textLength} leaves no room for content`);
    // Refused at its header, not after waiting for bytes it announced: every control message is
    // 69 bytes, and no message is over maxText.
    const isControl = (this.peek(1)[0]! & 0x0f) === 0;
    if (isControl && textLength !== CONTROL_LENGTH) throw new ProtocolError(Result.other, `control message of ${textLength} bytes, expected ${CONTROL_LENGTH}`);
    if (textLength > this.maxText && textLength !== CONTROL_LENGTH) {
      throw new ProtocolError(Result.other, `message of ${textLength} bytes is over maxText ${this.maxText}`);
    }
    if (this.buffered < textLength) await this.need(textLength, deadline);
    if (!asParts) return { ack: false, message: this.take(textLength) };
    // The TTC header in the first part, so that the caller can decode it without a copy.
    const head = this.chunks[0]!.length >= TTC_LENGTH ? null : this.take(TTC_LENGTH);
    const parts = this.takeParts(textLength - (head ? TTC_LENGTH : 0));
    if (head) parts.unshift(head);
    return { ack: false, parts, length: textLength };
  }

  /** The next application message; a stray ACK is a protocol error. */
  async readMessage(): Promise<Buffer> {
    const frame = await this.nextFrame();
    if (frame.ack) throw new ProtocolError(Result.other, 'logical ACK where a message was due');
    return frame.message;
  }

  /**
   * The next application message as views of the socket's chunks (no copy of a data message's
   * 32 KB): parts[0] holds at least the 5-byte TTC header. A stray ACK is a protocol error.
   */
  async readMessageParts(): Promise<{ parts: Buffer[]; length: number }> {
    const frame = await this.frame(true);
    if (frame.ack) throw new ProtocolError(Result.other, 'logical ACK where a message was due');
    return frame as PartsFrame;
  }

  private flushData(): void {
    if (!this.corked) return;
    this.corked = false;
    this.corkedBytes = 0;
    this.socket.uncork();
  }

  /** Sends one whole message (TTC header included), wrapped if agreed. */
  async send(message: Buffer): Promise<void> {
    this.flushData();
    if (this.wrapper) {
      const w = Buffer.alloc(WRAPPER_LENGTH);
      w.writeUInt16BE(WRAPPER_LENGTH + message.length, 0);
      w[2] = WRAP_TEXT;
      this.socket.cork();
      this.socket.write(w);
      const ok = this.socket.write(message);
      this.socket.uncork();
      if (!ok) await this.drained();
    } else if (!this.socket.write(message)) {
      await this.drained();
    }
  }

  private drained(): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        if (this.ended || this.socket.destroyed) reject(this.ended ?? new ConnectionClosedError('connection closed while sending'));
        else resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /**
   * Sends one data message and keeps the ACK window: after every `ackEvery` data messages the
   * sender waits for the receiver's logical ACK. Returns a message that came instead of the ACK
   * (the receiver ending the session), or null.
   */
  async sendData(seq: number, payload: Buffer, form: Form): Promise<Buffer | null> {
    // Header and payload go out in one writev: no copy of the payload.
    const header = Buffer.allocUnsafe(this.wrapper ? WRAPPER_LENGTH + TTC_LENGTH : TTC_LENGTH);
    const at = this.wrapper ? WRAPPER_LENGTH : 0;
    if (this.wrapper) {
      header.fill(0, 0, WRAPPER_LENGTH);
      header.writeUInt16BE(WRAPPER_LENGTH + TTC_LENGTH + payload.length, 0);
      header[2] = WRAP_TEXT;
    }
    encodeTtc({ form, isData: true, seq, length: TTC_LENGTH + payload.length }, header, at);
    // Corked across messages and released per ~1 MiB: one writev for many messages instead of a
    // system call per message.
    if (!this.corked) {
      this.socket.cork();
      this.corked = true;
    }
    this.socket.write(header);
    this.socket.write(payload);
    this.corkedBytes += header.length + payload.length;
    if (this.corkedBytes >= CORK_BYTES) this.flushData();
    if (this.socket.writableLength > SEND_HIGH_WATER) {
      // Uncork first: 'drain' comes only once the whole buffer is out, and corked bytes never go
      // out (a receiver slower than the sender deadlocked it here).
      this.flushData();
      await this.drained();
    }
    if (!this.wrapper) return null;
    if (++this.unacked < this.ackEvery) return null;
    this.unacked = 0;
    this.flushData();
    const frame = await this.nextFrame();
    return frame.ack ? null : frame.message;
  }

  /** The receiver's half of the window: ACK after every `ackEvery` data messages. */
  async dataReceived(): Promise<void> {
    if (!this.wrapper) return;
    if (++this.unacked < this.ackEvery) return;
    this.unacked = 0;
    const ack = Buffer.alloc(WRAPPER_LENGTH);
    ack.writeUInt16BE(WRAPPER_LENGTH, 0);
    ack[2] = WRAP_ACK;
    if (!this.socket.write(ack)) await this.drained();
  }

  /** A new file transfer starts a new ACK window. */
  resetWindow(): void {
    this.unacked = 0;
  }

  /** Flushes what was written, then closes; destroys if the peer does not let go. */
  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 2000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}
