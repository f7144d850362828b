// A throwaway centre for pipeline tests: N merchants and M card companies on local delivery, a
// config file, and generated merchant files in their inbound folders.
import { mkdtemp, mkdir, writeFile, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateFile } from '../../formats/index.ts';

export interface TestCentreOptions {
  merchants: number;
  companies: number;
  recordsPerFile?: number;
  /** ledger URL; default a SQLite file in the centre folder */
  ledger?: string;
  queue?: string;
  /** companies whose 32 is the EBCDIC mainframe variant */
  mainframeCompanies?: number[];
  maxAttempts?: number;
  backoffSeconds?: number;
  extraPartnerYaml?: string;
}

export interface TestCentre {
  dir: string;
  configFile: string;
  remote(partnerId: string): string;
  merchantIds: string[];
  companyIds: string[];
}

export const companyCode = (i: number) => String(i + 1).padStart(3, '0');
export const merchantNo = (i: number) => `1${String(i + 1).padStart(14, '0')}`;
export const merchantCode = (i: number) => `1${String(i + 1).padStart(9, '0')}`;

export async function makeTestCentre(options: TestCentreOptions): Promise<TestCentre> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-centre-'));
  const merchantIds = Array.from({ length: options.merchants }, (_, i) => `m${String(i + 1).padStart(3, '0')}`);
  const companyIds = Array.from({ length: options.companies }, (_, i) => `cc${i + 1}`);
  const lines = [
    'centre: { code: "0000000001", name: TEST CENTRE }',
    'spoolRoot: ./spool',
    `ledger: ${options.ledger ?? 'sqlite:./ledger.db'}`,
    `queue: ${options.queue ?? 'embedded'}`,
    'quietPeriodSeconds: 0',
    `deliver: { maxAttempts: ${options.maxAttempts ?? 3}, backoffSeconds: ${options.backoffSeconds ?? 0.05} }`,
    'workers: { concurrency: 2 }',
    'partners:',
  ];
  merchantIds.forEach((id, i) => {
    lines.push(
      `  - { id: ${id}, name: MERCHANT ${i + 1}, role: merchant, code: "${merchantCode(i)}", merchantNos: ["${merchantNo(i)}"], send: ["31", "41"], receive: ["33", "42", "51", "52", "91"], delivery: { protocol: local, path: ./remote/${id} } }`,
    );
  });
  companyIds.forEach((id, i) => {
    const mainframe = options.mainframeCompanies?.includes(i)
      ? ', formats: { "32": { layout: sales.company120, encoding: ebcdic-kana, framing: none } }'
      : '';
    lines.push(
      `  - { id: ${id}, name: CARD ${i + 1}, role: card-company, code: "2${String(i + 1).padStart(9, '0')}", cardCompanyCodes: ["${companyCode(i)}"], send: ["33", "42", "51", "52"], receive: ["32", "41"], delivery: { protocol: local, path: ./remote/${id} }${mainframe} }`,
    );
  });
  if (options.extraPartnerYaml) lines.push(options.extraPartnerYaml);
  const configFile = path.join(dir, 'tsunagi.yaml');
  await writeFile(configFile, lines.join('\n') + '\n');
  for (const id of [...merchantIds, ...companyIds]) {
    await mkdir(path.join(dir, 'spool', 'partners', id, 'inbound'), { recursive: true });
    await mkdir(path.join(dir, 'remote', id), { recursive: true });
  }
  return { dir, configFile, remote: (id) => path.join(dir, 'remote', id), merchantIds, companyIds };
}

/** One 31 sales file per merchant, spread over every card company. */
export async function dropSalesFiles(centre: TestCentre, options: { records: number; seed?: number; fileSeq?: number; createdDate?: string; errorsFor?: number[] }): Promise<void> {
  const codes = centre.companyIds.map((_, i) => companyCode(i));
  for (const [i, id] of centre.merchantIds.entries()) {
    await generateFile('31', {
      records: options.records,
      seed: (options.seed ?? 1) * 1000 + i,
      merchantNo: merchantNo(i),
      senderCode: merchantCode(i),
      receiverCode: '0000000001',
      fileSeq: options.fileSeq ?? 1,
      cardCompanyCodes: codes,
      createdDate: options.createdDate ?? '20261125',
      errors: options.errorsFor?.includes(i),
      out: path.join(centre.dir, 'spool', 'partners', id, 'inbound', `sales-${options.fileSeq ?? 1}.dat`),
    });
  }
}

/** Every file under remote/, as relative path -> bytes. */
export async function remoteContents(centre: TestCentre): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const partner of await readdir(path.join(centre.dir, 'remote'))) {
    for (const name of await readdir(path.join(centre.dir, 'remote', partner))) {
      out.set(`${partner}/${name}`, await readFile(path.join(centre.dir, 'remote', partner, name)));
    }
  }
  return out;
}
