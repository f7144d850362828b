// AS2 over HTTPS: our client (verifying the server against a configured CA, presenting a client
// certificate) to our listener that requires client certificates; a client without one is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { As2Client } from '../../protocols/as2/client.ts';
import { as2EndpointSchema, loadPartnership } from '../../protocols/as2/config.ts';
import { ensureSelfSignedCert } from '../../jobs/keys.ts';
import { account, makeKey, PAYLOAD, readInbound, startListener } from './as2-helpers.ts';

test('AS2 over HTTPS with a required client certificate', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-as2-tls-'));
  const [ours, partner] = await Promise.all([makeKey(dir, 'ours'), makeKey(dir, 'partner')]);
  const server = { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key') };
  const clientTls = { cert: path.join(dir, 'client.crt'), key: path.join(dir, 'client.key') };
  await ensureSelfSignedCert(server.cert, server.key, 'localhost');
  await ensureSelfSignedCert(clientTls.cert, clientTls.key, 'partner-client');
  const stand = await startListener([{ partnerId: 'p', account: account({ keys: [{ cert: { file: ours.cert }, key: { file: ours.key } }], partnerCertificates: [{ file: partner.cert }] }) }], {
    tls: { cert: { file: server.cert }, key: { file: server.key }, ca: { file: clientTls.cert }, requireClientCert: true },
  });
  try {
    const partnership = loadPartnership('c', account({ id: 'TSUNAGI', ourId: 'PARTNER AS2', keys: [{ cert: { file: partner.cert }, key: { file: partner.key } }], partnerCertificates: [{ file: ours.cert }] }));
    const f = path.join(dir, 'TLS.dat');
    await writeFile(f, PAYLOAD);
    const endpoint = (tls: Record<string, unknown>) => as2EndpointSchema.parse({ protocol: 'as2', url: `https://127.0.0.1:${stand.port}/as2`, tls });
    const mk = (tls: Record<string, unknown>) => new As2Client({ partnership, endpoint: endpoint(tls), ledger: stand.ledger.ledger, log: pino({ level: 'silent' }) });
    await assert.rejects(mk({ ca: { file: server.cert } }).push(f, 'NOCERT.dat'));
    await mk({ ca: { file: server.cert }, cert: { file: clientTls.cert }, key: { file: clientTls.key } }).push(f, 'TLS.dat');
    const until = Date.now() + 2000;
    while (!(await readInbound(stand.spool, 'p')).has('TLS.dat') && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual((await readInbound(stand.spool, 'p')).get('TLS.dat'), PAYLOAD);
  } finally {
    await stand.stop();
  }
});
