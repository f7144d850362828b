import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  KeyError, KeyRing, WRAPPED_KEY_BYTES, checkKeyFileMode, deriveHmacKey, deriveHmacKeys, deriveKey, generateKekText,
  kekFromBytes, loadKek, newDataKey, parseKek, rewrapDataKey, unwrapDataKey, wrapDataKey, wrappedKekId, writeNewKekFile,
} from '../../spool/keys.ts';

describe('spool/keys: key-encryption keys', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-keys-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('loads a KEK from a 0600 file and refuses one readable by group or others', async () => {
    const file = path.join(dir, 'kek');
    await writeFile(file, generateKekText(), { mode: 0o600 });
    const kek = loadKek({ file });
    assert.equal(kek.key.length, 32);
    assert.match(kek.id, /^[0-9a-f]{16}$/);
    for (const mode of [0o640, 0o604, 0o660, 0o602]) {
      await chmod(file, mode);
      assert.throws(() => loadKek({ file }), (e: Error) => e instanceof KeyError && /group and others must have no access/.test(e.message));
    }
    await chmod(file, 0o400);
    assert.equal(loadKek({ file }).id, kek.id);
    assert.throws(() => checkKeyFileMode(dir), /not a regular file/);
    assert.throws(() => loadKek({ file: path.join(dir, 'missing') }), /ENOENT/);
  });

  it('loads a KEK from an environment variable, in hex or base64, and refuses short or missing ones', () => {
    const raw = randomBytes(32);
    process.env.TSUNAGI_TEST_KEK = raw.toString('hex');
    const a = loadKek({ env: 'TSUNAGI_TEST_KEK' });
    process.env.TSUNAGI_TEST_KEK = raw.toString('base64');
    const b = loadKek({ env: 'TSUNAGI_TEST_KEK' });
    assert.equal(a.id, b.id);
    assert.deepEqual(a.key, raw);
    process.env.TSUNAGI_TEST_KEK = 'correct horse battery staple';
    assert.throws(() => loadKek({ env: 'TSUNAGI_TEST_KEK' }), /not a 256-bit key/);
    delete process.env.TSUNAGI_TEST_KEK;
    assert.throws(() => loadKek({ env: 'TSUNAGI_TEST_KEK' }), /is not set/);
    assert.throws(() => parseKek(Buffer.from('00ff'), 'x'), /not a 256-bit key/);
  });

  it('writes a new key file 0600 and will not overwrite one', async () => {
    const file = path.join(dir, 'new.kek');
    const kek = await writeNewKekFile(file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(loadKek({ file }).id, kek.id);
    await assert.rejects(writeNewKekFile(file), /EEXIST/);
  });

  it('wraps and unwraps data keys with AES-256-GCM, bound to their context, refusing tampering', () => {
    const kek = kekFromBytes(randomBytes(32));
    const dataKey = newDataKey();
    const wrapped = wrapDataKey(kek, dataKey, 'spool:work/abc');
    assert.equal(wrapped.length, WRAPPED_KEY_BYTES);
    assert.equal(wrappedKekId(wrapped), kek.id);
    assert.ok(!wrapped.includes(dataKey), 'the data key is not stored in the clear');
    assert.deepEqual(unwrapDataKey(kek, wrapped, 'spool:work/abc'), dataKey);
    assert.notDeepEqual(wrapDataKey(kek, dataKey, 'spool:work/abc'), wrapped, 'a fresh IV each time');
    assert.throws(() => unwrapDataKey(kek, wrapped, 'spool:work/other'), /failed authentication/);
    for (const at of [0, 3, 12, 30, WRAPPED_KEY_BYTES - 1]) {
      const bad = Buffer.from(wrapped);
      bad[at] ^= 0x01;
      assert.throws(() => unwrapDataKey(kek, bad, 'spool:work/abc'), KeyError);
    }
    assert.throws(() => unwrapDataKey(kekFromBytes(randomBytes(32)), wrapped, 'spool:work/abc'), /not loaded/);
  });

  it('rotates: a ring unwraps keys wrapped by retired KEKs and re-wraps them under the current one', () => {
    const oldKek = kekFromBytes(randomBytes(32));
    const newKek = kekFromBytes(randomBytes(32));
    const dataKey = newDataKey();
    const wrappedOld = wrapDataKey(oldKek, dataKey);
    const ring = new KeyRing(newKek, [oldKek]);
    assert.deepEqual(unwrapDataKey(ring, wrappedOld), dataKey);
    const { wrapped, changed } = rewrapDataKey(ring, wrappedOld);
    assert.equal(changed, true);
    assert.equal(wrappedKekId(wrapped), newKek.id);
    assert.deepEqual(unwrapDataKey(new KeyRing(newKek), wrapped), dataKey, 'the old KEK is no longer needed');
    assert.equal(rewrapDataKey(ring, wrapped).changed, false);
    assert.throws(() => unwrapDataKey(new KeyRing(newKek), wrappedOld), /not loaded/);
  });

  it('loads a ring from sources', async () => {
    const cur = path.join(dir, 'cur.kek');
    await writeFile(cur, generateKekText(), { mode: 0o600 });
    process.env.TSUNAGI_TEST_OLD_KEK = randomBytes(32).toString('hex');
    const ring = KeyRing.load({ file: cur }, [{ env: 'TSUNAGI_TEST_OLD_KEK' }]);
    assert.equal(ring.all().length, 2);
    assert.equal(ring.current.id, loadKek({ file: cur }).id);
    delete process.env.TSUNAGI_TEST_OLD_KEK;
  });

  it('derives HMAC keys with HKDF: stable per KEK and purpose, unrelated across purposes and KEKs', () => {
    const raw = randomBytes(32);
    const kek = kekFromBytes(raw);
    const a = deriveHmacKey(kek, 'card-vault');
    assert.deepEqual(deriveHmacKey(kekFromBytes(Buffer.from(raw)), 'card-vault').key, a.key);
    assert.notDeepEqual(deriveHmacKey(kek, 'other').key, a.key);
    assert.notDeepEqual(a.key, raw);
    assert.equal(a.key.length, 32);
    assert.throws(() => deriveKey(kek, ''), /purpose/);
    const ring = new KeyRing(kekFromBytes(randomBytes(32)), [kek]);
    const keys = deriveHmacKeys(ring, 'card-vault');
    assert.equal(keys[0].kekId, ring.current.id);
    assert.deepEqual(keys[1].key, a.key, 'lookups still find entries keyed before a rotation');
    const mac = createHmac('sha256', a.key).update('4111111111111111').digest('hex');
    assert.equal(mac.length, 64);
  });
});
