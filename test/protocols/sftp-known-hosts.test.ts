// known_hosts parsing for our SFTP client: plain, [host]:port, hashed, patterns, @revoked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HostKeyError, isKnownHostKey, knownKeysFor } from '../../protocols/sftp/known-hosts.ts';

const keyA = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'base64');
const keyB = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB', 'base64');
const line = (hosts: string, key: Buffer) => `${hosts} ssh-ed25519 ${key.toString('base64')}`;

test('known_hosts matching', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-kh-'));
  try {
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[sftp.card.example]:2222').digest('base64')}`;
    const file = path.join(dir, 'known_hosts');
    await writeFile(
      file,
      [
        '# comment',
        line('centre.example,10.0.0.5', keyA),
        line('[centre.example]:2022', keyB),
        line(hashed, keyA),
        line('*.wild.example,!bad.wild.example', keyA),
        `@revoked ${line('*', keyB)}`,
        `@cert-authority ${line('*', keyA)}`,
      ].join('\n'),
    );
    assert.ok(isKnownHostKey(knownKeysFor(file, 'centre.example', 22), keyA));
    assert.ok(!isKnownHostKey(knownKeysFor(file, 'centre.example', 22), keyB));
    assert.ok(!isKnownHostKey(knownKeysFor(file, 'centre.example', 2022), keyB), 'revoked everywhere');
    assert.ok(isKnownHostKey(knownKeysFor(file, 'sftp.card.example', 2222), keyA), 'hashed entry');
    assert.ok(!isKnownHostKey(knownKeysFor(file, 'sftp.card.example', 22), keyA), 'hashed entry is per port');
    assert.ok(isKnownHostKey(knownKeysFor(file, 'a.wild.example', 22), keyA));
    assert.ok(!isKnownHostKey(knownKeysFor(file, 'bad.wild.example', 22), keyA), 'negated pattern');
    assert.ok(!isKnownHostKey(knownKeysFor(file, 'unknown.example', 22), keyA), 'cert-authority lines are not host keys');
    assert.throws(() => knownKeysFor(path.join(dir, 'missing'), 'x', 22), HostKeyError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
