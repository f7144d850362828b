// Implicit TLS on its own port: without client certificates, with a required client certificate,
// a certificate from another CA refused, and an account pinned to a certificate fingerprint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { ZenginError } from '../../protocols/zengin/primary.ts';
import { Result } from '../../protocols/zengin/messages.ts';
import { listAudit } from '../../spool/ledger/audit.ts';
import { makeFile, startHarness, type Harness } from './zengin-helpers.ts';
import { checkFramesRunningPastWhatWasSent } from './zengin-raw.ts';

let pki: string;
const file = (name: string) => ({ file: path.join(pki, name) });

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
}

function issue(name: string, cn: string, ca: string, san?: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const ext = `${name}.ext`;
  execFileSync('sh', ['-c', `printf '%s\\n' '${san ? `subjectAltName=${san}` : 'extendedKeyUsage=clientAuth'}' > ${ext}`], { cwd: pki });
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext);
}

before(async () => {
  pki = await mkdtemp(path.join(os.tmpdir(), 'zengin-pki-'));
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-subj', `/CN=${ca}`, '-days', '2');
  }
  issue('server', 'localhost', 'ca', 'IP:127.0.0.1,DNS:localhost');
  issue('client', 'merchant1', 'ca');
  issue('wrong-client', 'merchant1', 'other-ca');
});

after(async () => {
  await rm(pki, { recursive: true, force: true });
});

async function tlsHarness(requireClientCert: boolean, account: object = {}): Promise<Harness> {
  return startHarness({
    listener: { tlsPort: 0, tls: { cert: file('server.crt'), key: file('server.key'), ca: requireClientCert ? file('ca.crt') : undefined, requireClientCert } },
    account,
  });
}

async function pushOver(h: Harness, tls: object | undefined, port = h.listener.tlsPort): Promise<void> {
  const data = makeFile('31', 500, 200);
  const src = path.join(h.dir, `src-${Math.random()}`);
  await writeFile(src, data);
  const client = new ZenginClient(await h.endpoint({ port, tls, restartAttempts: 0 }));
  await client.push(src, '31');
  let found = false;
  for (const f of await h.inbound()) found ||= (await readFile(path.join(h.spool.inbound('merchant1'), f))).equals(data);
  assert.ok(found, 'the pushed bytes landed');
}

/** Refused by TLS (handshake or alert), not by a 全銀 result code. */
const tlsRefusal = (err: Error) => {
  assert.ok(!(err instanceof ZenginError), err.message);
  assert.match(err.message, /certificate|alert|handshake|connection/i);
  return true;
};

test('TLS without client certificates: a push lands; a client that does not trust the server refuses it', async () => {
  const h = await tlsHarness(false);
  try {
    assert.ok(h.listener.tlsPort > 0 && h.listener.port > 0);
    await pushOver(h, { ca: file('ca.crt') });
    assert.equal((await h.inbound()).length, 1);
    assert.ok((await listAudit(h.ledger)).some((r) => r.event === 'login_ok' && String(r.detail).includes('tls=true')));
    await assert.rejects(pushOver(h, { ca: file('other-ca.crt') }), /certificate/i);
    // The plain port is a separate listener and still speaks plain TCP.
    await pushOver(h, undefined, h.listener.port);
    assert.equal((await h.inbound()).length, 2);
  } finally {
    await h.close();
  }
});

test('TLS with a required client certificate: the right one logs in, none or another CA\'s is refused', async () => {
  const h = await tlsHarness(true);
  try {
    await pushOver(h, { ca: file('ca.crt'), cert: file('client.crt'), key: file('client.key') });
    assert.equal((await h.inbound()).length, 1);
    await assert.rejects(pushOver(h, { ca: file('ca.crt') }), tlsRefusal);
    await assert.rejects(pushOver(h, { ca: file('ca.crt'), cert: file('wrong-client.crt'), key: file('wrong-client.key') }), tlsRefusal);
    assert.equal((await h.inbound()).length, 1);
  } finally {
    await h.close();
  }
});

test('an account pinned to a client certificate: another valid certificate or the plain port is refused at 開局', async () => {
  const fingerprint = new X509Certificate(await readFile(path.join(pki, 'client.crt'))).fingerprint256;
  const h = await tlsHarness(true, { clientCertFingerprint: fingerprint, clientCertSubject: 'merchant1' });
  try {
    await pushOver(h, { ca: file('ca.crt'), cert: file('client.crt'), key: file('client.key') });
    await assert.rejects(pushOver(h, undefined, h.listener.port), (e: unknown) => e instanceof ZenginError && e.result === Result.other && e.stage === '開局');
    issue('client2', 'merchant1', 'ca');
    await assert.rejects(
      pushOver(h, { ca: file('ca.crt'), cert: file('client2.crt'), key: file('client2.key') }),
      (e: unknown) => e instanceof ZenginError && e.result === Result.other && e.stage === '開局',
    );
    assert.equal((await h.inbound()).length, 1);
  } finally {
    await h.close();
  }
});

test('an account with requireTls: refused on the plain port (0x99, audited), accepted over TLS; the listener defaults to loopback', async () => {
  const h = await tlsHarness(false, { requireTls: true });
  try {
    const data = makeFile('31', 10, 200);
    const src = path.join(h.dir, 'plain.dat');
    await writeFile(src, data);
    const plain = new ZenginClient(await h.endpoint({ port: h.listener.port, restartAttempts: 0 }));
    await assert.rejects(plain.push(src, '31'), (e: unknown) => e instanceof ZenginError && e.result === Result.other);
    const rows = await listAudit(h.ledger, { protocol: 'zengin' });
    assert.ok(rows.some((r) => r.event === 'login_refused' && /must log in over TLS/.test(String(r.detail))));
    await pushOver(h, { ca: file('ca.crt'), servername: 'localhost' });
  } finally {
    await h.close();
  }
  const { zenginListenerSchema } = await import('../../protocols/zengin/config.ts');
  assert.equal(zenginListenerSchema.parse({ ownCode: 'F0F0F0F0F00001' }).host, '127.0.0.1');
});

test('over TLS too: a message whose length runs past what was sent is held no longer than the inactivity timeout; a control header of another length is refused at once', async () => {
  const h = await startHarness({
    listener: { inactivitySeconds: 1, maxUnauthenticatedPerAddress: 10, tlsPort: 0, tls: { cert: file('server.crt'), key: file('server.key') } },
  });
  try {
    await checkFramesRunningPastWhatWasSent(h.listener.tlsPort, 1000, await readFile(path.join(pki, 'ca.crt')));
  } finally {
    await h.close();
  }
});
