// The sent side written as packed batches (issue 15): unpacked, it gives exactly the rows the
// record-by-record writer gave (the same decoding, trimming, masking), on both ledgers, after the
// archive is purged, once however often it is materialized or a route is retried.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { blankRecord, encodeField, familyForFileType, maskCardNumber, snapshotFields, splitFile } from '../../formats/index.ts';
import { SENT_COLUMNS, SentPacker, unpackBatch } from '../../jobs/sent-pack.ts';
import { materializeSentRecords, recordResults, SentRecordWriter } from '../../jobs/sent-records.ts';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeTestCentre, dropSalesFiles, type TestCentre } from '../helpers/centre.ts';
import { LEDGER_KINDS } from '../helpers/ledgers.ts';

const layout = familyForFileType('31')!.data;

/** The row the record-by-record writer made of a forwarded record (its formula, kept here as the oracle). */
function oldRow(f: Record<string, string>, centreRef: string, fileId: string, sourceFileId: string, centreDate: string): unknown[] {
  return [Number(centreRef), fileId, sourceFileId, f.cardCompanyCode!, f.merchantNo!.trim(), f.terminalId!.trim(), f.slipNo!, f.useDate!, f.txnType!, Number(f.amount), f.approvalNo!.trim(), maskCardNumber(f.cardNo!.trim()), centreDate];
}

