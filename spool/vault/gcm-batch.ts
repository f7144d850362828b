// AES-256-GCM for many small messages at once. Node creates an OpenSSL context per message
// (createCipheriv), which costs 10-50 µs each on this machine: a million vault entries would take
// most of a minute. Here the AES work of a whole batch is one AES-256-ECB call over the counter
// blocks of every message (the CTR keystream and the tag masks of GCM), and GHASH runs in
// JavaScript with Shoup's 8-bit tables. Output is byte-for-byte standard GCM (96-bit IV, 128-bit
// tag): Node's own createDecipheriv('aes-256-gcm') opens what this seals and the other way round
// (the vault test checks both directions).
import { createCipheriv, randomFillSync } from 'node:crypto';

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

/**
 * A GHASH key H with one 8-bit table per byte position (Shoup's table, shifted): t[p][b] is the
 * byte b at position p of a block times H, so a multiplication is 16 lookups and XORs with no shifting or
 * reduction (64 KB per key).
 */
const PAD = Buffer.alloc(16);

class Ghash {
  /** 16 positions x 256 bytes x 4 words */
  private readonly t = new Int32Array(16 * 256 * 4);
  y0 = 0; y1 = 0; y2 = 0; y3 = 0;

  constructor(h: Buffer) {
    const t = this.t;
    // position 0 (the first byte): t[0][0x80 >> k] = H * x^k; t[0][a ^ b] = t[0][a] ^ t[0][b]
    let v0 = h.readInt32BE(0), v1 = h.readInt32BE(4), v2 = h.readInt32BE(8), v3 = h.readInt32BE(12);
    for (let bit = 0x80; bit > 0; bit >>= 1) {
      const o = bit * 4;
      t[o] = v0; t[o + 1] = v1; t[o + 2] = v2; t[o + 3] = v3;
      const lsb = v3 & 1;
      v3 = (v3 >>> 1) | (v2 << 31); v2 = (v2 >>> 1) | (v1 << 31); v1 = (v1 >>> 1) | (v0 << 31); v0 = v0 >>> 1;
      if (lsb) v0 ^= 0xe1000000 | 0;
    }
    for (let b = 2; b < 256; b <<= 1) {
      for (let j = 1; j < b; j++) for (let w = 0; w < 4; w++) t[(b + j) * 4 + w] = t[b * 4 + w]! ^ t[j * 4 + w]!;
    }
    // position p + 1 = position p times x^8 (a shift by a byte, the byte shifted out folded back)
    const r8 = Ghash.reductionTable();
    for (let p = 0; p < 15; p++) {
      for (let b = 0; b < 256; b++) {
        const s = p * 1024 + b * 4, d = (p + 1) * 1024 + b * 4;
        const z0 = t[s]!, z1 = t[s + 1]!, z2 = t[s + 2]!, z3 = t[s + 3]!;
        t[d + 3] = (z3 >>> 8) | (z2 << 24); t[d + 2] = (z2 >>> 8) | (z1 << 24); t[d + 1] = (z1 >>> 8) | (z0 << 24); t[d] = (z0 >>> 8) ^ r8[z3 & 0xff]!;
      }
    }
  }

