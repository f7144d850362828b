// `tsunagi serve` with an AS2 listener, killed with SIGKILL after it received a message and before
// it answered: after the restart the partner sends the same message again (same Message-ID), which
// is answered `processed` and lands once; a third send is a duplicate and lands nothing more.
// The message is built with openssl (signed and encrypted), the MDNs verified with openssl.
// On SQLite or PostgreSQL by the day's rotation (TSUNAGI_CRASH_LEDGERS=both runs both).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openLedger } from '../../spool/ledger/index.ts';
import { startServe, waitUntil } from '../helpers/crash.ts';
import { crashLedger, crashLedgerKinds } from '../helpers/ledgers.ts';
import { freePort } from '../helpers/sshd.ts';
import { as2Headers, makeKey, openssl, opensslVerifyMdn, PAYLOAD, payloadEntity, post } from '../protocols/as2-helpers.ts';

for (const kind of crashLedgerKinds(1)) test(`SIGKILL of serve between receiving and answering: the partner retry lands the file once (${kind})`, { timeout: 90_000 }, async () => {
  const pg = await crashLedger(kind);
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-as2-crash-'));
  const [ours, partner] = await Promise.all([makeKey(dir, 'ours'), makeKey(dir, 'partner')]);
  const port = await freePort();
  const configFile = path.join(dir, 'tsunagi.yaml');
  await writeFile(
    configFile,
    `centre: { code: "0000000001", name: AS2 CRASH TEST }
spoolRoot: ./spool
ledger: ${pg.url ?? 'sqlite:./tsunagi.db'}
quietPeriodSeconds: 0
listeners:
  as2: { host: 127.0.0.1, port: ${port} }
partners:
  - id: m-as2
    name: AS2 MERCHANT
    role: merchant
    code: "1000000009"
    merchantNos: ["109000000000001"]
    send: ["31"]
    receive: ["91"]
    as2:
      id: MERCHANT AS2
      ourId: TSUNAGI
      keys: [{ cert: { file: ${ours.cert} }, key: { file: ${ours.key} } }]
      partnerCertificates: [{ file: ${partner.cert} }]
`,
  );
  const entity = path.join(dir, 'entity');
  await writeFile(entity, payloadEntity(PAYLOAD, 'CRASH.dat'));
  const signed = await openssl(['cms', '-sign', '-binary', '-crlfeol', '-md', 'sha256', '-signer', partner.cert, '-inkey', partner.key, '-in', entity]);
  const signedFile = path.join(dir, 'signed');
  await writeFile(signedFile, signed.subarray(signed.indexOf('Content-Type')));
  const body = await openssl(['cms', '-encrypt', '-binary', '-aes-256-cbc', '-recip', ours.cert, '-outform', 'DER', '-in', signedFile]);
  const id = `<crash-${Date.now()}@merchant>`;
  const headers = { ...as2Headers('MERCHANT AS2', 'TSUNAGI', id), 'Content-Type': 'application/pkcs7-mime; smime-type=enveloped-data' };
  // The ledger as serve makes it (its migrations first), read from here while serve runs and dies.
  const ledger = await openLedger(pg.url ?? `sqlite:${path.join(dir, 'tsunagi.db')}`);
  const db = ledger.db;
  try {
    const first = startServe(configFile, { TSUNAGI_AS2_PAUSE_BEFORE_ANSWER_MS: '20000' });
    await first.ready;
    const attempt = post(port, '/as2', headers, body).catch((err: Error) => err);
    await waitUntil('the message staged', async () => (await db('as2_received').where({ message_id: id }).first().catch(() => undefined))?.state === 'staged', 20_000);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.ok((await attempt) instanceof Error, 'the partner got no answer');
    assert.equal((await db('files').where({ partner_id: 'm-as2', direction: 'in' })).length, 0, 'nothing released before the answer');

    const second = startServe(configFile);
    await second.ready;
    const retry = await post(port, '/as2', headers, body);
    assert.equal(retry.status, 200);
    assert.match(await opensslVerifyMdn(dir, retry, ours.cert), /Disposition: automatic-action\/MDN-sent-automatically; processed\r\n/);
    await waitUntil('the file in the ledger', async () => (await db('files').where({ partner_id: 'm-as2', direction: 'in' })).length > 0, 20_000);
    const again = await post(port, '/as2', headers, body);
    assert.match(await opensslVerifyMdn(dir, again, ours.cert), /duplicate-document/);
    await new Promise((r) => setTimeout(r, 1500));
    const files = await db('files').where({ partner_id: 'm-as2', direction: 'in' });
    assert.equal(files.length, 1, 'landed exactly once');
    assert.equal(Number(files[0].size), PAYLOAD.length);
    await second.stop();
  } finally {
    await ledger.close();
    await pg.dispose();
  }
});
