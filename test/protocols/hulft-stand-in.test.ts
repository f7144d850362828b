// The HULFT stand-in itself (test/fakes/hulft: NOT HULFT) keeps to spec hulft.md §7, so that the
// tests built on it mean something: argument checks, exit statuses, TRANSMODE, GENCTL, ABNORMAL,
// JOBWAIT and the job variables.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { FAKE_HULFT_BIN, makeHulftWorld, type HulftWorld } from '../helpers/hulft.ts';

const run = promisify(execFile);

describe('HULFT stand-in', () => {
  let dir: string;
  let world: HulftWorld;
  const cmd = (name: string, args: string[], self = 'A', env: Record<string, string> = {}) =>
    run(path.join(FAKE_HULFT_BIN, name), args, { env: { ...process.env, FAKE_HULFT_ROOT: world.root, FAKE_HULFT_SELF: self, HULPATH: world.etcDir, ...env } }).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );
  const rcv = (...p: string[]) => path.join(dir, 'b', ...p);

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-hulft-fake-'));
    world = await makeHulftWorld(dir);
    await mkdir(path.join(dir, 'a'), { recursive: true });
    await writeFile(path.join(dir, 'a', 'data'), 'x'.repeat(100));
    await world.writeDefs('A', {
      send: [
        { fileId: 'BIN', fileName: path.join(dir, 'a', 'data'), transferType: 'binary', codeConversion: 'none', group: 'G' },
        { fileId: 'TXT', fileName: path.join(dir, 'a', 'data'), transferType: 'text', codeConversion: 'sender' },
        { fileId: 'DEL', fileName: path.join(dir, 'a', 'data'), transferType: 'binary', codeConversion: 'none', clear: 'delete', group: 'TWO' },
      ],
      groups: { G: ['B'], TWO: ['B', 'C'] },
    });
    await world.writeDefs('B', {
      receive: [
        { fileId: 'BIN', fileName: rcv('new'), mode: 'new', onError: 'delete', notify: 'job', jobs: { success: 'OK' } },
        { fileId: 'REP', fileName: rcv('rep'), mode: 'replace', onError: 'restore' },
        { fileId: 'APP', fileName: rcv('app'), mode: 'append', onError: 'keep' },
        { fileId: 'GEN', fileName: rcv('gen'), mode: 'new', generations: 2 },
      ],
      jobs: { OK: [`printf '%s|%s|%s|%s|%s|%s' "$FILEID" $FILENM "$HOST" $STATUS "$MSG0" "$COUNT" > ${rcv('job.out')}`] },
    });
    const a = await world.readDefs('A');
    a.send!.push(...['REP', 'APP', 'GEN'].map((fileId) => ({ fileId, fileName: path.join(dir, 'a', 'data'), transferType: 'binary', codeConversion: 'none' })));
    await world.writeDefs('A', { ...a, dynparam: true });
  });

  after(async () => dir && rm(dir, { recursive: true, force: true }));

  it('refuses bad arguments with 2, unknown IDs with 11, a stopped daemon with 9; says it is not HULFT', async () => {
    assert.equal(await cmd('utlsend', ['-sync']), 2, 'missing -f');
    assert.equal(await cmd('utlsend', ['-f', 'BIN', '-h', 'B', '-t', 'G']), 2, '-t with -h');
    assert.equal(await cmd('utlsend', ['-f', 'BIN', '-msg0', 'x'.repeat(51), '-sync']), 2, 'msg over 50 bytes');
    assert.equal(await cmd('utlsend', ['-f', 'TXT', '-h', 'B', '-sync']), 2, 'only binary without conversion');
    assert.equal(await cmd('utlsend', ['-f', 'NOPE', '-h', 'B', '-sync']), 11);
    assert.equal(await cmd('utlsend', ['-f', 'DEL', '-sync']), 6, '同報 with CLEAR D');
    assert.equal(await cmd('utlrecv', ['-f', 'BIN']), 2, 'utlrecv without -h');
    const a = await world.readDefs('A');
    await world.writeDefs('A', { ...a, dynparam: false });
    assert.equal(await cmd('utlsend', ['-f', 'BIN', '-h', 'B', '-sync']), 2, '-h without dynparam');
    await world.writeDefs('A', { ...a, daemons: { snd: false } });
    assert.equal(await cmd('utlsend', ['-f', 'BIN', '-h', 'B', '-sync']), 9);
    await world.writeDefs('A', a);
    assert.equal(await cmd('utlalivecheck', ['-h', 'B', '-p', '30000']), 0);
    assert.equal(await cmd('utlalivecheck', ['-h', 'B', '-p', '12345']), 1);
    assert.equal(await cmd('utlalivecheck', ['-h', 'NOWHERE', '-p', '30000']), 1);
    assert.match(await readFile(path.join(FAKE_HULFT_BIN, 'utlsend'), 'utf8'), /NOT HULFT/);
  });

  it('TRANSMODE N refuses an existing file (250-205); jobs get the variables, JOBWAIT=J failures fail the send', async () => {
    assert.equal(await cmd('utlsend', ['-f', 'BIN', '-msg0', 'TSG1', '-sync', '-w', '30']), 0);
    assert.equal(await readFile(rcv('job.out'), 'utf8'), `BIN|${rcv('new')}|A|0|TSG1|1`);
    assert.equal(await cmd('utlsend', ['-f', 'BIN', '-sync', '-w', '30']), 21);
    const last = (await world.log('A', 'snd')).at(-1)!;
    assert.deepEqual([last.status, last.detail], ['250', '205']);
    await rm(rcv('new'));
    const b = await world.readDefs('B');
    await world.writeDefs('B', { ...b, jobs: { OK: ['exit 5'] } });
    assert.equal(await cmd('utlsend', ['-f', 'BIN', '-sync']), 21, 'a failed job under JOBWAIT=J fails the transfer');
    await world.writeDefs('B', b);
    assert.equal(await cmd('utlsend', ['-r', 'B', '-f', 'BIN', '-sync']), 21, 'the resend meets the file the failed job left (TRANSMODE N)');
    await rm(rcv('new'));
    assert.equal(await cmd('utlsend', ['-r', 'B', '-f', 'BIN', '-sync']), 0, 'the resend goes through');
    assert.equal(await cmd('utlsend', ['-r', 'B', '-f', 'REP', '-sync']), 1, 'nothing to resend for an ID that never failed');
  });

  it('R replaces, M appends, generations wrap at GENMNGNO; a broken transfer applies ABNORMAL', async () => {
    for (let i = 0; i < 2; i++) assert.equal(await cmd('utlsend', ['-f', 'REP', '-h', 'B', '-sync']), 0);
    assert.equal((await readFile(rcv('rep'))).length, 100);
    for (let i = 0; i < 2; i++) assert.equal(await cmd('utlsend', ['-f', 'APP', '-h', 'B', '-sync']), 0);
    assert.equal((await readFile(rcv('app'))).length, 200);
    for (let i = 0; i < 3; i++) assert.equal(await cmd('utlsend', ['-f', 'GEN', '-h', 'B', '-sync']), i < 2 ? 0 : 21);
    assert.deepEqual((await readdir(rcv())).filter((n) => n.startsWith('gen')).sort(), ['gen.0001', 'gen.0002']);
    await world.setFaults({ failTransfers: { REP: 1, APP: 1 } });
    assert.equal(await cmd('utlsend', ['-f', 'REP', '-h', 'B', '-sync']), 21);
    assert.equal((await readFile(rcv('rep'))).length, 100, 'restore: the previous file stays');
    assert.equal(await cmd('utlsend', ['-f', 'APP', '-h', 'B', '-sync']), 21);
    assert.equal((await readFile(rcv('app'))).length, 250, 'keep: the partial file stays');
  });

  it('-sync -w: a transfer slower than -w returns 4 and still completes; utlrecv makes the partner send', async () => {
    await rm(rcv('rep'));
    await world.setFaults({ delaySeconds: { REP: 2 } });
    assert.equal(await cmd('utlsend', ['-f', 'REP', '-h', 'B', '-sync', '-w', '1']), 4);
    for (let i = 0; i < 100 && !(await readFile(rcv('rep')).catch(() => null)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await readFile(rcv('rep'))).length, 100, 'the transfer completed after the timeout');
    await world.writeDefs('C', { receive: [{ fileId: 'REP', fileName: path.join(dir, 'c', 'rep'), mode: 'replace' }] });
    assert.equal(await cmd('utlrecv', ['-f', 'REP', '-h', 'A', '-sync', '-w', '30'], 'C'), 0);
    assert.equal((await readFile(path.join(dir, 'c', 'rep'))).length, 100);
    assert.equal(await cmd('utlrecv', ['-f', 'NOPE', '-h', 'A', '-sync'], 'C'), 11);
  });
});
