import { mkdtemp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { pathExists } from '../../spool/atomic.ts';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateFile } from '../../formats/index.ts';
import { openCentre } from '../../jobs/centre.ts';
import { startEngine } from '../../jobs/engine.ts';
import { runCycle, formatSummary } from '../../jobs/cycle.ts';
import { centreClock } from '../../jobs/runtime.ts';
import { createLogger } from '../../jobs/log.ts';
import { initCentre } from '../../jobs/starter.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { addDays } from '../../jobs/jmanager/periods.ts';
import { parseCommandArgs, UsageError, type Command } from '../cli-kit.ts';
import { ensureSshKeyPair, knownHostsLine } from '../../jobs/keys.ts';
import { createListeners } from '../../jobs/listeners.ts';
import { createSftpListener } from '../../protocols/sftp/listener.ts';
import { sftpEndpointSchema, sftpListenerSchema } from '../../protocols/sftp/config.ts';
import { SftpClient } from '../../protocols/sftp/client.ts';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { openLedger } from '../../spool/ledger/index.ts';
import { SpoolTree } from '../../spool/tree.ts';
import type { Logger } from 'pino';
import { readSalesRecords, terminalRecordOf, writeTerminalFile } from '../lib/terminal-file.ts';
import { startWebServices } from '../../web/start.ts';
import { UsersRepository } from '../../web/users.ts';
import { untilSignal } from '../signals.ts';
import { merchantSendsOverAs2, prepareAs2Demo, startCardCompanyAs2 } from '../lib/demo-as2.ts';
import { demoHulft } from '../lib/demo-hulft.ts';
import { parseConfig } from '../../jobs/config.ts';
import { addDemoUtility, dropDemoRegistration, runDemoUtility } from './demo-utility.ts';

const usage = 'tsunagi demo [--dir DIR] [--exit]   (the portal stays up until Ctrl-C unless --exit)';

/** What the example partners send in the demo: real files in their real layouts. */
async function dropExampleFiles(spoolRoot: string, today: string, offices: Record<string, string>): Promise<string[]> {
  // m-tokyo sends over SFTP and m-osaka over 全銀TCP/IP: their files are made in their own offices first.
  const inbound = (id: string) => offices[id] ?? path.join(spoolRoot, 'partners', id, 'inbound');
  const dropped: string[] = [];
  const drop = async (partner: string, name: string, fileType: string, opts: Parameters<typeof generateFile>[1]) => {
    const out = path.join(inbound(partner), name);
    const r = await generateFile(fileType, { createdDate: today, ...opts, out });
    const where = partner === 'm-tokyo' ? 'm-tokyo (to send over SFTP)' : partner === 'm-osaka' ? 'm-osaka (to send over 全銀TCP/IP)' : `${partner}/inbound`;
    dropped.push(`${where}/${name}: ${fileType}, ${r.recordCount} records${r.planted.length ? `, ${r.planted.length} planted errors` : ''}`);
  };
  const tokyo = { merchantNo: ['101000000000001', '101000000000002'], senderCode: '1000000001', senderName: 'TOKYO DEPARTMENT STORE', receiverCode: '0000000001' };
  await drop('m-tokyo', 'URIAGE_001.dat', '31', { ...tokyo, records: 300, seed: 1, fileSeq: 1, cardCompanyCodes: ['001', '002', '003'] });
  // Made a day earlier: the generator numbers terminals and slips the same way in every file, so the
  // same use date would make every record a duplicate of one in URIAGE_001.
  await drop('m-tokyo', 'URIAGE_002.dat', '31', { ...tokyo, records: 100, seed: 2, fileSeq: 2, errors: true, cardCompanyCodes: ['001', '003'], createdDate: addDays(today, -1) });
  await drop('m-tokyo', 'YUKO_001.dat', '41', { ...tokyo, records: 50, seed: 3, fileSeq: 1, cardCompanyCodes: ['001', '003'] });
  await drop('m-tokyo', 'GIFT_001.dat', '61', { ...tokyo, records: 20, seed: 4, fileSeq: 1, issuerCodes: ['901'] });
  await drop('m-osaka', 'SALES.dat', '31', { merchantNo: '102000000000001', senderCode: '1000000002', receiverCode: '0000000001', records: 80, seed: 5, fileSeq: 1, errors: true, cardCompanyCodes: ['001', '002'], framing: 'none' });
  await drop('cc-alpha', 'KINKYU.dat', '52', { senderCode: '2000000001', receiverCode: '0000000001', records: 10, seed: 6, fileSeq: 1, cardCompanyCodes: ['001'] });
  dropped.push(await dropTerminalJournal(inbound('online'), path.join(inbound('m-tokyo'), 'URIAGE_001.dat'), today));
  return dropped;
}

