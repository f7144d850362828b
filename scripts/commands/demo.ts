import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateFile } from '../../formats/index.ts';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle, formatSummary } from '../../jobs/cycle.ts';
import { createLogger } from '../../jobs/log.ts';
import { initCentre } from '../../jobs/starter.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { parseCommandArgs, type Command } from '../cli-kit.ts';

const usage = 'tsunagi demo [--dir DIR]';

/** What the example partners send in the demo: real files in their real layouts. */
async function dropExampleFiles(spoolRoot: string, today: string): Promise<string[]> {
  const inbound = (id: string) => path.join(spoolRoot, 'partners', id, 'inbound');
  const dropped: string[] = [];
  const drop = async (partner: string, name: string, fileType: string, opts: Parameters<typeof generateFile>[1]) => {
    const out = path.join(inbound(partner), name);
    const r = await generateFile(fileType, { createdDate: today, ...opts, out });
    dropped.push(`${partner}/inbound/${name}: ${fileType}, ${r.recordCount} records${r.planted.length ? `, ${r.planted.length} planted errors` : ''}`);
  };
  const tokyo = { merchantNo: ['101000000000001', '101000000000002'], senderCode: '1000000001', senderName: 'TOKYO DEPARTMENT STORE', receiverCode: '0000000001' };
  await drop('m-tokyo', 'URIAGE_001.dat', '31', { ...tokyo, records: 300, seed: 1, fileSeq: 1, cardCompanyCodes: ['001', '002', '003'] });
  await drop('m-tokyo', 'URIAGE_002.dat', '31', { ...tokyo, records: 100, seed: 2, fileSeq: 2, errors: true, cardCompanyCodes: ['001', '003'] });
  await drop('m-tokyo', 'YUKO_001.dat', '41', { ...tokyo, records: 50, seed: 3, fileSeq: 1, cardCompanyCodes: ['001', '003'] });
  await drop('m-tokyo', 'GIFT_001.dat', '61', { ...tokyo, records: 20, seed: 4, fileSeq: 1, issuerCodes: ['901'] });
  await drop('m-osaka', 'SALES.dat', '31', { merchantNo: '102000000000001', senderCode: '1000000002', receiverCode: '0000000001', records: 80, seed: 5, fileSeq: 1, errors: true, cardCompanyCodes: ['001', '002'] });
  await drop('cc-alpha', 'KINKYU.dat', '52', { senderCode: '2000000001', receiverCode: '0000000001', records: 10, seed: 6, fileSeq: 1, cardCompanyCodes: ['001'] });
  return dropped;
}

async function tree(dir: string, prefix = ''): Promise<string[]> {
  const lines: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory()) lines.push(...(await tree(path.join(dir, e.name), `${prefix}${e.name}/`)));
    else lines.push(`${prefix}${e.name}`);
  }
  return lines;
}

export const command: Command = {
  summary: 'build a temporary centre with example partners and files, and run a full cycle on it',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { dir: { type: 'string' } }, usage);
    const dir = path.resolve(values.dir ?? (await mkdtemp(path.join(tmpdir(), 'tsunagi-demo-'))));
    const { configFile, config } = await initCentre(dir);
    const spoolRoot = path.resolve(config.baseDir, config.spoolRoot);
    const today = tokyoDate(new Date());
    const out = process.stdout;
    out.write(`tsunagi demo centre in ${dir}\nconfig: ${configFile} (embedded runner, SQLite ledger)\n\nexample files dropped:\n`);
    for (const line of await dropExampleFiles(spoolRoot, today)) out.write(`  ${line}\n`);
    const centre = await openCentre(config, { log: createLogger({ level: process.env.TSUNAGI_LOG_LEVEL ?? 'warn', destination: process.stderr }) });
    const engine = await startEngine(centre);
    try {
      out.write('\nrunning one nightly cycle...\n');
      const summary = await runCycle(engine, { date: today });
      out.write(formatSummary(summary));
      out.write(`\nwhat the partners got (pushed to ${path.join(dir, 'remote')}, or waiting in their outbound folder):\n`);
      for (const line of await tree(path.join(dir, 'remote'))) out.write(`  remote/${line}\n`);
      for (const p of config.partners.filter((x) => x.delivery.protocol === 'pull')) {
        for (const line of await tree(centre.spool.outbound(p.id))) out.write(`  spool/partners/${p.id}/outbound/${line}\n`);
      }
      out.write(`\nlook closer:\n  cd ${dir}\n  npx tsunagi files --config tsunagi.yaml\n  npx tsunagi show FILE_ID --config tsunagi.yaml\n  npx tsunagi validate remote/cc-alpha/<file>\n`);
      return 0;
    } finally {
      await engine.stop();
      await centre.close();
    }
  },
};