  /** r8[b]: what multiplying by x^8 folds back into the top word when the byte b falls off. */
  private static reductionTable(): Int32Array {
    const t = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      let top = 0; // 32-bit top word; the low byte b is shifted out one bit at a time
      let low = b;
      for (let k = 0; k < 8; k++) {
        const lsb = low & 1;
        low >>>= 1;
        top = top >>> 1;
        if (lsb) top ^= 0xe1000000 | 0;
      }
      t[b] = top;
    }
    return t;
  }

  reset(): void { this.y0 = 0; this.y1 = 0; this.y2 = 0; this.y3 = 0; }

  /** y = (y ^ block) * H for the 16 bytes at buf[off] (zero-padded past `end`). */
  block(buf: Buffer, off: number, end: number): void {
    const b = buf;
    const o = off;
    if (off + 16 > end) {
      // the last, partial block: zero-padded in a scratch block (a loop: Buffer.copy costs more here)
      const p = PAD;
      for (let i = 0; i < 16; i++) p[i] = o + i < end ? b[o + i]! : 0;
      this.block(p, 0, 16);
      return;
    }
    this.mul(
      this.y0 ^ ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!),
      this.y1 ^ ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!),
      this.y2 ^ ((b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!),
      this.y3 ^ ((b[o + 12]! << 24) | (b[o + 13]! << 16) | (b[o + 14]! << 8) | b[o + 15]!),
    );
  }

  lengths(aadBytes: number, dataBytes: number): void {
    // 64-bit bit lengths; messages here are far below 2^29 bytes
    this.mul(this.y0, this.y1 ^ (aadBytes * 8), this.y2, this.y3 ^ (dataBytes * 8));
  }

  private mul(x0: number, x1: number, x2: number, x3: number): void {
    const t = this.t;
    let o: number;
    o = 0 + ((x0 >>> 24) << 2);
    let z0 = t[o]!, z1 = t[o + 1]!, z2 = t[o + 2]!, z3 = t[o + 3]!;
    o = 1024 + (((x0 >>> 16) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 2048 + (((x0 >>> 8) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 3072 + ((x0 & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 4096 + ((x1 >>> 24) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 5120 + (((x1 >>> 16) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 6144 + (((x1 >>> 8) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 7168 + ((x1 & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 8192 + ((x2 >>> 24) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 9216 + (((x2 >>> 16) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 10240 + (((x2 >>> 8) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 11264 + ((x2 & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 12288 + ((x3 >>> 24) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 13312 + (((x3 >>> 16) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 14336 + (((x3 >>> 8) & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    o = 15360 + ((x3 & 0xff) << 2);
    z0 ^= t[o]!; z1 ^= t[o + 1]!; z2 ^= t[o + 2]!; z3 ^= t[o + 3]!;
    this.y0 = z0; this.y1 = z1; this.y2 = z2; this.y3 = z3;
  }

  /** Writes y into 16 bytes. */
  write(dst: Buffer, off: number): void {
    dst.writeInt32BE(this.y0, off); dst.writeInt32BE(this.y1, off + 4); dst.writeInt32BE(this.y2, off + 8); dst.writeInt32BE(this.y3, off + 12);
  }
}


export interface GcmMessage {
  /** iv (12) | ciphertext | tag (16) */
  sealed: Buffer;
  aad: Buffer;
}

/** AES-256-GCM with one key, over batches of small messages. */
export class BatchGcm {
  private readonly ghash: Ghash;

  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('BatchGcm: AES-256 needs a 32-byte key');
    this.ghash = new Ghash(this.ecb(Buffer.alloc(16)));
  }

  private ecb(blocks: Buffer): Buffer {
    const c = createCipheriv('aes-256-ecb', this.key, null);
    c.setAutoPadding(false);
    return c.update(blocks);
  }

  /** Keystream for each message: block 0 is E(J0) (the tag mask), then E(J0+1), ... */
  private keystreams(ivs: Buffer[], lengths: number[]): { ks: Buffer; at: number[] } {
    const at: number[] = [];
    let blocks = 0;
    for (const len of lengths) { at.push(blocks * 16); blocks += 1 + Math.ceil(len / 16); }
    const counters = Buffer.alloc(blocks * 16);
    for (let m = 0; m < ivs.length; m++) {
      const n = 1 + Math.ceil(lengths[m]! / 16);
      for (let k = 0; k < n; k++) {
        const o = at[m]! + k * 16;
        ivs[m]!.copy(counters, o, 0, 12);
        counters.writeUInt32BE(k + 1, o + 12);
      }
    }
    return { ks: blocks ? this.ecb(counters) : counters, at };
  }

  private tag(aad: Buffer, data: Buffer, dataOff: number, dataLen: number, mask: Buffer, maskOff: number, dst: Buffer, dstOff: number): void {
    const g = this.ghash;
    g.reset();
    for (let i = 0; i < aad.length; i += 16) g.block(aad, i, aad.length);
    for (let i = 0; i < dataLen; i += 16) g.block(data, dataOff + i, dataOff + dataLen);
    g.lengths(aad.length, dataLen);
    g.write(dst, dstOff);
    for (let i = 0; i < 16; i++) dst[dstOff + i] ^= mask[maskOff + i]!;
  }

  /** Seals each plaintext with a fresh random IV: iv | ciphertext | tag. */
  sealMany(plaintexts: Buffer[], aads: Buffer[]): Buffer[] {
    const allIvs = randomFillSync(Buffer.alloc(GCM_IV_BYTES * plaintexts.length));
    const ivs = plaintexts.map((_, m) => allIvs.subarray(m * GCM_IV_BYTES, (m + 1) * GCM_IV_BYTES));
    const { ks, at } = this.keystreams(ivs, plaintexts.map((p) => p.length));
    return plaintexts.map((p, m) => {
      const out = Buffer.alloc(GCM_IV_BYTES + p.length + GCM_TAG_BYTES);
      ivs[m]!.copy(out, 0);
      const k = at[m]! + 16;
      for (let i = 0; i < p.length; i++) out[GCM_IV_BYTES + i] = p[i]! ^ ks[k + i]!;
      this.tag(aads[m]!, out, GCM_IV_BYTES, p.length, ks, at[m]!, out, GCM_IV_BYTES + p.length);
      return out;
    });
  }

  /** Opens each sealed message; null for one whose tag does not verify (tampered, wrong key or wrong aad). */
  openMany(messages: GcmMessage[]): (Buffer | null)[] {
    const batch = PackedMessages.of(messages);
    const ok = this.openPacked(batch, allIndices(messages.length));
    return messages.map((_, m) => (ok[m] ? Buffer.from(batch.plain.subarray(batch.at[m]!, batch.at[m]! + batch.len[m]!)) : null));
  }

  /**
   * Opens the messages `idx` of a packed batch in place of copies: each plaintext is written into
   * `batch.plain` at the offset of its ciphertext. Returns, per message of the batch, whether its
   * tag verified (a message that fails leaves zeros there). No allocation per message.
   */
  openPacked(batch: PackedMessages, idx: ArrayLike<number>): Uint8Array {
    const { sealed, at, len, aad, aadAt, aadLen, plain } = batch;
    const ok = new Uint8Array(at.length);
    let blocks = 0;
    for (let k = 0; k < idx.length; k++) if (len[idx[k]!]! >= 0) blocks += 1 + Math.ceil(len[idx[k]!]! / 16);
    const counters = Buffer.allocUnsafe(blocks * 16);
    let o = 0;
    for (let k = 0; k < idx.length; k++) {
      const m = idx[k]!;
      if (len[m]! < 0) continue;
      const iv = at[m]! - GCM_IV_BYTES;
      const n = 1 + Math.ceil(len[m]! / 16);
      for (let j = 0; j < n; j++, o += 16) {
        for (let i = 0; i < GCM_IV_BYTES; i++) counters[o + i] = sealed[iv + i]!; // short copies: a loop costs less than Buffer.copy
        const ctr = j + 1;
        counters[o + 12] = ctr >>> 24; counters[o + 13] = (ctr >>> 16) & 0xff; counters[o + 14] = (ctr >>> 8) & 0xff; counters[o + 15] = ctr & 0xff;
      }
    }
    const ks = blocks ? this.ecb(counters) : counters;
    const g = this.ghash;
    const expect = Buffer.allocUnsafe(16);
    let ksAt = 0;
    for (let k = 0; k < idx.length; k++) {
      const m = idx[k]!;
      const c = at[m]!;
      const n = len[m]!;
      if (n < 0) continue;
      g.reset();
      const a = aadAt[m]!, aEnd = a + aadLen[m]!;
      for (let i = a; i < aEnd; i += 16) g.block(aad, i, aEnd);
      for (let i = c; i < c + n; i += 16) g.block(sealed, i, c + n);
      g.lengths(aadLen[m]!, n);
      g.write(expect, 0);
      let diff = 0;
      for (let i = 0; i < 16; i++) diff |= expect[i]! ^ ks[ksAt + i]! ^ sealed[c + n + i]!;
      if (diff === 0) {
        for (let i = 0; i < n; i++) plain[c + i] = sealed[c + i]! ^ ks[ksAt + 16 + i]!;
        ok[m] = 1;
      }
      ksAt += (1 + Math.ceil(n / 16)) * 16;
    }
    ks.fill(0); // keystream blocks would turn the ciphertexts back into numbers
    return ok;
  }
}

const allIndices = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

/**
 * Many sealed messages and their associated data, packed into two buffers (one allocation per
 * batch, not per message). `at[m]` is where message m's ciphertext starts in `sealed` (its IV is
 * the 12 bytes before, its tag the 16 after `len[m]` bytes); `plain` has the same size as
 * `sealed`, and openPacked writes each plaintext at its ciphertext's offset. Call wipe() when done.
 */
export class PackedMessages {
  readonly sealed: Buffer;
  readonly plain: Buffer;
  readonly at: Int32Array;
  readonly len: Int32Array;
  readonly aad: Buffer;
  readonly aadAt: Int32Array;
  readonly aadLen: Int32Array;

  constructor(count: number, sealedBytes: number, aadBytes: number) {
    this.sealed = Buffer.alloc(sealedBytes);
    this.plain = Buffer.alloc(sealedBytes);
    this.aad = Buffer.alloc(aadBytes);
    this.at = new Int32Array(count);
    this.len = new Int32Array(count);
    this.aadAt = new Int32Array(count);
    this.aadLen = new Int32Array(count);
  }

  static of(messages: GcmMessage[]): PackedMessages {
    const b = new PackedMessages(messages.length, messages.reduce((a, m) => a + m.sealed.length, 0), messages.reduce((a, m) => a + m.aad.length, 0));
    let s = 0, a = 0;
    messages.forEach((msg, m) => {
      msg.sealed.copy(b.sealed, s);
      msg.aad.copy(b.aad, a);
      b.place(m, s, msg.sealed.length, a, msg.aad.length);
      s += msg.sealed.length;
      a += msg.aad.length;
    });
    return b;
  }

  /** Records that message m's sealed bytes are at [s, s + sealedLength) and its aad at [a, a + aadLength). */
  place(m: number, s: number, sealedLength: number, a: number, aadLength: number): void {
    const n = sealedLength - GCM_IV_BYTES - GCM_TAG_BYTES;
    this.at[m] = s + GCM_IV_BYTES;
    this.len[m] = Math.max(0, n);
    this.aadAt[m] = a;
    this.aadLen[m] = aadLength;
    // too short to hold an IV and a tag: nothing to open (openPacked reports it as failed)
    if (n < 0) { this.at[m] = s; this.len[m] = -1; }
  }

  wipe(): void {
    this.plain.fill(0);
  }
}
