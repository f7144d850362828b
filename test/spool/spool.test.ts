import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SpoolTree, isTemporaryName, tokyoDate } from '../../spool/tree.ts';
import { beginLanding, landFile, UnsafeNameError } from '../../spool/landing.ts';
import { claimFile, claimedOriginalName, listCompleteInbound, parseWorkName, newFileId } from '../../spool/claim.ts';
import { publishFile, temporaryPathFor } from '../../spool/atomic.ts';
import { sha256File } from '../../spool/checksum.ts';
import { archiveFile } from '../../spool/archive.ts';

// 売上 in Shift_JIS, and a half-width katakana run: real bytes, not text.
const SJIS_BYTES = Buffer.from([0x94, 0x84, 0x8f, 0xe3, 0xb6, 0xde, 0x0d, 0x0a]);

describe('spool', () => {
  let root: string;
  let tree: SpoolTree;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'tsunagi-spool-'));
    tree = new SpoolTree(root);
    await tree.ensure(['m001', 'cc1']);
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it('builds the tree and refuses unsafe partner ids', async () => {
    assert.deepEqual((await readdir(path.join(root, 'partners'))).sort(), ['cc1', 'm001']);
    assert.deepEqual((await readdir(tree.partnerDir('m001'))).sort(), ['inbound', 'outbound']);
    assert.throws(() => tree.inbound('../etc'), /invalid partner id/);
    assert.equal(tree.archiveDir(new Date('2026-11-26T16:00:00Z')), path.join(root, 'archive', '2026', '11', '27'));
    assert.equal(tokyoDate(new Date('2026-11-26T14:59:59Z')), '20261126');
  });

  it('a landing is invisible until committed, and leaves nothing when aborted', async () => {
    const inbound = tree.inbound('m001');
    const landing = await beginLanding(inbound, 'sales.dat');
    await landing.handle.write(SJIS_BYTES);
    assert.equal((await listCompleteInbound(inbound, 0)).length, 0, 'the temporary name is not picked up');
    const { path: final, size } = await landing.commit();
    assert.equal(size, SJIS_BYTES.length);
    assert.deepEqual(await readFile(final), SJIS_BYTES);
    const aborted = await beginLanding(inbound, 'broken.dat');
    await aborted.handle.write(SJIS_BYTES.subarray(0, 3));
    await aborted.abort();
    assert.deepEqual(await readdir(inbound), ['sales.dat']);
  });

  it('refuses unsafe names', async () => {
    const bads = ['../x', '/etc/passwd', 'a/b', '.hidden', '..', 'nul\0byte', '', 'x'.repeat(241), 'ア'.repeat(81), 'a\r\nb.dat', 'a\nb', 'tab\there', 'evil\u202Etxt.exe', 'iso\u2066late', 'c1\u0085x', 'bad\ufffdutf8'];
    for (const bad of bads) {
      await assert.rejects(landFile(tree.inbound('m001'), bad, SJIS_BYTES), UnsafeNameError, JSON.stringify(bad));
    }
    // Counted in bytes: 77 katakana are 231 bytes, and fit.
    const ok = await landFile(tree.inbound('m001'), 'ア'.repeat(77), SJIS_BYTES);
    await rm(ok.path);
  });

  it('waits for the quiet period for files that were not renamed into place', async () => {
    const inbound = tree.inbound('cc1');
    await writeFile(path.join(inbound, 'fresh.dat'), SJIS_BYTES);
    await writeFile(path.join(inbound, 'upload.dat.part'), SJIS_BYTES);
    await writeFile(path.join(inbound, '.dotfile'), SJIS_BYTES);
    assert.deepEqual(await listCompleteInbound(inbound, 60_000), []);
    const old = new Date(Date.now() - 120_000);
    await utimes(path.join(inbound, 'fresh.dat'), old, old);
    assert.deepEqual((await listCompleteInbound(inbound, 60_000)).map((c) => c.name), ['fresh.dat']);
    assert.ok(isTemporaryName('x.tmp') && isTemporaryName('x.part') && isTemporaryName('.x') && !isTemporaryName('x.dat'));
  });

  it('two claimers of one file: exactly one wins', async () => {
    const inbound = tree.inbound('m001');
    const [candidate] = await listCompleteInbound(inbound, 0);
    const ids = [newFileId('I'), newFileId('I'), newFileId('I')];
    const results = await Promise.all(ids.map((id) => claimFile(candidate!.path, tree.work, id, 'm001')));
    const winners = results.filter((r): r is string => r !== null);
    assert.equal(winners.length, 1);
    const parsed = parseWorkName(path.basename(winners[0]!));
    assert.equal(parsed?.partnerId, 'm001');
    assert.equal(parsed?.originalName, undefined, 'the partner\'s name is not part of the work name');
    assert.equal(await claimedOriginalName(tree.work, path.basename(winners[0]!)), 'sales.dat');
    assert.ok(ids.includes(parsed!.fileId));
    const { sha256, size } = await sha256File(winners[0]!);
    assert.equal(size, SJIS_BYTES.length);
    assert.equal(sha256, '' + (await import('node:crypto')).createHash('sha256').update(SJIS_BYTES).digest('hex'));
    const archived = await archiveFile(tree, winners[0]!, 'kept.dat', new Date('2026-01-02T00:00:00Z'));
    assert.equal(archived, path.join(root, 'archive', '2026', '01', '02', 'kept.dat'));
    assert.deepEqual(await readFile(archived), SJIS_BYTES);
  });

  it('publishing replaces whole files and leaves no temporaries', async () => {
    const target = path.join(tree.outbound('cc1'), 'out.dat');
    for (const bytes of [SJIS_BYTES, Buffer.concat([SJIS_BYTES, SJIS_BYTES])]) {
      const temp = temporaryPathFor(target);
      await writeFile(temp, bytes);
      await publishFile(temp, target);
    }
    assert.equal((await readFile(target)).length, SJIS_BYTES.length * 2);
    assert.deepEqual(await readdir(tree.outbound('cc1')), ['out.dat']);
  });
});
