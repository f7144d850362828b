import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encode } from 'iconv-lite';
import {
  CHUNK_OVERHEAD, EncryptedFileError, EncryptedFileReader, EncryptedFileWriter, EncryptedSyncWriter, HEADER_BYTES,
  createSpoolReadStream, encryptInPlace, isEncryptedFile, kekIdsOf, openSpoolFile, registerSpoolKeys, rewrapFile, spoolFileSize,
} from '../../spool/encrypted-file.ts';
import { KeyRing, kekFromBytes } from '../../spool/keys.ts';
import { RecordFileWriter, readRecords } from '../../formats/index.ts';
import { sha256File } from '../../spool/checksum.ts';
import { beginLanding } from '../../spool/landing.ts';

const CHUNK = 1 << 16;
const CARD = '4111111111111111';
const ring = new KeyRing(kekFromBytes(randomBytes(32)));

/** Shift_JIS records (漢字 and half-width kana) with a whole card number in each. */
function sjisRecords(n: number): Buffer {
  const lines: Buffer[] = [];
  for (let i = 0; i < n; i++) lines.push(encode(`2${String(i).padStart(6, '0')}${CARD}ﾄｳｷｮｳ東京都千代田区${'　'.repeat(3)}\r\n`, 'shift_jis'));
  return Buffer.concat(lines);
}

