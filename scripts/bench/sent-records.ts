// Benchmark of the ledger's record-level bookkeeping (issue 15): what the route pays per forwarded
// record to remember it for reconciliation, on SQLite and PostgreSQL, measured in the same run:
//   row per record   the former way: one sent_records row per record (5 indexes), SQLite prepared
//                    64-row inserts in 16k-row transactions, PostgreSQL knex batches of 500
//   fewer indexes    the same rows without the two indexes no query uses
//   packed batches   what the route does now: one packed sent_batches row per 32 file
//   materialize      the deferred part: batches -> sent_records rows (recordResults and
//                    reconciliation do it): SQLite raw prepared inserts; PostgreSQL COPY into a
//                    staging table (what the code does) and, for comparison, knex inserts
//
//   npx tsx scripts/bench/sent-records.ts [--records 1000000] [--no-pg]
import { parseArgs } from 'node:util';
import os from 'node:os';
import { blankRecord, encodeField, familyForFileType, maskCardNumber, snapshotFields, type ForwardInfo } from '../../formats/index.ts';
import { materializeSentRecords, SentRecordWriter } from '../../jobs/sent-records.ts';
import { SENT_COLUMNS, unpackBatch, type StoredBatch } from '../../jobs/sent-pack.ts';
import { withRawSqlite, SqliteBatchInsert } from '../../spool/ledger/sqlite-raw.ts';
import type { Ledger } from '../../spool/ledger/index.ts';
import { postgresLedger, sqliteLedger, type TestLedger } from '../../test/helpers/ledgers.ts';

const { values } = parseArgs({ options: { records: { type: 'string', default: '1000000' }, 'no-pg': { type: 'boolean' } } });
const N = Number(values.records);
const PER_FILE = 1000; // records per 32 file (200 merchants x 5,000 records -> 5 companies)
const layout = familyForFileType('31')!.data;

// N canonical 31 records, a few distinct templates re-stamped
const recs: Buffer[] = [];
for (let i = 0; i < 1000; i++) {
  const rec = blankRecord(layout);
  const put = (name: string, v: string) => encodeField(v, rec, 0, layout.byName.get(name)!);
  put('recordType', '2'); put('cardCompanyCode', `00${1 + (i % 5)}`); put('merchantNo', `1${String(1 + (i % 200)).padStart(14, '0')}`);
  put('terminalId', `T${String(i % 97).padStart(4, '0')}`); put('slipNo', String(i).padStart(5, '0')); put('txnType', '10');
  put('cardNo', `4111111111${String(100000 + i)}`); put('useDate', `202611${String(1 + (i % 25)).padStart(2, '0')}`); put('amount', String(1000 + i).padStart(10, '0')); put('approvalNo', String(i).padStart(7, '0'));
  recs.push(rec);
}
const source = (i: number) => recs[i % recs.length]!;

async function timed(label: string, baselineSec: number | undefined, fn: () => Promise<void>): Promise<number> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  const ratio = baselineSec ? `  speed ${(baselineSec / sec).toFixed(1)}x the former` : '';
  console.log(`  ${label.padEnd(40)} ${sec.toFixed(2).padStart(7)} s ${((cpu.user + cpu.system) / 1e6).toFixed(2).padStart(6)} s CPU here ${Math.round(N / sec).toLocaleString('en').padStart(11)} records/s${ratio}`);
  return sec;
}

/** The former writer's row of record i. */
function oldRow(i: number): unknown[] {
  const f = snapshotFields(layout, source(i), 0);
  return [100_000_000_000 + i, `O32-${Math.floor(i / PER_FILE)}`, `I31-${Math.floor(i / (PER_FILE * 5))}`, f.cardCompanyCode, f.merchantNo!.trim(), f.terminalId!.trim(), f.slipNo, f.useDate, f.txnType, Number(f.amount), f.approvalNo!.trim(), maskCardNumber(f.cardNo!.trim()), '20261126'];
}

