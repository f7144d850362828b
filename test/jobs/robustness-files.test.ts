// Files and notices as a merchant meets them (issue 12): a file with no accepted record ends
// 'rejected' and does not block its corrected resend; a 91's counts are the file's; errors per
// notice are capped with a closing summary; 91 texts are Japanese (Shift_JIS half-width kana) with
// the code first; a data record before the header is E103.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { startEngine, type Engine } from '../../jobs/engine.ts';
import { createLogger } from '../../jobs/log.ts';
import { generateFile } from '../../formats/index.ts';
import { makeTestCentre, merchantCode, merchantNo, type TestCentre } from '../helpers/centre.ts';

const sjis = new TextDecoder('shift_jis', { fatal: true });

interface Notice {
  name: string;
  rows: { recordNo: number; bytePos: number; code: string; field: string; detail: string }[];
  errorCount: number;
  rejected: number;
  accepted: number;
}

function parseNotice(name: string, bytes: Buffer): Notice {
  const recs: Buffer[] = [];
  for (let at = 0; at + 120 <= bytes.length; at += 122) recs.push(bytes.subarray(at, at + 120));
  const rows = recs.filter((r) => r[0] === 0x32).map((r) => ({
    recordNo: Number(r.toString('latin1', 1, 9)), bytePos: Number(r.toString('latin1', 9, 13)), code: r.toString('latin1', 13, 17),
    field: r.toString('latin1', 17, 41).trim(), detail: sjis.decode(r.subarray(41, 101)).trimEnd(),
  }));
  const t = recs.find((r) => r[0] === 0x38)!;
  return { name, rows, errorCount: Number(t.toString('latin1', 1, 9)), rejected: Number(t.toString('latin1', 9, 17)), accepted: Number(t.toString('latin1', 17, 25)) };
}