/** The plaintext of `file`: with `ring` given, or through the spool registry (null). */
async function readAll(file: string, with_: KeyRing | null = ring): Promise<Buffer> {
  const parts: Buffer[] = [];
  const stream = with_ ? (await EncryptedFileReader.open(file, with_)).createReadStream() : await createSpoolReadStream(file);
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function writeEncrypted(file: string, data: Buffer, pieces = 7, under: KeyRing = ring): Promise<void> {
  const w = await EncryptedFileWriter.create(file, under);
  const step = Math.max(1, Math.ceil(data.length / pieces));
  for (let o = 0; o < data.length; o += step) await w.write(data.subarray(o, o + step));
  await w.finish();
}

describe('spool/encrypted-file: chunked AES-256-GCM at rest', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-enc-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('round-trips Shift_JIS records of every size around the chunk edges; the disk holds no card number', async () => {
    const sjis = sjisRecords(3000);
    for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, sjis.length]) {
      const data = sjis.subarray(0, size);
      const file = path.join(dir, `rt-${size}`);
      await writeEncrypted(file, data);
      const disk = await readFile(file);
      assert.equal(disk.indexOf(CARD), -1, `size ${size}: card number on disk`);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.ok(await isEncryptedFile(file));
      assert.equal(await spoolFileSize(file), size);
      assert.ok(disk.length === HEADER_BYTES + Math.max(1, Math.ceil(size / CHUNK)) * CHUNK_OVERHEAD + size, `size ${size}: ${disk.length}`);
      assert.ok((await readAll(file)).equals(data), `size ${size}`);
    }
  });

  it('reads any byte range (what an SFTP READ at an offset or an FTP REST needs)', async () => {
    const data = sjisRecords(4000);
    const file = path.join(dir, 'range');
    await writeEncrypted(file, data);
    const r = await EncryptedFileReader.open(file, ring);
    try {
      for (const [at, len] of [[0, 10], [CHUNK - 5, 10], [CHUNK, CHUNK], [3 * CHUNK + 17, 2 * CHUNK + 3], [data.length - 3, 100], [data.length, 10]] as const) {
        const buf = Buffer.alloc(len);
        const { bytesRead } = await r.read(buf, 0, len, at);
        assert.ok(buf.subarray(0, bytesRead).equals(data.subarray(at, at + len)), `range ${at}+${len}`);
      }
    } finally {
      await r.close();
    }
    const parts: Buffer[] = [];
    for await (const c of (await EncryptedFileReader.open(file, ring)).createReadStream({ start: 100_001, end: 200_000 })) parts.push(c as Buffer);
    assert.ok(Buffer.concat(parts).equals(data.subarray(100_001, 200_001)));
  });

  it('refuses a flipped byte, a truncated chunk, a dropped last chunk and swapped chunks, naming the file', async () => {
    const data = sjisRecords(3000);
    const stride = CHUNK + CHUNK_OVERHEAD;
    const cases: [string, (b: Buffer) => Buffer][] = [
      ['flip', (b) => { b[HEADER_BYTES + stride + 500]! ^= 1; return b; }],
      ['cut-mid', (b) => b.subarray(0, b.length - 100)],
      ['cut-at-chunk', (b) => b.subarray(0, HEADER_BYTES + 2 * stride)],
      ['swap', (b) => {
        const x = Buffer.from(b.subarray(HEADER_BYTES, HEADER_BYTES + stride));
        b.copy(b, HEADER_BYTES, HEADER_BYTES + stride, HEADER_BYTES + 2 * stride);
        x.copy(b, HEADER_BYTES + stride);
        return b;
      }],
      ['salt', (b) => { b[20]! ^= 0x80; return b; }],
    ];
    for (const [name, damage] of cases) {
      const file = path.join(dir, `tamper-${name}`);
      await writeEncrypted(file, data);
      await writeFile(file, damage(await readFile(file)));
      await assert.rejects(readAll(file), (e: Error) => e instanceof EncryptedFileError && e.message.startsWith(file) && /authenticat|truncated|cut short/.test(e.message), name);
    }
  });

  it('takes pipelined writes that arrive out of order, and refuses a write that goes back', async () => {
    const data = sjisRecords(2000);
    const file = path.join(dir, 'ooo');
    const w = await EncryptedFileWriter.create(file, ring);
    const pieces: [number, Buffer][] = [];
    for (let o = 0; o < data.length; o += 32 * 1024) pieces.push([o, data.subarray(o, o + 32 * 1024)]);
    const order = [1, 0, 3, 2, ...pieces.slice(4).map((_, i) => i + 4)];
    await Promise.all(order.map((i) => w.write(pieces[i]![1], 0, pieces[i]![1].length, pieces[i]![0])));
    await assert.rejects(w.write(Buffer.from('x'), 0, 1, 10), /written in order/);
    await w.finish();
    assert.ok((await readAll(file)).equals(data));
  });

  it('checkpoints an unfinished file and resumes it (the 全銀 partial file)', async () => {
    const data = sjisRecords(3000);
    const file = path.join(dir, 'partial');
    const w = await EncryptedFileWriter.create(file, ring);
    const cut = 100_000; // in the middle of chunk 1
    await w.write(data.subarray(0, cut + 5000));
    await w.checkpoint();
    await w.close();
    const r = await EncryptedFileWriter.resume(file, ring, cut);
    assert.equal(r.plainBytes, cut);
    await r.write(data.subarray(cut));
    await r.finish();
    assert.ok((await readAll(file)).equals(data));
  });

  it('rotates the KEK by rewriting the header only; old files still decrypt, and not without a loaded key', async () => {
    const oldKek = kekFromBytes(randomBytes(32));
    const newKek = kekFromBytes(randomBytes(32));
    const data = sjisRecords(2500);
    const file = path.join(dir, 'rotate');
    await writeEncrypted(file, data, 1, new KeyRing(oldKek));
    const before = await readFile(file);
    const rotating = new KeyRing(newKek, [oldKek]);
    assert.equal(await rewrapFile(file, rotating), 'rewrapped');
    assert.equal(await rewrapFile(file, rotating), 'current');
    const after = await readFile(file);
    assert.equal(after.length, before.length);
    assert.ok(after.subarray(HEADER_BYTES).equals(before.subarray(HEADER_BYTES)), 'data bytes were rewritten');
    assert.deepEqual(await kekIdsOf(file), [newKek.id]);
    assert.ok((await readAll(file, new KeyRing(newKek))).equals(data));
    await assert.rejects(EncryptedFileReader.open(file, new KeyRing(oldKek)), (e: Error) => e instanceof EncryptedFileError && e.message.includes(newKek.id) && e.message.includes(file));
  });

  it('a rotation interrupted after the new wrap was synced still reads with either key, and the next run finishes it', async () => {
    const oldKek = kekFromBytes(randomBytes(32));
    const newKek = kekFromBytes(randomBytes(32));
    const data = sjisRecords(10);
    const file = path.join(dir, 'rotate-crash');
    await writeEncrypted(file, data, 1, new KeyRing(oldKek));
    const original = await readFile(file);
    const rotating = new KeyRing(newKek, [oldKek]);
    await rewrapFile(file, rotating);
    // The crash state: the new wrap is in the second slot, the old one not yet cleared from the first.
    const crashed = await readFile(file);
    original.copy(crashed, 28, 28, 28 + 69);
    await writeFile(file, crashed);
    assert.deepEqual((await kekIdsOf(file)).sort(), [oldKek.id, newKek.id].sort());
    for (const only of [oldKek, newKek]) assert.ok((await readAll(file, new KeyRing(only))).equals(data));
    assert.equal(await rewrapFile(file, rotating), 'rewrapped');
    assert.deepEqual(await kekIdsOf(file), [newKek.id]);
  });

  it('formats writes and reads through it when the spool encrypts; a plain file outside reads as before', async () => {
    const root = path.join(dir, 'spool');
    await import('node:fs/promises').then((fs) => fs.mkdir(path.join(root, 'work'), { recursive: true }));
    const undo = registerSpoolKeys(root, ring);
    try {
      const file = path.join(root, 'work', 'out.dat');
      const w = new RecordFileWriter(file, 'crlf');
      const rec = encode(`2${CARD}ﾃｽﾄ`.padEnd(40, ' '), 'shift_jis');
      for (let i = 0; i < 5000; i++) w.write(rec);
      w.close();
      assert.equal((await readFile(file)).indexOf(CARD), -1);
      let n = 0;
      const res = await readRecords(file, { recordLength: rec.length, framing: 'crlf' }, (b, off) => {
        if (b.subarray(off, off + rec.length).equals(rec)) n++;
      });
      assert.equal(n, 5000);
      assert.equal(res.gridBreak, null);
      const plainOutside = path.join(dir, 'outside.dat');
      const p = new RecordFileWriter(plainOutside, 'crlf');
      p.write(rec);
      p.close();
      assert.notEqual((await readFile(plainOutside)).indexOf(CARD), -1, 'a file outside the spool stays plain');
      const { sha256, size } = await sha256File(file);
      assert.equal(size, 5000 * (rec.length + 2));
      assert.match(sha256, /^[0-9a-f]{64}$/);

      // A landing under the spool: encrypted on disk, plaintext size; a client's own plain temp is encrypted at commit.
      const inbound = path.join(root, 'partners', 'm1', 'inbound');
      await import('node:fs/promises').then((fs) => fs.mkdir(inbound, { recursive: true }));
      const landing = await beginLanding(inbound, 'UPLOAD.dat');
      const data = sjisRecords(1000);
      await landing.handle.write(data.subarray(0, 40_000), 0, 40_000, 0);
      await landing.handle.write(data.subarray(40_000), 0, data.length - 40_000, 40_000);
      const landed = await landing.commit();
      assert.equal(landed.size, data.length);
      assert.equal((await readFile(landed.path)).indexOf(CARD), -1);
      assert.ok((await readAll(landed.path, null)).equals(data));
      const pulled = await beginLanding(inbound, 'PULLED.dat');
      await pulled.release();
      await writeFile(pulled.tempPath, data);
      const got = await pulled.commit();
      assert.equal((await readFile(got.path)).indexOf(CARD), -1);
      assert.ok((await readAll(got.path)).equals(data));
    } finally {
      undo();
    }
  });

  it('encryptInPlace encrypts a plain file once; openSpoolFile reads plain and encrypted alike', async () => {
    const data = sjisRecords(300);
    const file = path.join(dir, 'inplace');
    await writeFile(file, data);
    const plain = await openSpoolFile(file);
    assert.equal(plain.size, data.length);
    await plain.close();
    await encryptInPlace(file, ring);
    const once = await readFile(file);
    await encryptInPlace(file, ring);
    assert.ok((await readFile(file)).equals(once));
    const undo = registerSpoolKeys(dir, ring);
    try {
      assert.ok((await readAll(file, null)).equals(data));
    } finally {
      undo();
    }
    await assert.rejects(readAll(file, null), /no key-encryption key is loaded/);
  });

  it('the synchronous writer (formats) makes the same format', async () => {
    const data = sjisRecords(900);
    const file = path.join(dir, 'sync');
    const w = new EncryptedSyncWriter(file, ring);
    for (let o = 0; o < data.length; o += 1000) w.write(data.subarray(o, o + 1000));
    w.close();
    const r = await EncryptedFileReader.open(file, ring);
    const buf = Buffer.alloc(data.length + 10);
    const { bytesRead } = await r.read(buf, 0, buf.length, 0);
    await r.close();
    assert.equal(bytesRead, data.length);
    assert.ok(buf.subarray(0, bytesRead).equals(data));
    await truncate(file, (await stat(file)).size - 1);
    await assert.rejects(EncryptedFileReader.open(file, ring).then((x) => x.read(Buffer.alloc(10), 0, 10, data.length - 5)), EncryptedFileError);
  });
});