async function rowPerRecord(ledger: Ledger): Promise<void> {
  if (ledger.dialect === 'sqlite') {
    await withRawSqlite(ledger, (conn) => {
      const insert = new SqliteBatchInsert(conn, 'sent_records', SENT_COLUMNS, 'insert or ignore');
      for (let i = 0; i < N; i += 16384) {
        conn.exec('begin immediate');
        for (let j = i; j < Math.min(N, i + 16384); j++) insert.add(oldRow(j));
        insert.end();
        conn.exec('commit');
      }
    });
    return;
  }
  for (let i = 0; i < N; i += 500) {
    const objects = [];
    for (let j = i; j < Math.min(N, i + 500); j++) { const r = oldRow(j); objects.push(Object.fromEntries(SENT_COLUMNS.map((c, k) => [c, r[k]]))); }
    await ledger.db('sent_records').insert(objects).onConflict('centre_ref').ignore();
  }
}

async function packed(ledger: Ledger): Promise<void> {
  const layoutInfo = { source: {}, sourceOffset: 0, sourceLayout: layout } as const;
  for (let file = 0; file < N / (PER_FILE * 5); file++) {
    const w = await SentRecordWriter.open(ledger, `I31-${file}`, '20261126', (d) => `O32-${file}-${d}`);
    for (let j = 0; j < PER_FILE * 5; j++) {
      const i = file * PER_FILE * 5 + j;
      w.add(String(i % 5), {}, { ...layoutInfo, recordNo: j + 1, centreRef: String(100_000_000_000 + i), sourceRecord: source(i) } as ForwardInfo);
    }
    await w.finish();
  }
}

/** PostgreSQL, the other way measured: the unpacked rows by knex multi-row inserts (2,000 rows each). */
async function materializeByInserts(ledger: Ledger): Promise<void> {
  await ledger.db.transaction(async (trx) => {
    const batches = (await trx('sent_batches').orderBy('id').select('id', 'file_id', 'source_file_id', 'centre_date', 'fields', 'record_count', 'refs', 'records', 'masked_overrides')) as StoredBatch[];
    const rows = batches.flatMap((b) => unpackBatch(b));
    for (let i = 0; i < rows.length; i += 2000) {
      await trx('sent_records').insert(rows.slice(i, i + 2000).map((row) => Object.fromEntries(SENT_COLUMNS.map((c, j) => [c, row[j]])))).onConflict('centre_ref').ignore();
    }
    await trx('sent_batches').delete();
  });
}

async function run(kind: string, make: () => Promise<TestLedger>): Promise<void> {
  console.log(`${kind}:`);
  const fresh = async (fn: (l: Ledger) => Promise<void>) => {
    const t = await make();
    try {
      await fn(t.ledger);
    } finally {
      await t.dispose();
    }
  };
  let base: number | undefined;
  await fresh(async (l) => {
    await l.db.schema.alterTable('sent_records', (t) => { t.index(['source_file_id']); t.index(['merchant_no', 'terminal_id', 'slip_no', 'use_date']); });
    base = await timed('row per record, 5 indexes (former)', undefined, () => rowPerRecord(l));
  });
  await fresh(async (l) => void (await timed('row per record, 3 indexes', base, () => rowPerRecord(l))));
  await fresh(async (l) => {
    await timed('packed batches (route, now)', base, () => packed(l));
    await timed(`  then materialize (later; ${kind === 'SQLite' ? 'raw inserts' : 'COPY'})`, base, async () => void (await materializeSentRecords(l)));
  });
  if (kind === 'PostgreSQL') {
    await fresh(async (l) => {
      await packed(l);
      await timed('  then materialize by knex inserts', base, () => materializeByInserts(l));
    });
  }
}

console.log(`sent-records benchmark: ${N.toLocaleString('en')} forwarded records, ${PER_FILE} per 32 file; ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
await run('SQLite', sqliteLedger);
if (!values['no-pg']) await run('PostgreSQL', postgresLedger);
process.exit(0);
