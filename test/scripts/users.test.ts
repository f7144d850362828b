// `tsunagi users add|list|reset|disable|enable` through the CLI, and listeners.web's refusal of
// plain HTTP off loopback.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig, ConfigError } from '../../jobs/config.ts';
import { openLedger } from '../../spool/ledger/index.ts';
import { verifyPassword } from '../../web/auth/password.ts';

import { main } from '../../scripts/cli.ts';

/** The CLI in this process (a spawn per command costs seconds on a loaded machine), output captured. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => (err.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
}

const CONFIG = `
centre: { code: "0000000001", name: TEST }
ledger: sqlite:./ledger.db
partners:
  - { id: m-a, name: A, role: merchant, code: "1000000001", merchantNos: ["1"], send: ["31"], web: { totp: required } }
  - { id: m-b, name: B, role: merchant, code: "1000000002", merchantNos: ["2"], send: ["31"] }
  - { id: cc, name: C, role: card-company, code: "2000000001", cardCompanyCodes: ["001"] }
`;

describe('tsunagi users', () => {
  let dir: string;
  after(async () => dir && rm(dir, { recursive: true, force: true }));

  it('adds, lists, resets, disables and enables portal users; passwords only as scrypt hashes', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-users-'));
    const config = path.join(dir, 'tsunagi.yaml');
    await writeFile(config, CONFIG);
    const add = await cli(['users', 'add', 'alice', '--partner', 'm-b', '--config', config, '--json']);
    assert.equal(add.code, 0, add.stderr);
    const alice = JSON.parse(add.stdout);
    assert.equal(alice.totpSecret, null, 'TOTP optional for m-b');
    const bob = JSON.parse((await cli(['users', 'add', 'bob', '--partner', 'm-a', '--config', config, '--json'])).stdout);
    assert.match(bob.totpSecret, /^[A-Z2-7]{32}$/, 'm-a requires TOTP');
    const ops = JSON.parse((await cli(['users', 'add', 'ops', '--operator', '--config', config, '--json'])).stdout);
    assert.match(ops.totpUri, /^otpauth:\/\/totp\//, 'operators always get TOTP');
    assert.equal((await cli(['users', 'add', 'carol', '--partner', 'cc', '--config', config])).code, 2, 'card companies have no portal users');
    assert.equal((await cli(['users', 'add', 'alice', '--partner', 'm-b', '--config', config])).code, 2, 'twice');
    const reset = JSON.parse((await cli(['users', 'reset', 'alice', '--totp', '--config', config, '--json'])).stdout);
    assert.notEqual(reset.password, alice.password);
    assert.match(reset.totpSecret, /^[A-Z2-7]{32}$/);
    assert.equal((await cli(['users', 'disable', 'alice', '--config', config])).code, 0);
    const list = (await cli(['users', 'list', '--config', config, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(list.map((u: { user: string; disabled: string; totp: string }) => [u.user, u.disabled, u.totp]), [['alice', 'yes', 'yes'], ['bob', 'no', 'yes'], ['ops', 'no', 'yes']]);
    assert.equal((await cli(['users', 'enable', 'alice', '--config', config])).code, 0);
    assert.match((await cli(['users', 'list', '--partner', 'm-b', '--config', config])).stdout, /alice\s+m-b\s+merchant\s+yes\s+no/);
    const ledger = await openLedger(`sqlite:${path.join(dir, 'ledger.db')}`);
    try {
      const row = await ledger.db('web_users').where({ username: 'alice' }).first();
      assert.match(row.password_hash, /^scrypt\$/);
      assert.equal(await verifyPassword(reset.password, row.password_hash), true);
      assert.ok(!JSON.stringify(await ledger.db('web_users')).includes(reset.password));
    } finally {
      await ledger.close();
    }
  });

  it('refuses plain HTTP for listeners.web off loopback unless allowed', () => {
    const base = 'centre: { code: "0000000001", name: T }\nlisteners:\n  web: ';
    assert.throws(() => parseConfig(`${base}{ host: 0.0.0.0, port: 8080 }\n`, 'x.yaml'), (err: ConfigError) => /listeners\.web\.tls.*plain HTTP on 0\.0\.0\.0 is refused/.test(err.message));
    assert.ok(parseConfig(`${base}{ host: 127.0.0.1, port: 8080 }\n`, 'x.yaml').listeners.web);
    assert.ok(parseConfig(`${base}{ host: 0.0.0.0, port: 8080, allowPlainHttp: true }\n`, 'x.yaml').listeners.web);
    assert.ok(parseConfig(`${base}{ host: 0.0.0.0, port: 8443, tls: { cert: { file: c.pem }, key: { file: k.pem } } }\n`, 'x.yaml').listeners.web);
  });
});
