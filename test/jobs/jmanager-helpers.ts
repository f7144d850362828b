// A centre for Jmanager and reconciliation tests: a test ledger (SQLite or PostgreSQL), a spool
// in a temp folder, head offices with every cycle, and a context whose enqueue only records.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../jobs/config.ts';
import type { Centre } from '../../jobs/centre.ts';
import type { JobContext, JobRequest } from '../../jobs/context.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { FilesRepository } from '../../spool/ledger/index.ts';
import { SpoolTree } from '../../spool/tree.ts';
import type { TestLedger } from '../helpers/ledgers.ts';
import { writeTerminalFile, type TerminalRecord } from '../../scripts/lib/terminal-file.ts';
import type { FileRow } from '../../spool/ledger/index.ts';

export const CONFIG = `
centre: { code: "0000000001", name: TSUNAGI TEST }
partners:
  - id: ho-a
    name: HEAD OFFICE A
    role: merchant
    code: "1000000001"
    merchantNos: ["100000000000001", "100000000000002"]
    send: ["31"]
    receive: ["71"]
    jmanagerCycles: [D, F, H, M]
  - id: ho-b
    name: HEAD OFFICE B
    role: merchant
    code: "1000000002"
    merchantNos: ["200000000000001"]
    send: ["31"]
    receive: ["71"]
    jmanagerCycles: [M]
    formats: { "71": { encoding: sjis, framing: lf } }
  - id: cc1
    name: CARD ONE
    role: card-company
    code: "2000000001"
    cardCompanyCodes: ["001", "002"]
    resultDeadlineHours: 24
    receive: ["32"]
  - id: online
    name: ONLINE CENTRE
    role: online-centre
    code: "9000000001"
    send: ["81"]
`;

export interface TestCentre {
  ctx: JobContext;
  enqueued: JobRequest[];
  dir: string;
  /** Writes an 81 file and registers it in the ledger as accepted; returns its row. */
  terminalFile(id: string, records: TerminalRecord[], createdDate?: string): Promise<FileRow>;
  dispose(): Promise<void>;
}

export async function testCentre(t: TestLedger, now = new Date('2024-03-15T01:00:00Z')): Promise<TestCentre> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-jm-'));
  const config = parseConfig(CONFIG, path.join(dir, 'tsunagi.yaml'));
  const spool = new SpoolTree(path.join(dir, 'spool'));
  await spool.ensure(config.partners.map((p) => p.id));
  const byId = new Map(config.partners.map((p) => [p.id, p]));
  const centre: Centre = {
    config, ledger: t.ledger, files: new FilesRepository(t.ledger), spool, log: createLogger({ level: 'silent' }),
    partner: (id) => byId.get(id)!, close: async () => undefined,
  };
  const enqueued: JobRequest[] = [];
  const ctx = makeJobContext(centre, async (r) => { enqueued.push(r); }, () => now);
  let seq = 0;
  return {
    ctx, enqueued, dir,
    async terminalFile(id, records, createdDate = '20240301') {
      const p = path.join(dir, `${id}.dat`);
      writeTerminalFile(records, { createdDate }, p);
      await centre.files.create({
        id, partner_id: 'online', direction: 'in', file_type: '81', name: `${id}.dat`, path: p, size: null, sha256: null, sender_code: '9000000001',
        receiver_code: '0000000001', file_seq: String(++seq).padStart(6, '0'), business_date: createdDate, record_count: records.length, accepted_count: records.length,
        rejected_count: 0, amount_total: null, parent_id: null, state: 'accepted',
      }, 'test');
      return (await centre.files.get(id))!;
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A terminal transaction with defaults; override what the test is about. */
export function txn(over: Partial<TerminalRecord> = {}): TerminalRecord {
  return {
    merchantNo: '100000000000001', storeCode: 'ST01', terminalId: 'T0001', txnDate: '20240301', slipNo: '00001', cardCompanyCode: '001',
    paymentKind: '1', txnType: '10', paymentMethod: '10', installments: '00', amount: 1000, approvalNo: '1234567', cardNo: '4111111111111111', ...over,
  };
}
