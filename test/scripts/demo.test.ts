// `tsunagi demo` end to end: SFTP both ways, 全銀TCP/IP both ways, HULFT (stand-in) both ways, local pushes, EBCDIC output,
// Jmanager and reconciliation, on the embedded runner.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

describe('tsunagi demo', () => {
  let dir: string;
  after(async () => dir && rm(dir, { recursive: true, force: true }));

  it('runs a full cycle with every partner protocol and says where the outputs are', async () => {
    dir = path.join(await mkdtemp(path.join(tmpdir(), 'tsunagi-demo-test-')), 'centre');
    // The demo keeps its portal up until Ctrl-C: check the portal answers, then stop it.
    const child = spawn(process.execPath, [path.resolve('bin/tsunagi.js'), 'demo', '--dir', dir], { env: { ...process.env, TSUNAGI_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('stays up until Ctrl-C')) resolve();
      });
      void exited.then((code) => reject(new Error(`demo exited (${code}) before starting its portal:\n${stdout}`)));
    });
    const portal = /portal \(Web-JTRANS, self-signed certificate\): (https:\/\/127\.0\.0\.1:\d+)\/login/.exec(stdout);
    assert.ok(portal, stdout);
    assert.match(stdout, /merchant login: demo-tokyo \/ \S{16}/);
    const { stdout: login } = await run('curl', ['-sSfk', `${portal[1]}/login`]);
    assert.match(login, /ログイン/);
    const { stdout: health } = await run('curl', ['-sSfk', `${portal[1]}/healthz`]);
    assert.equal(JSON.parse(health).ok, true);
    child.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.match(stdout, /m-tokyo uploaded URIAGE_001\.dat over SFTP/);
    assert.match(stdout, /m-osaka sent SALES\.dat over 全銀TCP\/IP as URIAGE000002/);
    assert.match(stdout, /m-osaka received HENKYAKU0002 over 全銀TCP\/IP/);
    // AS2: m-nagoya's 31 in with a signed async MDN; cc-gamma's 32 out with a signed sync MDN.
    assert.match(stdout, /m-nagoya sent URIAGE_NGY\.dat over AS2 .*async MDN reached its receipt URL: automatic-action\/MDN-sent-automatically; processed/);
    assert.ok((await readdir(path.join(dir, 'cc-gamma-as2', 'partners', 'tsunagi', 'inbound'))).some((n) => n.startsWith('T32_')));
    assert.match(stdout, /deliveries failed\s+0/);
    // the utility bills through two card companies delivered by one partner (cc-alpha): one 32 of 19 sales
    assert.match(stdout, /cc-alpha got 19 sales of u-city in its 32/);
    assert.doesNotMatch(stdout, /delivery failed/);
    assert.match(stdout, /reconciliation of \d{8}: 4 discrepancies/);
    // The card company's own SFTP server got its 32 files; the mainframe company got EBCDIC.
    const alpha = await readdir(path.join(dir, 'cc-alpha-server', 'partners', 'tsunagi', 'inbound'));
    assert.ok(alpha.filter((n) => n.startsWith('T32_')).length >= 1, alpha.join(','));
    // cc-beta is on HULFT (the stand-in): its HULFT received our files under its receive file ID, by generation.
    const betaDir = path.join(dir, 'cc-beta-hulft', 'rcv');
    const beta = await Promise.all((await readdir(betaDir)).filter((n) => /^TSG32B\.\d{4}$/.test(n)).map((n) => readFile(path.join(betaDir, n))));
    const ebcdic = beta.find((b) => b[0] === 0xf1 && b[1] === 0xf3 && b[2] === 0xf2)!;
    assert.ok(ebcdic, 'an EBCDIC 32 reached cc-beta over HULFT');
    assert.equal(ebcdic.length % 120, 0, 'no line ends');
    assert.match(stdout, /cc-beta sent its 33 results over HULFT \(stand-in\)/);
    assert.ok((await readdir(path.join(dir, 'm-tokyo-office', 'received'))).some((n) => n.startsWith('T33_')), "cc-beta's results reached the merchant");
    // Both merchants got their rejection notices through their protocols.
    assert.ok((await readdir(path.join(dir, 'm-tokyo-office', 'received'))).some((n) => n.startsWith('T91_')));
    const notice = await readFile(path.join(dir, 'm-osaka-office', 'received', 'HENKYAKU0002.dat'));
    assert.equal(notice.length % 120, 0);
    assert.equal(notice.subarray(1, 3).toString(), '91');
    // No whole card number anywhere in what the demo printed.
    assert.doesNotMatch(stdout, /\b(4111111111111111|5555555555554444)\b/);
  });
});
