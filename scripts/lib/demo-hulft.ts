// The demo's card company cc-beta (a mainframe, EBCDIC) on HULFT, played by the test stand-in
// under test/fakes/hulft, which is NOT HULFT and speaks no HULFT protocol: it copies files
// between folders the way HULFT's commands and job hooks behave, so the demo runs without a
// licensed HULFT. A real centre points hulft.binDir at its HULFT installation instead.
import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { generateFile } from '../../formats/index.ts';
import { hulftJobLines } from '../../protocols/hulft/config.ts';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STAND_IN_BIN = path.join(ROOT, 'test', 'fakes', 'hulft', 'bin');
const OUR_NODE = 'TSUNAGI';
const BETA = 'BETA01';

export interface DemoHulft {
  /** Config text with cc-beta moved onto HULFT and the centre's hulft section. */
  rewriteConfig(text: string): string;
  /** Our node's and cc-beta's definitions; this process (and the jobs HULFT runs) finds the stand-in. */
  start(configFile: string): Promise<void>;
  /** cc-beta's HULFT sends its 33 results; our 集信後ジョブ (tsunagi hulft-received) lands them. */
  betaSendsResults(today: string): Promise<string>;
  /** Where cc-beta's HULFT put what we sent. */
  readonly betaReceived: string;
}

export function demoHulft(dir: string): DemoHulft {
  const root = path.join(dir, 'hulft-stand-in');
  const ours = (...p: string[]) => path.join(dir, 'hulft', ...p);
  const beta = (...p: string[]) => path.join(dir, 'cc-beta-hulft', ...p);
  const writeNode = async (host: string, defs: object) => {
    await mkdir(path.join(root, 'nodes', host), { recursive: true });
    await writeFile(path.join(root, 'nodes', host, 'defs.json'), JSON.stringify({ up: true, ports: { rcv: 30000, obs: 31000 }, dynparam: true, jobwtimeout: 300, ...defs }, null, 1));
  };
  return {
    betaReceived: beta('rcv'),
    rewriteConfig(text) {
      const centre = `hulft: { binDir: ${STAND_IN_BIN}, etcDir: ${path.join(root, 'etc')}, dynparam: true, syncTimeoutSeconds: 600, aliveCheckSeconds: 10 }\npartners:`;
      const betaHulft = `delivery: { protocol: hulft }            # on HULFT (the demo's stand-in plays its HULFT and ours)
    hulft:
      host: ${BETA}
      version: 8
      send:
        - { fileId: TSG32B, fileTypes: ["32", "41"], fileName: ${ours('snd', 'TSG32B')}, transferType: binary, codeConversion: none, jobs: { success: TSGSENT, failure: TSGSENT } }
      receive:
        - { fileId: TSG33B, fileTypes: ["33"], fileName: ${ours('rcv', 'TSG33B')}, mode: new, generations: 9999, onError: delete, notify: job, jobs: { success: TSGRCVOK, failure: TSGRCVNG } }`;
      return text.replace(/^partners:$/m, centre).replace('delivery: { protocol: local, path: ./remote/cc-beta }', betaHulft);
    },
    async start(configFile) {
      await mkdir(path.join(root, 'etc'), { recursive: true });
      await mkdir(ours('rcv'), { recursive: true });
      await mkdir(path.join(dir, 'bin'), { recursive: true });
      // HULFT's job lines say `tsunagi ...`; this one runs this working tree's CLI.
      await writeFile(path.join(dir, 'bin', 'tsunagi'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(ROOT, 'bin', 'tsunagi.js')}" "$@"\n`);
      await chmod(path.join(dir, 'bin', 'tsunagi'), 0o755);
      const lines = hulftJobLines('tsunagi', configFile);
      await writeNode(OUR_NODE, {
        send: [{ fileId: 'TSG32B', fileName: ours('snd', 'TSG32B'), transferType: 'binary', codeConversion: 'none', clear: 'keep', jobs: { success: 'TSGSENT', failure: 'TSGSENT' } }],
        receive: [{ fileId: 'TSG33B', fileName: ours('rcv', 'TSG33B'), mode: 'new', generations: 9999, onError: 'delete', notify: 'job', jobs: { success: 'TSGRCVOK', failure: 'TSGRCVNG' } }],
        jobs: { TSGSENT: [lines.sent], TSGRCVOK: [lines.received], TSGRCVNG: [lines.failed] },
      });
      await writeNode(BETA, {
        receive: [{ fileId: 'TSG32B', fileName: beta('rcv', 'TSG32B'), mode: 'new', generations: 99, onError: 'delete', notify: 'job' }],
        send: [{ fileId: 'TSG33B', fileName: beta('snd', 'TSG33B'), transferType: 'binary', codeConversion: 'none' }],
      });
      process.env.FAKE_HULFT_ROOT = root;
      process.env.FAKE_HULFT_SELF = OUR_NODE;
      process.env.PATH = `${path.join(dir, 'bin')}:${process.env.PATH}`;
    },
    async betaSendsResults(today) {
      await mkdir(beta('snd'), { recursive: true });
      const r = await generateFile('33', { layout: 'sales.company120', encoding: 'ebcdic-kana', framing: 'none', records: 6, seed: 7, merchantNo: '101000000000001', cardCompanyCodes: ['003'], senderCode: '2000000002', receiverCode: '0000000001', createdDate: today, out: beta('snd', 'TSG33B') });
      await run(path.join(STAND_IN_BIN, 'utlsend'), ['-f', 'TSG33B', '-h', OUR_NODE, '-sync', '-w', '300'], { env: { ...process.env, FAKE_HULFT_SELF: BETA, HULPATH: path.join(root, 'etc') } });
      return `cc-beta sent its 33 results over HULFT (stand-in) as TSG33B: ${r.recordCount} records, landed by tsunagi hulft-received`;
    },
  };
}