/**
 * The online centre's 81 journal of m-tokyo's terminals: the transactions behind URIAGE_001, with
 * four differences planted for reconciliation to find (one of each kind).
 */
async function dropTerminalJournal(dir: string, salesPath: string, today: string): Promise<string> {
  const journal = (await readSalesRecords(salesPath)).map(terminalRecordOf);
  journal.splice(5, 1); // submitted, but the terminal never saw it: no terminal transaction
  journal[10]!.amount += 100; // amount mismatch
  journal[20]!.approvalNo = '9999999'; // approval-number mismatch
  journal.push({ ...journal[0]!, slipNo: '99999', amount: 4321 }); // authorised, never submitted
  const name = 'JOURNAL_001.dat';
  const n = writeTerminalFile(journal, { createdDate: today }, path.join(dir, name));
  return `online/inbound/${name}: 81, ${n} records, 4 planted reconciliation differences`;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The demo's card company cc-alpha runs its own SFTP server; our client pushes to it. */
async function startCardCompanyServer(dir: string, port: number, centreClientKey: string, log: Logger) {
  const root = path.join(dir, 'cc-alpha-server');
  const spool = new SpoolTree(root);
  await spool.ensure(['tsunagi']);
  const ledger = await openLedger(`sqlite:${path.join(root, 'server.db')}`);
  const hostKey = path.join(dir, 'keys', 'cc-alpha-server_host_ed25519');
  await ensureSshKeyPair(hostKey, 'cc-alpha sftp host key');
  const server = createSftpListener(sftpListenerSchema.parse({ host: '127.0.0.1', port, hostKey: { file: hostKey } }), [{ partnerId: 'tsunagi', publicKeys: [centreClientKey], allowPassword: false }], {
    spool,
    ledger,
    log: log.child({ server: 'cc-alpha' }),
  });
  await server.start();
  return { inbound: spool.inbound('tsunagi'), hostKeyPub: `${hostKey}.pub`, stop: async () => (await server.stop(), await ledger.close()) };
}

/** m-osaka's own 全銀TCP/IP primary station calling our secondary. */
function osakaClient(dir: string, port: number, log: Logger): ZenginClient {
  return new ZenginClient(
    {
      protocol: 'zengin',
      host: '127.0.0.1',
      port,
      // The starter's 全銀 listener is TLS only, with a self-signed certificate the demo trusts.
      tls: { ca: { file: path.join(dir, 'keys', 'zengin_tls_cert.pem') } },
      ownCode: 'F1F0F0F0F0F0F2',
      partnerCode: 'F0F0F0F0F0F0F1',
      password: { file: path.join(dir, 'keys', 'zengin_m-osaka.password') },
      files: [
        { zenginName: 'URIAGE000002', accessKey: 'OSAKA1', fileType: '31', direction: 'send', recordLength: 200 },
        { zenginName: 'HENKYAKU0002', accessKey: 'OSAKA1', fileType: '91', direction: 'receive', recordLength: 120 },
        { zenginName: 'KINKYU000002', accessKey: 'OSAKA1', fileType: '52', direction: 'receive', recordLength: 120 },
      ],
    },
    log,
  );
}

function merchantClient(dir: string, port: number, folder: '/inbound' | '/outbound', log: Logger): SftpClient {
  return new SftpClient(
    sftpEndpointSchema.parse({
      protocol: 'sftp',
      host: '127.0.0.1',
      port,
      user: 'm-tokyo',
      path: folder,
      privateKey: { file: path.join(dir, 'keys', 'm-tokyo_ed25519') },
      knownHosts: path.join(dir, 'keys', 'known_hosts'),
    }),
    log,
  );
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
    const { values } = parseCommandArgs(argv, { dir: { type: 'string' }, exit: { type: 'boolean' } }, usage);
    const dir = path.resolve(values.dir ?? (await mkdtemp(path.join(tmpdir(), 'tsunagi-demo-'))));
    if (await pathExists(path.join(dir, 'tsunagi.yaml'))) throw new UsageError(`${dir} already holds a centre; give the demo a new folder`);
    const log = createLogger({ level: process.env.TSUNAGI_LOG_LEVEL ?? 'warn', destination: process.stderr });
    const keys = path.join(dir, 'keys');
    await mkdir(keys, { recursive: true, mode: 0o700 });
    const [sftpPort, ftpPort, ccPort, zenginPort, webPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const centreClient = await ensureSshKeyPair(path.join(keys, 'centre_client_ed25519'), 'tsunagi client key');
    const cardCompany = await startCardCompanyServer(dir, ccPort, centreClient.publicLine, log);
    const ccAlphaDelivery = `{ protocol: sftp, host: 127.0.0.1, port: ${ccPort}, user: tsunagi, path: /inbound, privateKey: { file: ./keys/centre_client_ed25519 }, knownHosts: ./keys/known_hosts }`;
    const as2Ports = { centre: await freePort(), ccGamma: await freePort(), mNagoya: await freePort() };
    const extraPartners = await prepareAs2Demo(dir, as2Ports);
    const { configFile } = await initCentre(dir, { sftpPort, ftpPort, zenginPort, webPort, ccAlphaDelivery, as2Port: as2Ports.centre, extraPartners });
    const ccGamma = await startCardCompanyAs2(dir, as2Ports.ccGamma, log);
    // cc-beta is on HULFT, played by the test stand-in (not HULFT).
    const hulft = demoHulft(dir);
    await writeFile(configFile, hulft.rewriteConfig(await readFile(configFile, 'utf8')));
    const config = parseConfig(await readFile(configFile, 'utf8'), configFile);
    await hulft.start(configFile);
    await writeFile(
      path.join(keys, 'known_hosts'),
      knownHostsLine('127.0.0.1', ccPort, await readFile(cardCompany.hostKeyPub, 'utf8')) + knownHostsLine('127.0.0.1', sftpPort, await readFile(path.join(keys, 'sftp_host_ed25519.pub'), 'utf8')),
    );
    await addDemoUtility(configFile, keys);
    const spoolRoot = path.resolve(config.baseDir, config.spoolRoot);
    const merchantOutbox = path.join(dir, 'm-tokyo-office', 'to-send');
    const merchantInbox = path.join(dir, 'm-tokyo-office', 'received');
    const osakaOutbox = path.join(dir, 'm-osaka-office', 'to-send');
    const osakaInbox = path.join(dir, 'm-osaka-office', 'received');
    for (const d of [merchantOutbox, merchantInbox, osakaOutbox, osakaInbox]) await mkdir(d, { recursive: true });
    const today = tokyoDate(centreClock()());
    const out = process.stdout;
    out.write(`tsunagi demo centre in ${dir}\nconfig: ${configFile} (embedded runner, SQLite ledger)\n`);
    out.write(`our SFTP server on 127.0.0.1:${sftpPort}, 全銀TCP/IP over TLS on 127.0.0.1:${zenginPort}, AS2 on 127.0.0.1:${as2Ports.centre}; card company cc-alpha's SFTP server on 127.0.0.1:${ccPort}, cc-gamma's AS2 server on 127.0.0.1:${as2Ports.ccGamma}; cc-beta on HULFT (a stand-in: tsunagi needs a licensed HULFT beside it)\n\nexample files:\n`);
    for (const line of await dropExampleFiles(spoolRoot, today, { 'm-tokyo': merchantOutbox, 'm-osaka': osakaOutbox })) out.write(`  ${line}\n`);
    out.write(`  ${await dropDemoRegistration(spoolRoot, today)}\n`);
    const centre = await openCentre(configFile, { log });
    const engine = await startEngine(centre);
    const listeners = await createListeners(engine);
    for (const l of listeners) await l.start();
    let web: Awaited<ReturnType<typeof startWebServices>> | undefined;
    try {
      // The merchant's head office uploads its files to our SFTP server, as it would from its own site.
      const upload = merchantClient(dir, sftpPort, '/inbound', log);
      for (const name of (await readdir(merchantOutbox)).sort()) {
        const r = await upload.push(path.join(merchantOutbox, name), name);
        out.write(`  m-tokyo uploaded ${name} over SFTP (${r.bytes} bytes)\n`);
      }
      await upload.close();
      const osaka = osakaClient(dir, zenginPort, log);
      const sent = await osaka.push(path.join(osakaOutbox, 'SALES.dat'), 'URIAGE000002');
      out.write(`  m-osaka sent SALES.dat over 全銀TCP/IP as URIAGE000002 (${sent.bytes} bytes)\n`);
      out.write(`  ${await merchantSendsOverAs2(dir, as2Ports, today, log)}\n`);
      out.write(`  ${await hulft.betaSendsResults(today)}\n`);
      out.write('\nrunning one nightly cycle...\n');
      const summary = await runCycle(engine, { date: today });
      out.write(formatSummary(summary));
      // ... and collects what the centre has for it.
      const download = merchantClient(dir, sftpPort, '/outbound', log);
      const offered = await download.list();
      for (const f of offered) await download.pull(f.name, path.join(merchantInbox, f.name));
      await download.close();
      for (const name of ['HENKYAKU0002', 'KINKYU000002']) {
        const got = await osaka.pull(name, path.join(osakaInbox, `${name}.dat`)).catch((err: Error) => err);
        out.write(got instanceof Error ? `\nm-osaka asked for ${name} over 全銀TCP/IP: ${got.message}` : `\nm-osaka received ${name} over 全銀TCP/IP (${got.bytes} bytes) into ${osakaInbox}`);
      }
      await osaka.close();
      out.write(`\nm-tokyo downloaded ${offered.length} files over SFTP into ${merchantInbox}: ${offered.map((f) => f.name).join(', ')}\n`);
      out.write(`\nwhat the partners got:\n`);
      for (const line of await tree(cardCompany.inbound)) out.write(`  cc-alpha's SFTP server: ${line}\n`);
      for (const line of await tree(ccGamma.inbound)) out.write(`  cc-gamma's AS2 server (signed sync MDN): ${line}\n`);
      for (const line of await tree(hulft.betaReceived)) out.write(`  cc-beta's HULFT (stand-in, by utlsend): ${line}\n`);
      for (const line of await tree(path.join(dir, 'remote'))) out.write(`  remote/${line}\n`);
      for (const p of config.partners.filter((x) => x.delivery.protocol === 'pull')) {
        for (const line of await tree(centre.spool.outbound(p.id))) out.write(`  spool/partners/${p.id}/outbound/${line}\n`);
      }
      const jm = await centre.ledger.db('files').where({ file_type: '71', direction: 'out' }).orderBy('id').select('partner_id', 'name', 'record_count', 'state');
      out.write('\nJmanager (71) files:\n');
      for (const f of jm) out.write(`  ${f.partner_id}/${f.name}: ${f.record_count} rows, ${f.state}\n`);
      const run = await centre.ledger.db('reconcile_runs').where({ report_date: addDays(today, -1) }).first();
      if (run) {
        out.write(`\nreconciliation of ${run.report_date}: ${run.discrepancies} discrepancies\n`);
        for (const [c, n] of Object.entries(JSON.parse(run.counts) as Record<string, number>)) if (n) out.write(`  ${c.padEnd(26)}${n}\n`);
        out.write(`  report: ${run.report_path}\n`);
      }
      out.write('\nutility billing (公共料金, u-city):\n');
      for (const line of await runDemoUtility(engine, spoolRoot, cardCompany.inbound, path.join(dir, 'remote'), today)) out.write(`${line}\n`);
      const cfg = `--config ${configFile}`;
      // The merchant portal and operator console on this centre, with a demo login for each.
      web = await startWebServices(engine, listeners);
      const users = new UsersRepository(centre.ledger);
      const merchantUser = await users.add(config, { username: 'demo-tokyo', partnerId: 'm-tokyo' });
      const operator = await users.add(config, { username: 'demo-ops', operator: true });
      out.write(`\nportal (Web-JTRANS, self-signed certificate): ${web.web!.url}/login\n`);
      out.write(`  merchant login: ${merchantUser.username} / ${merchantUser.password}   (m-tokyo: files, upload, Jmanager search)\n`);
      out.write(`  operator login: ${operator.username} / ${operator.password}, TOTP secret ${operator.totpSecret} (add it to an authenticator app; console at /ops)\n`);
      out.write(`  metrics: ${web.web!.url}/metrics   health: ${web.web!.url}/healthz\n`);
      out.write(`\nlook closer (from this repository):\n  npx tsunagi files ${cfg}\n  npx tsunagi show FILE_ID ${cfg}\n  npx tsunagi validate ${hulft.betaReceived}/<file> --encoding ebcdic-kana --framing none\n  npx tsunagi hulft-defs cc-beta ${cfg}\n  npx tsunagi jmanager query --merchant m-tokyo --from ${addDays(today, -7)} --to ${today} ${cfg}\n  npx tsunagi reconcile --date ${addDays(today, -1)} ${cfg}\n  npx tsunagi utility show --customer K0007 ${cfg}\n`);
      if (!values.exit) {
        out.write('\nthe portal stays up until Ctrl-C\n');
        await untilSignal();
      }
      return 0;
    } finally {
      await web?.stop();
      for (const l of listeners) await l.stop();
      await engine.stop();
      await centre.close();
      await cardCompany.stop();
      await ccGamma.stop();
    }
  },
};
