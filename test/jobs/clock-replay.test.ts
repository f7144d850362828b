// One centre clock (issue 12): a month replayed with TSUNAGI_NOW pinned day by day files every 71,
// reconciliation and missing result under the replayed days, never under the real date; real and
// not-future dates only; cycle's summary shows the business day as a whole beside this run.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle, cycleHadRejections } from '../../jobs/cycle.ts';
import { checkBusinessDate } from '../../jobs/business-day.ts';
import { addDays } from '../../jobs/jmanager/periods.ts';
import { createLogger } from '../../jobs/log.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { generateFile } from '../../formats/index.ts';
import { makeTestCentre, merchantCode, merchantNo, type TestCentre } from '../helpers/centre.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });
const ONLINE = '  - { id: online, name: ONLINE CENTRE, role: online-centre, code: "9000000001", send: ["81"] }';

async function withClock<T>(iso: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.TSUNAGI_NOW;
  process.env.TSUNAGI_NOW = iso;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.TSUNAGI_NOW;
    else process.env.TSUNAGI_NOW = saved;
  }
}
/** 02:30 JST on `ymd`. */
const nightOf = (ymd: string) => new Date(Date.UTC(+ymd.slice(0, 4), +ymd.slice(4, 6) - 1, +ymd.slice(6, 8), 2, 30) - 9 * 3600_000).toISOString();

