// The delivery rule every folder-like push shares (protocols/staged-push.ts), on a real folder:
// a partner that takes the file between our rename and our check, and the resume of a push
// interrupted at each step, decided from what the partner's folder holds.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, readFile, truncate, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { localFolder } from '../../protocols/local/client.ts';
import { PushInDoubtError, resumeStagedPush, stagedPush, type PushPhase, type RemoteFolder } from '../../protocols/staged-push.ts';

describe('staged push', () => {
  let dir: string;
  let partner: string;
  let local: string;
  const bytes = Buffer.alloc(100_000, 0x31);
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-staged-'));
    partner = path.join(dir, 'partner');
    await import('node:fs/promises').then((fs) => fs.mkdir(partner));
    local = path.join(dir, 'T32.dat');
    await writeFile(local, bytes);
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const journal = () => {
    const steps: [PushPhase, string][] = [];
    return { steps, record: async (p: PushPhase, t: string) => void steps.push([p, t]) };
  };

  it('a partner that takes the file right after the rename: delivered, not failed', async () => {
    const real = localFolder(partner);
    const takenAway = path.join(dir, 'taken.dat');
    // The partner's poller wins the race every time: it moves the file before we look.
    const folder: RemoteFolder = { ...real, rename: async (from, to) => (await real.rename(from, to), await copyFile(path.join(partner, to), takenAway), await rm(path.join(partner, to))) };
    const j = journal();
    const result = await stagedPush(folder, local, bytes.length, 'T32.dat', { tempName: 'T32.dat.x1.part', journal: j, protocol: 'local' });
    assert.equal(result.bytes, bytes.length);
    assert.match(result.note ?? '', /taken/);
    assert.deepEqual(j.steps, [['staging', 'T32.dat.x1.part'], ['committing', 'T32.dat.x1.part']]);
    assert.ok((await readFile(takenAway)).equals(bytes));
    assert.deepEqual(await readdir(partner), []);
  });

  it('a rename refused with the temporary still there: not delivered, temporary removed, journal back to staging', async () => {
    const real = localFolder(partner);
    const j = journal();
    const folder: RemoteFolder = { ...real, rename: async () => Promise.reject(new Error('EACCES')) };
    await assert.rejects(stagedPush(folder, local, bytes.length, 'T32.dat', { tempName: 'T32.dat.x2.part', journal: j, protocol: 'local' }), /EACCES/);
    assert.deepEqual(await readdir(partner), []);
    assert.deepEqual(j.steps.map((s) => s[0]), ['staging', 'committing', 'staging', 'staging']);
    assert.equal(j.steps.at(-1)![1], '', 'the journal forgets the removed temporary');
  });

  it('a rename whose answer and temporary cannot be seen is in doubt', async () => {
    const real = localFolder(partner);
    let renamed = false;
    const folder: RemoteFolder = {
      ...real,
      size: async (n) => (renamed ? Promise.reject(new Error('connection lost')) : real.size(n)),
      rename: async (from, to) => {
        await real.rename(from, to);
        renamed = true;
        throw new Error('connection lost');
      },
    };
    await assert.rejects(stagedPush(folder, local, bytes.length, 'T32.dat', { tempName: 'T32.dat.x3.part', protocol: 'local' }), PushInDoubtError);
    // Settled on a "new connection": the temporary is gone, so the rename happened.
    const outcome = await resumeStagedPush(real, 'T32.dat', bytes.length, 'committing', 'T32.dat.x3.part', 'local');
    assert.equal(outcome.delivered, true);
    assert.deepEqual(await readdir(partner), ['T32.dat']);
    await rm(path.join(partner, 'T32.dat'));
  });

  it('resume: killed while staging (a torn temporary) removes it and pushes again', async () => {
    await writeFile(path.join(partner, 'T32.dat.x4.part'), bytes.subarray(0, 4000));
    const outcome = await resumeStagedPush(localFolder(partner), 'T32.dat', bytes.length, 'staging', 'T32.dat.x4.part', 'local');
    assert.deepEqual(outcome, { delivered: false, how: 'abandoned' });
    assert.deepEqual(await readdir(partner), []);
  });

  it('resume: killed while committing with the whole temporary there renames it (finished, not repeated)', async () => {
    await writeFile(path.join(partner, 'T32.dat.x5.part'), bytes);
    const outcome = await resumeStagedPush(localFolder(partner), 'T32.dat', bytes.length, 'committing', 'T32.dat.x5.part', 'local');
    assert.equal(outcome.delivered, true);
    assert.equal(outcome.delivered && outcome.how, 'finished');
    assert.deepEqual(await readdir(partner), ['T32.dat']);
    await rm(path.join(partner, 'T32.dat'));
  });

  it('resume: killed after the rename, the partner took it already: delivered, nothing pushed again', async () => {
    const outcome = await resumeStagedPush(localFolder(partner), 'T32.dat', bytes.length, 'committing', 'T32.dat.x6.part', 'local');
    assert.equal(outcome.delivered && outcome.how, 'renamed');
    assert.deepEqual(await readdir(partner), []);
  });

  it('resume: a torn temporary under committing is not renamed', async () => {
    await writeFile(path.join(partner, 'T32.dat.x7.part'), bytes);
    await truncate(path.join(partner, 'T32.dat.x7.part'), 10);
    const outcome = await resumeStagedPush(localFolder(partner), 'T32.dat', bytes.length, 'committing', 'T32.dat.x7.part', 'local');
    assert.equal(outcome.delivered, false);
    assert.deepEqual(await readdir(partner), []);
  });
});
