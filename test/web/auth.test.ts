// TOTP against RFC 6238's own test vectors, its drift window and replay refusal; scrypt hashes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { base32Decode, base32Encode, hotp, totp, verifyTotp, otpauthUri, STEP_SECONDS } from '../../web/auth/totp.ts';
import { hashPassword, verifyPassword } from '../../web/auth/password.ts';

describe('TOTP (RFC 6238)', () => {
  it('matches the RFC 6238 appendix B vectors for HMAC-SHA1, -SHA256 and -SHA512', () => {
    const keys = { sha1: Buffer.from('12345678901234567890'), sha256: Buffer.from('12345678901234567890123456789012'), sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234') };
    const vectors: [number, string, string, string][] = [
      [59, '94287082', '46119246', '90693936'],
      [1111111109, '07081804', '68084774', '25091201'],
      [1111111111, '14050471', '67062674', '99943326'],
      [1234567890, '89005924', '91819424', '93441116'],
      [2000000000, '69279037', '90698825', '38618901'],
      [20000000000, '65353130', '77737706', '47863826'],
    ];
    for (const [t, sha1, sha256, sha512] of vectors) {
      const step = Math.floor(t / STEP_SECONDS);
      assert.equal(hotp(keys.sha1, step, 8, 'sha1'), sha1, `sha1 T=${t}`);
      assert.equal(hotp(keys.sha256, step, 8, 'sha256'), sha256, `sha256 T=${t}`);
      assert.equal(hotp(keys.sha512, step, 8, 'sha512'), sha512, `sha512 T=${t}`);
    }
  });

  it('base32 round-trips (RFC 4648 vectors) and the 6-digit code is the low digits of the same HOTP', () => {
    assert.equal(base32Encode(Buffer.from('foobar')), 'MZXW6YTBOI');
    assert.equal(base32Decode('MZXW6YTBOI======').toString(), 'foobar');
    const secret = base32Encode(Buffer.from('12345678901234567890'));
    assert.equal(totp(secret, 59_000), '287082');
  });

  it('accepts one step of drift either side, refuses older codes and a code used already', () => {
    const secret = base32Encode(Buffer.from('12345678901234567890'));
    const now = 1_111_111_111_000;
    const step = Math.floor(now / 30_000);
    assert.equal(verifyTotp(secret, totp(secret, now), now), step);
    assert.equal(verifyTotp(secret, totp(secret, now - 30_000), now), step - 1);
    assert.equal(verifyTotp(secret, totp(secret, now + 30_000), now), step + 1);
    assert.equal(verifyTotp(secret, totp(secret, now - 90_000), now), null, 'too old');
    assert.equal(verifyTotp(secret, totp(secret, now), now, step), null, 'replayed');
    assert.equal(verifyTotp(secret, 'abcdef', now), null);
    assert.match(otpauthUri('tsunagi', 'ops', secret), /^otpauth:\/\/totp\/tsunagi%3Aops\?secret=[A-Z2-7]+&issuer=tsunagi&algorithm=SHA1&digits=6&period=30$/);
  });
});

describe('passwords (scrypt)', () => {
  it('verifies the right password only, with a fresh salt each time', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    assert.notEqual(a, b);
    assert.match(a, /^scrypt\$16384\$8\$1\$/);
    assert.equal(await verifyPassword('correct horse', a), true);
    assert.equal(await verifyPassword('correct horsf', a), false);
    assert.equal(await verifyPassword('x', 'plain'), false);
  });
});