describe('one centre clock (issue 12)', () => {
  let def: TestCentre;
  before(async () => {
    def = await makeTestCentre({ merchants: 1, companies: 1, extraPartnerYaml: ONLINE });
    // The merchant is a head office with daily 71s.
    const yaml = (await readFile(def.configFile, 'utf8')).replace('role: merchant,', 'role: merchant, jmanagerCycles: [D],');
    await writeFile(def.configFile, yaml);
    await mkdir(path.join(def.dir, 'spool/partners/online/inbound'), { recursive: true });
  });
  after(async () => rm(def.dir, { recursive: true, force: true }));

  it('replays September 2026: 71s, reports and missing results under the replayed days', async () => {
    const days = Array.from({ length: 30 }, (_, i) => `202609${String(i + 1).padStart(2, '0')}`);
    for (const [i, day] of days.entries()) {
      const yesterday = addDays(day, -1);
      await generateFile('31', { records: 3, seed: 100 + i, merchantNo: merchantNo(0), senderCode: merchantCode(0), receiverCode: '0000000001', fileSeq: i + 1, cardCompanyCodes: ['001'], createdDate: yesterday, out: path.join(def.dir, `spool/partners/m001/inbound/sales-${day}.dat`) });
      await generateFile('81', { records: 4, seed: 200 + i, merchantNo: merchantNo(0), senderCode: '9000000001', receiverCode: '0000000001', fileSeq: i + 1, cardCompanyCodes: ['001'], createdDate: day, out: path.join(def.dir, `spool/partners/online/inbound/terminal-${day}.dat`) });
      await withClock(nightOf(day), async () => {
        const centre = await openCentre(def.configFile, { log: quiet() });
        const engine = await startEngine(centre, { threads: 0 });
        try {
          const summary = await runCycle(engine, { date: day });
          assert.equal(summary.day.businessDate, yesterday);
        } finally {
          await engine.stop();
          await centre.close();
        }
      });
    }
    const centre: Centre = await openCentre(def.configFile, { log: quiet() });
    try {
      const realToday = tokyoDate(new Date());
      const files = await centre.ledger.db('files').select('id', 'name', 'file_type', 'business_date', 'created_at', 'state');
      assert.ok(files.length > 100);
      for (const f of files) {
        if (f.business_date) assert.ok(f.business_date < '20261001', `${f.id} business date ${f.business_date}`);
        assert.ok(tokyoDate(new Date(Number(f.created_at))) <= '20260930', `${f.id} created ${new Date(Number(f.created_at)).toISOString()}`);
        assert.ok(!String(f.name).includes(realToday), `${f.name} carries the real date`);
      }
      // A daily 71 for every day from 31 August to 29 September, once each.
      const d71 = files.filter((f) => f.file_type === '71').map((f) => String(f.name)).sort();
      assert.deepEqual(d71, days.map((d) => `T71_D_${addDays(d, -1)}-${addDays(d, -1)}.dat`));
      // Reconciliation reports for the replayed days only; the card company never answered, so each
      // day's 32 records are missing results in that day's own report once the 48 h deadline passed.
      const reports = (await readdir(path.join(def.dir, 'spool/reports'))).sort();
      assert.ok(!reports.includes(`reconcile-${realToday}.csv`));
      assert.deepEqual(reports, [...new Set([...days.map((d) => `reconcile-${addDays(d, -1)}.csv`), ...days.slice(0, 27).map((d) => `reconcile-${d}.csv`)])].sort());
      const sent = (await centre.ledger.db('sent_records').select('centre_date').count({ n: '*' }).groupBy('centre_date')) as { centre_date: string; n: number | string }[];
      const sentByDay = new Map(sent.map((r) => [String(r.centre_date), Number(r.n)]));
      for (const day of days.slice(0, 27)) {
        const csv = (await readFile(path.join(def.dir, `spool/reports/reconcile-${day}.csv`), 'utf8')).trim().split('\r\n').slice(1);
        assert.equal(csv.filter((l) => l.startsWith('missing result,')).length, sentByDay.get(day), `missing results filed under ${day}`);
      }
    } finally {
      await centre.close();
    }
  });

  it('dates are real and not in the future; the day summary counts what serve already handled', async () => {
    assert.throws(() => checkBusinessDate('20261301', new Date('2026-12-01T00:00:00Z')), /not|real/);
    assert.throws(() => checkBusinessDate('20261202', new Date('2026-12-01T03:00:00Z')), /in the future/);
    assert.equal(checkBusinessDate('20261201', new Date('2026-12-01T03:00:00Z')), '20261201');
    const run = promisify(execFile);
    const r = await run(process.execPath, [path.resolve('bin/tsunagi.js'), 'cycle', '--config', def.configFile, '--date', '20261301']).catch((e) => e as { code: number; stderr: string });
    assert.equal((r as { code: number }).code, 2);
    assert.match((r as { stderr: string }).stderr, /--date '20261301': expected a real YYYYMMDD date/);

    // A file ingested (as serve would) before the cycle: not this run's work, but the day's.
    await withClock('2026-10-01T03:00:00Z', async () => {
      const centre = await openCentre(def.configFile, { log: quiet() });
      const engine = await startEngine(centre, { threads: 0 });
      try {
        await assert.rejects(runCycle(engine, { date: '20261003' }), /in the future/);
        await generateFile('31', { records: 3, seed: 999, merchantNo: '199999999999999', senderCode: merchantCode(0), receiverCode: '0000000001', fileSeq: 500, cardCompanyCodes: ['001'], createdDate: '20260930', out: path.join(def.dir, 'spool/partners/m001/inbound/served.dat') });
        await engine.enqueue({ kind: 'scan', input: {}, jobId: 'served-scan' });
        await engine.drain();
        const summary = await runCycle(engine, { date: '20261001' });
        assert.equal(summary.filesIn, 0, 'this run handled nothing new');
        assert.ok(summary.day.filesIn >= 1);
        assert.ok(summary.day.rejectedFiles.some((f) => f.includes('served.dat')), summary.day.rejectedFiles.join(', '));
        assert.equal(summary.day.filesRejected, 1);
        assert.equal(summary.day.recordsRejected, 3);
        assert.ok(cycleHadRejections(summary), 'the day\'s rejections make cycle exit 3');
      } finally {
        await engine.stop();
        await centre.close();
      }
    });
  });
});