describe('files and notices (issue 12)', () => {
  let def: TestCentre;
  let centre: Centre;
  let engine: Engine;
  const inbound = () => path.join(def.dir, 'spool/partners/m001/inbound');
  const noticesSeen = new Set<string>();

  /** Runs the pipeline on whatever is in the inbound folder; returns the new 91 notices. */
  async function process(): Promise<Notice[]> {
    await engine.enqueue({ kind: 'scan', input: {}, jobId: `scan-${Date.now()}-${Math.random()}` });
    await engine.drain();
    const out: Notice[] = [];
    for (const name of (await readdir(def.remote('m001'))).sort()) {
      if (noticesSeen.has(name) || !name.startsWith('T91')) continue;
      noticesSeen.add(name);
      out.push(parseNotice(name, await readFile(path.join(def.remote('m001'), name))));
    }
    return out;
  }
  const latestIn = async (name: string) => (await centre.ledger.db('files').where({ direction: 'in', name }).first())!;
  const gen31 = (name: string, o: { records: number; seed: number; fileSeq: number; merchant?: string; errors?: boolean }) =>
    generateFile('31', { records: o.records, seed: o.seed, errors: o.errors ?? false, merchantNo: o.merchant ?? merchantNo(0), senderCode: merchantCode(0), receiverCode: '0000000001', fileSeq: o.fileSeq, cardCompanyCodes: ['001'], createdDate: '20261125', out: path.join(inbound(), name) });

  before(async () => {
    def = await makeTestCentre({ merchants: 1, companies: 1 });
    centre = await openCentre(def.configFile, { log: createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) }) });
    engine = await startEngine(centre, { threads: 0 });
  });
  after(async () => {
    await engine.stop();
    await centre.close();
    await rm(def.dir, { recursive: true, force: true });
  });

  it('a file whose records were all rejected ends rejected, says to resend it whole, and does not block the corrected resend', async () => {
    await gen31('all-bad.dat', { records: 5, seed: 3, fileSeq: 7, merchant: '199999999999999' }); // E302 on every record
    const [notice] = await process();
    const bad = await latestIn('all-bad.dat');
    assert.equal(bad.state, 'rejected');
    assert.ok(notice, 'a 91 notice');
    assert.deepEqual([notice.rejected, notice.accepted, notice.errorCount], [5, 0, 5]);
    assert.ok(notice.rows.every((r) => r.code === 'E302' && r.detail.startsWith('E302 ')), JSON.stringify(notice.rows));
    assert.ok(notice.rows.every((r) => r.detail.includes('ﾌｧｲﾙｾﾞﾝﾀｲｦ ｻｲｿｳｼﾝ')), 'says to resend the whole file');
    // The corrected file, same fileSeq: accepted, not E108.
    await gen31('corrected.dat', { records: 20, seed: 4, fileSeq: 7 });
    assert.deepEqual(await process(), []);
    const good = await latestIn('corrected.dat');
    assert.equal(good.state, 'routed', good.reason);
  });

  it('a 91 for a file rejected whole as E108 counts every record of the file as rejected', async () => {
    await gen31('dup.dat', { records: 20, seed: 9, fileSeq: 7, errors: true });
    const [notice] = await process();
    assert.equal((await latestIn('dup.dat')).state, 'rejected');
    assert.equal(notice!.rows[0]!.code, 'E108');
    assert.deepEqual([notice!.rejected, notice!.accepted], [20, 0]);
    assert.ok(notice!.rows.some((r) => r.code !== 'E108'), 'the planted errors are listed too');
    assert.ok(notice!.rows.every((r) => r.detail.includes('ｻｲｿｳｼﾝ ﾌﾖｳ')), 'an accepted twin: nothing to resend');
  });

  it('caps the errors of one notice at 1,000 with a closing record that says how many more', async () => {
    await gen31('many.dat', { records: 1500, seed: 5, fileSeq: 8, merchant: '199999999999999' });
    const [notice] = await process();
    assert.equal(notice!.rows.length, 1001);
    assert.equal(notice!.errorCount, 1001);
    assert.deepEqual([notice!.rejected, notice!.accepted], [1500, 0]);
    const last = notice!.rows.at(-1)!;
    assert.equal(last.code, 'E302');
    assert.equal(last.recordNo, 1002); // the first error not listed (records 2..1001 are)
    assert.match(last.detail, /^E302 ﾎｶ 500ｹﾝ ﾉ ｴﾗｰ ｦ ｼｮｳﾘｬｸ\(ｺﾞｳｹｲ 1500ｹﾝ\)$/);
    const size = (await centre.ledger.db('files').where({ file_type: '91' }).orderBy('created_at', 'desc').first()).size;
    assert.ok(size < 1002 * 122 + 3 * 122, `notice of ${size} bytes`);
  });

  it('91 details are Shift_JIS half-width Japanese, code first, within 60 bytes and never cut inside a word', async () => {
    await gen31('mixed.dat', { records: 200, seed: 11, fileSeq: 9, errors: true });
    const [notice] = await process();
    assert.ok(notice!.rows.length >= 5);
    for (const r of notice!.rows) {
      assert.match(r.detail, new RegExp(`^${r.code} `), r.detail);
      assert.match(r.detail, /[\uff61-\uff9f]/, `katakana in ${r.detail}`);
      assert.doesNotMatch(r.detail, /[^\x20-\x7e\uff61-\uff9f]/, 'single-byte characters only (C field)');
      assert.ok(Buffer.byteLength(r.detail, 'latin1') <= 60);
      assert.doesNotMatch(r.detail, /[a-z]/, 'no English words');
    }
  });

  it('a data record before the header is E103 (records out of order), not E102', async () => {
    const file = path.join(inbound(), 'headless.dat');
    await gen31('headless.dat', { records: 3, seed: 12, fileSeq: 10 });
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(202)); // drop the header record (200 bytes + CRLF)
    const [notice] = await process();
    assert.equal((await latestIn('headless.dat')).state, 'rejected');
    assert.equal(notice!.rows[0]!.code, 'E103');
    assert.equal(notice!.rows[0]!.recordNo, 1);
  });
});