function record(values: Record<string, string>): Buffer {
  const rec = blankRecord(layout);
  for (const [name, v] of Object.entries(values)) encodeField(v, rec, 0, layout.byName.get(name)!);
  return rec;
}

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('sent batches', () => {
  it('unpack gives the old rows, card numbers of every shape included', () => {
    const cards = ['4111111111111111', '4111111111111111111', ' 4111111111111111', '411111111111', '12345', '1234', '', '41111111 11111111', 'ｱｲｳ4111111111111', '4111-1111-1111-1111'];
    const base = { recordType: '2', cardCompanyCode: '001', merchantNo: '100000000000001', terminalId: ' T01', slipNo: '00001', txnType: '10', useDate: '20261125', amount: '0000001234', approvalNo: 'AB12 ' };
    const packer = new SentPacker(layout);
    const expected: unknown[][] = [];
    cards.forEach((cardNo, i) => {
      const rec = record({ ...base, cardNo, terminalId: i % 2 ? 'ﾃｽﾄ' : base.terminalId, amount: String(1000 + i).padStart(10, '0') });
      const ref = String(100_000_000_000 + i * 7);
      packer.add(rec, 0, ref);
      expected.push(oldRow(snapshotFields(layout, rec, 0), ref, 'O32', 'I31', '20261126'));
    });
    const b = packer.finish();
    assert.ok(b.maskedOverrides, 'the odd card numbers took the slow path');
    const rows = unpackBatch({ file_id: 'O32', source_file_id: 'I31', centre_date: '20261126', fields: JSON.stringify(b.fields), record_count: b.count, refs: b.refs, records: b.records, masked_overrides: JSON.stringify(b.maskedOverrides) });
    assert.deepEqual(rows, expected);
    for (const r of rows) assert.ok(!/\d{12}/.test(String(r[11])), `no whole card number kept: ${r[11]}`);
  });

  it('a split of generated files packs what the old writer recorded, destination by destination', async () => {
    const c = await makeTestCentre({ merchants: 2, companies: 5 });
    try {
      await dropSalesFiles(c, { records: 300 });
      const inbound = path.join(c.dir, 'spool', 'partners', c.merchantIds[0]!, 'inbound');
      const file = path.join(inbound, (await readdir(inbound))[0]!);
      const expected: unknown[][] = [];
      const rowsByDest = new Map<string, unknown[][]>();
      const stored: Parameters<typeof unpackBatch>[0][] = [];
      const fakeLedger = { dialect: 'sqlite', db: () => ({ insert: (rows: typeof stored) => ({ onConflict: () => ({ ignore: async () => void stored.push(...rows) }) }) }) };
      const writer = await SentRecordWriter.open(fakeLedger as never, 'I31', '20261126', (d) => `O32-${d}`);
      await splitFile(file, {
        routeOf: (f) => f.cardCompanyCode!,
        targetFormat: () => ({ layout: 'sales.data', fileType: '32' }),
        header: { senderCode: '0000000001', createdDate: '20261126', createdTime: '010000', receiverCode: (d) => `2000000${d}`, fileSeq: 1 },
        stampCentreRef: { start: 5_000_000n, centreDate: '20261126' },
        outputPath: (d) => path.join(c.dir, `out-${d}.dat`),
        onForward(d, fields, info) {
          writer.add(d, fields, info);
          const row = oldRow(info.source, info.centreRef!, `O32-${d}`, 'I31', '20261126');
          expected.push(row);
          rowsByDest.set(d, [...(rowsByDest.get(d) ?? []), row]);
        },
      });
      await writer.finish();
      assert.equal(stored.length, 5);
      for (const b of stored) assert.deepEqual(unpackBatch(b), rowsByDest.get(b.file_id.slice(4)));
      assert.equal(expected.length, 300);
    } finally {
      await rm(c.dir, { recursive: true, force: true });
    }
  });

  for (const [kind, make] of LEDGER_KINDS) {
    describe(`on ${kind}`, () => {
      const made: TestCentre[] = [];
      const disposers: (() => Promise<void>)[] = [];
      after(async () => {
        for (const d of disposers) await d();
        for (const c of made) await rm(c.dir, { recursive: true, force: true });
      });

      it('a cycle writes batches; materializing gives one row per forwarded record, once, after the archive is purged', async () => {
        const t = await make();
        disposers.push(() => t.dispose());
        await t.ledger.close();
        const def = await makeTestCentre({ merchants: 4, companies: 5, mainframeCompanies: [4], ledger: t.url });
        made.push(def);
        await dropSalesFiles(def, { records: 50 });
        const centre = await openCentre(def.configFile, { log: quiet() });
        try {
          const engine = await startEngine(centre, { threads: 0 });
          await engine.enqueue({ kind: 'scan', input: {}, jobId: 'scan-1' });
          await engine.drain();
          await engine.stop();
          const db = centre.ledger.db;
          const count = async (table: string) => Number(((await db(table).count({ n: '*' })) as { n: number | string }[])[0]!.n);
          assert.equal(await count('sent_batches'), 20); // 4 merchants x 5 companies
          assert.equal(await count('sent_records'), 0);

          // the archive goes (retention): the batches are in the ledger, not beside the files
          await rm(path.join(def.dir, 'spool', 'archive'), { recursive: true, force: true });
          assert.equal(await materializeSentRecords(centre.ledger), 200);
          assert.equal(await count('sent_batches'), 0);
          assert.equal(await materializeSentRecords(centre.ledger), 0);

          const rows = (await db('sent_records').orderBy('centre_ref').select(SENT_COLUMNS)) as Record<string, unknown>[];
          assert.equal(rows.length, 200);
          assert.equal(new Set(rows.map((r) => String(r.centre_ref))).size, 200);
          const outFiles = new Set(((await db('files').where({ direction: 'out', file_type: '32' }).select('id')) as { id: string }[]).map((r) => r.id));
          for (const r of rows) {
            assert.ok(outFiles.has(String(r.file_id)), `row for a 32 file that exists: ${r.file_id}`);
            assert.match(String(r.masked_card_no), /^\d{6}\*+\d{4}$/);
          }

          // a route retried after a crash packs the same batch again: ignored, and the rows (with
          // their results) stay as they are
          const ref = String(rows[0]!.centre_ref);
          await recordResults(centre.ledger, 'R33', [{ centreRef: ref, resultCode: '00', amount: Number(rows[0]!.amount) }], '20261126');
          const again = await SentRecordWriter.open(centre.ledger, String(rows[0]!.source_file_id), String(rows[0]!.centre_date), () => String(rows[0]!.file_id));
          const rec = record({ recordType: '2', cardCompanyCode: String(rows[0]!.card_company_code), merchantNo: String(rows[0]!.merchant_no), cardNo: '4111111111111111', amount: '0000000001' });
          again.add('x', {}, { recordNo: 1, centreRef: ref, source: {}, sourceRecord: rec, sourceOffset: 0, sourceLayout: layout });
          await again.finish();
          assert.equal(await materializeSentRecords(centre.ledger), 1);
          const after = (await db('sent_records').where('centre_ref', ref).first()) as Record<string, unknown>;
          assert.equal(Number(after.amount), Number(rows[0]!.amount));
          assert.equal(after.result_code, '00');
          assert.equal(Number(after.result_count), 1);
          assert.equal(await count('sent_records'), 200);

          // a long 32 file is written in parts (memory stays flat); its rows come back in order
          const long = await SentRecordWriter.open(centre.ledger, 'I31-long', '20261126', () => 'O32-long', { partRecords: 7 });
          const refs = Array.from({ length: 20 }, (_, i) => String(900_000_000_000 + i * 3));
          for (const r of refs) long.add('cc1', {}, { recordNo: 1, centreRef: r, source: {}, sourceRecord: rec, sourceOffset: 0, sourceLayout: layout });
          await long.finish();
          assert.equal(await count('sent_batches'), 3);
          assert.equal(await materializeSentRecords(centre.ledger), 20);
          const longRows = (await db('sent_records').where('file_id', 'O32-long').orderBy('centre_ref').select('centre_ref')) as { centre_ref: number | string }[];
          assert.deepEqual(longRows.map((r) => String(r.centre_ref)), refs);
        } finally {
          await centre.close();
        }
      });
    });
  }
});
