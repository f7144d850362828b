// Operating tsunagi (issue 12): serve starts all or nothing with one clear line; check-config
// checks every file, secret, folder and certificate; a supervisor gets the real pid; --version.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureSelfSignedCert, ensureSshKeyPair } from '../../jobs/keys.ts';

const BIN = path.resolve('bin/tsunagi.js');
const run = promisify(execFile);

async function tsunagi(args: string[], env: Record<string, string> = {}, timeout = 30_000): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout });
    return { code: 0, stdout, stderr, ms: Date.now() - t0 };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, ms: Date.now() - t0 };
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function waitFor(pred: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
const connects = (port: number) => new Promise<boolean>((resolve) => {
  const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

describe('operations (issue 12)', () => {
  let dir: string;
  let busy: net.Server;
  let busyPort: number;

  const config = (listeners: string, partners = 'partners: []') => [
    'centre: { code: "0000000001", name: OPS TEST }',
    'spoolRoot: ./spool',
    'ledger: sqlite:./ledger.db',
    'queue: embedded',
    'workers: { concurrency: 1, threads: 0 }',
    'listeners:',
    listeners,
    partners,
  ].join('\n') + '\n';
  const SFTP = '  sftp: { host: 127.0.0.1, port: 0, hostKey: { file: ./keys/host_ed25519 } }';
  const FTP = '  ftp: { host: 127.0.0.1, port: 0, pasvMin: 43900, pasvMax: 43909, tls: { cert: { file: ./keys/cert.pem }, key: { file: ./keys/key.pem } } }';

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-ops-'));
    await mkdir(path.join(dir, 'keys'));
    await ensureSshKeyPair(path.join(dir, 'keys/host_ed25519'), 'test host');
    await ensureSelfSignedCert(path.join(dir, 'keys/cert.pem'), path.join(dir, 'keys/key.pem'));
    busy = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => busy.once('listening', r));
    busyPort = (busy.address() as net.AddressInfo).port;
  });
  after(async () => {
    busy.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('--version prints the version', async () => {
    const r = await tsunagi(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `tsunagi ${JSON.parse(readFileSync('package.json', 'utf8')).version}\n`);
  });

  it('serve: a listener whose port is taken stops everything, within seconds, with one line naming it', async () => {
    const file = path.join(dir, 'busy.yaml');
    await writeFile(file, config(`${SFTP}\n${FTP}\n  zengin: { host: 127.0.0.1, port: ${busyPort}, ownCode: "F0F0F0F0F0F0F1" }`));
    const r = await tsunagi(['serve', '--config', file], {}, 20_000);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`cannot start: listener zengin on 127\\.0\\.0\\.1:${busyPort} \\(listeners\\.zengin\\.port\\): address already in use; another process listens there`));
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.doesNotMatch(r.stdout, /tsunagi serving/);
  });

  it('serve: a missing host key or password file refuses to start, naming the key and the file', async () => {
    const file = path.join(dir, 'missing.yaml');
    await writeFile(file, config(
      '  sftp: { host: 127.0.0.1, port: 0, hostKey: { file: ./keys/nope_ed25519 } }\n  zengin: { host: 127.0.0.1, port: 0, ownCode: "F0F0F0F0F0F0F1" }',
      'partners:\n  - id: m1\n    name: M1\n    role: merchant\n    code: "1000000001"\n    zengin:\n      partnerCode: "F1F0F0F0F0F0F2"\n      password: { file: ./keys/m1.password }\n      files: [{ zenginName: URIAGE000001, accessKey: TOKYO1, fileType: "31", direction: send }]\n',
    ));
    const r = await tsunagi(['serve', '--config', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /listeners\.sftp\.hostKey: cannot read secret file .*keys\/nope_ed25519: ENOENT/);
    assert.match(r.stderr, /partners\[0\]\.zengin\.password: cannot read secret file .*keys\/m1\.password: ENOENT/);
  });

  it('check-config checks every file, secret, folder and certificate expiry the config names', async () => {
    const file = path.join(dir, 'check.yaml');
    await writeFile(file, config(
      `  sftp: { host: 127.0.0.1, port: 0, hostKey: { file: ./keys/nope_ed25519 } }\n${FTP}`,
      [
        'partners:',
        '  - { id: m1, name: M1, role: merchant, code: "1000000001", ftp: { password: { env: TSUNAGI_TEST_UNSET_SECRET } }, delivery: { protocol: local, path: ./no-such-folder } }',
        '  - id: cc1',
        '    name: CC1',
        '    role: card-company',
        '    code: "2000000001"',
        '    cardCompanyCodes: ["001"]',
        '    delivery: { protocol: sftp, host: 127.0.0.1, user: u, path: /in, privateKey: { file: ./keys/client_missing }, knownHosts: ./keys/known_hosts_missing }',
      ].join('\n'),
    ));
    const r = await tsunagi(['check-config', '--config', file], { TSUNAGI_TEST_UNSET_SECRET: '' });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /listeners\.sftp\.hostKey: cannot read secret file .*nope_ed25519/);
    assert.match(r.stderr, /partners\[0\]\.ftp\.password: environment variable TSUNAGI_TEST_UNSET_SECRET is not set/);
    assert.match(r.stderr, /partners\[0\]\.delivery\.path: folder .*no-such-folder does not exist/);
    assert.match(r.stderr, /partners\[1\]\.delivery\.privateKey: cannot read secret file .*client_missing/);
    assert.match(r.stderr, /partners\[1\]\.delivery\.knownHosts: cannot read file .*known_hosts_missing/);
    assert.match(r.stderr, /5 problems/);
    // The FTPS certificate is good for a year: three years on (the centre clock), it has expired.
    const ok = path.join(dir, 'ok.yaml');
    await writeFile(ok, config(`${SFTP}\n${FTP}`));
    const fine = await tsunagi(['check-config', '--config', ok]);
    assert.equal(fine.code, 0, fine.stderr);
    const later = await tsunagi(['check-config', '--config', ok], { TSUNAGI_NOW: new Date(Date.now() + 3 * 365 * 86400_000).toISOString() });
    assert.equal(later.code, 2);
    assert.match(later.stderr, /listeners\.ftp\.tls\.cert: .*cert\.pem: certificate CN=localhost expired on \d{4}-\d\d-\d\d; renew it/);
  });

  it('serve --pid-file holds the real pid (not npm\'s); SIGTERM to it stops the server and removes the file', async () => {
    const file = path.join(dir, 'pid.yaml');
    await writeFile(file, config(SFTP));
    const pidFile = path.join(dir, 'serve.pid');
    const child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--pid-file', pidFile], { stdio: 'ignore' });
    try {
      assert.ok(await waitFor(() => existsSync(pidFile), 20_000), 'pid file written');
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      assert.equal(pid, child.pid);
      process.kill(pid, 'SIGTERM');
      assert.ok(await waitFor(() => !alive(pid), 10_000), 'stopped');
      assert.ok(!existsSync(pidFile), 'pid file removed');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('npx tsunagi serve &: killing $! (npm) also stops the server', async () => {
    const file = path.join(dir, 'npx.yaml');
    await writeFile(file, config(SFTP));
    const pidFile = path.join(dir, 'npx.pid');
    const npx: ChildProcess = spawn('npx', ['--no-install', 'tsunagi', 'serve', '--config', file, '--pid-file', pidFile], { stdio: 'ignore', cwd: path.resolve('.') });
    let pid = 0;
    try {
      assert.ok(await waitFor(() => existsSync(pidFile), 30_000), 'pid file written');
      pid = Number((await readFile(pidFile, 'utf8')).trim());
      assert.notEqual(pid, npx.pid, 'the pid file holds node, not npm');
      npx.kill('SIGKILL'); // what a supervisor does to a process that does not stop
      assert.ok(await waitFor(() => !alive(pid), 10_000), `node ${pid} still running after npm ${npx.pid} was killed`);
    } finally {
      if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('the systemd unit in the repo runs node on bin/tsunagi.js directly with a pid file', async () => {
    const unit = await readFile('deploy/tsunagi.service', 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/bin\/node \S+\/bin\/tsunagi\.js serve --config \S+ --pid-file \/run\/tsunagi\/tsunagi\.pid$/m);
    assert.match(unit, /^PIDFile=\/run\/tsunagi\/tsunagi\.pid$/m);
    assert.match(unit, /^KillSignal=SIGTERM$/m);
  });
});
