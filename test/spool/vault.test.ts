// The card vault: batch AES-256-GCM is standard GCM (Node's own cipher opens what it seals and the
// other way round), a tampered or moved entry does not open, lookups by HMAC, every decryption
// audited; and the config refuses a utility without the vault or with a card company it lacks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BatchGcm } from '../../spool/vault/gcm-batch.ts';
import { Vault, VaultError } from '../../spool/vault/vault.ts';
import { KeyRing, kekFromBytes } from '../../spool/keys.ts';
import { sqliteLedger } from '../helpers/ledgers.ts';
import { ConfigError, parseConfig } from '../../jobs/config.ts';

test('BatchGcm seals and opens exactly as AES-256-GCM does', () => {
  const key = randomBytes(32);
  const gcm = new BatchGcm(key);
  for (let n = 0; n < 300; n++) {
    const plain = randomBytes(n % 70);
    const aad = randomBytes((n * 7) % 45);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(aad);
    const sealed = Buffer.concat([iv, c.update(plain), c.final(), c.getAuthTag()]);
    assert.deepEqual(gcm.openMany([{ sealed, aad }])[0], plain);
    const mine = gcm.sealMany([plain], [aad])[0]!;
    const d = createDecipheriv('aes-256-gcm', key, mine.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(mine.subarray(mine.length - 16));
    assert.deepEqual(Buffer.concat([d.update(mine.subarray(12, mine.length - 16)), d.final()]), plain);
    const tampered = Buffer.from(mine);
    tampered[12 + (n % Math.max(1, plain.length + 16))]! ^= 1;
    assert.equal(gcm.openMany([{ sealed: tampered, aad }])[0], null);
  }
});

test('vault: sealed under a data key the KEK wraps, found by HMAC, bound to its customer, every decryption audited', async () => {
  const { ledger, dispose } = await sqliteLedger();
  try {
    const ring = new KeyRing(kekFromBytes(randomBytes(32)));
    const vault = await Vault.open(ledger, ring);
    const sealed = vault.seal('u1', 'K1', { cardNo: '4111111111111111', expiry: '3012' });
    assert.ok(!Buffer.from(sealed.enc, 'base64').toString('latin1').includes('4111111111111111'));
    const wrapped = await ledger.db('vault_keys').first();
    assert.ok(wrapped && !JSON.stringify(wrapped).includes(Buffer.from('4111').toString('hex')));
    const again = await Vault.open(ledger, ring); // same data key from the ledger
    assert.deepEqual(await again.openMany([{ partnerId: 'u1', customerNo: 'K1', ...sealed }], { job: 'test', fileId: 'F1', partnerId: 'u1', purpose: 'test' }), [{ cardNo: '4111111111111111', expiry: '3012' }]);
    assert.equal(vault.hmac('4111111111111111'), again.hmac('4111111111111111'));
    assert.notEqual(vault.hmac('4111111111111111'), vault.hmac('4111111111111112'));
    await assert.rejects(vault.openMany([{ partnerId: 'u1', customerNo: 'K2', ...sealed }], { job: 'test', fileId: 'F1', partnerId: 'u1', purpose: 'moved' }), VaultError);
    const audit = await ledger.db('vault_audit').orderBy('id');
    assert.deepEqual(audit.map((a: { job: string; file_id: string; count: number }) => [a.job, a.file_id, a.count]), [['test', 'F1', 1], ['test', 'F1', 1]]);
    // another KEK cannot unwrap the data key
    await assert.rejects(Vault.open(ledger, new KeyRing(kekFromBytes(randomBytes(32)))));
  } finally {
    await dispose();
  }
});

test('config: a utility needs the vault and merchant numbers at configured card companies', () => {
  const base = (extra: string, vault = 'vault: { kek: { env: K } }') => `centre: { code: "0000000001", name: C }
${vault}
partners:
  - { id: cc1, name: CC, role: card-company, code: "2000000001", cardCompanyCodes: ["001"] }
  - { id: u1, name: U, role: utility, code: "3000000001", send: ["21", "23"], receive: ["22", "24"]${extra} }
`;
  assert.ok(parseConfig(base(', utility: { merchantNos: { "001": "300000000000001" }, validity: { schedule: "0 1 1 * *" } }'), 'ok.yaml'));
  const problems = (text: string) => { try { parseConfig(text, 'bad.yaml'); return ''; } catch (err) { assert.ok(err instanceof ConfigError); return err.problems.join('\n'); } };
  assert.match(problems(base('')), /partners\[1\]\.utility.*merchant number/);
  assert.match(problems(base(', utility: { merchantNos: { "009": "300000000000001" } }')), /card-company code 009 is not configured/);
  assert.match(problems(base(', utility: { merchantNos: { "001": "300000000000001" } }', '')), /vault.*key-encryption key/);
  assert.match(problems(base(', utility: { merchantNos: { "001": "300000000000001" } }').replace('receive: ["22", "24"]', 'receive: ["33"]')), /a utility receives 22, 24, 91, not 33/);
});
