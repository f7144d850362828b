// HULFT config rules (spec hulft.md §1), the definitions and job lines tsunagi prints for HULFT,
// and the §5 checks (text transfer character set, format items). No HULFT needed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig, ConfigError } from '../../jobs/config.ts';
import { hulftConfigWarnings, hulftJobLines } from '../../protocols/hulft/config.ts';
import { hulftParameterFile, hulftFormatItems } from '../../protocols/hulft/defs.ts';
import { checkTextTransfer, findGaijiSubstitutes, gaijiFieldsIn } from '../../protocols/hulft/charset.ts';
import { checkLayout, generateFile } from '../../formats/index.ts';
import { jobLineProblem } from '../../scripts/commands/hulft-job-line.ts';

const centre = `
centre: { code: "0000000001", name: TSUNAGI }
hulft: { binDir: /opt/HULFT/bin, etcDir: /opt/HULFT/etc, dynparam: true, syncTimeoutSeconds: 3600, aliveCheckSeconds: 20 }
partners:
  - id: m001
    name: Merchant One
    role: merchant
    code: "1000000001"
    merchantNos: ["123456789012345"]
    send: ["31"]
    receive: ["33", "91"]
`;

function company(hulft: string, extra = ''): string {
  return `${centre}  - id: cc-alpha
    name: ALPHA CARD
    role: card-company
    code: "2000000001"
    cardCompanyCodes: ["001"]
    send: ["33"]
    receive: ["32"]
    delivery: { protocol: hulft }
${extra}    hulft:
${hulft}`;
}

const SPEC_PROFILE = `      host: ALPHA01
      ports: { rcv: 30000, obs: 31000 }
      version: 8
      send:
        - fileId: TSG32A
          fileTypes: ["32"]
          fileName: /srv/h/snd/TSG32A
          transferType: binary
          codeConversion: none
          compression: none
          clear: keep
          jobs: { success: TSGSENT, failure: TSGSENT }
      receive:
        - fileId: TSG33A
          fileTypes: ["33"]
          fileName: /srv/h/rcv/TSG33A
          mode: new
          generations: 9999
          onError: delete
          notify: job
          codeSet: "0"
          jobs: { success: TSGRCVOK, failure: TSGRCVNG }
`;

function problems(text: string): string[] {
  try {
    parseConfig(text, '/etc/tsunagi.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('HULFT config', () => {
  it("accepts the spec's profile, fills HULFT's defaults, and has no warnings for it", () => {
    const c = parseConfig(company(SPEC_PROFILE), '/etc/tsunagi.yaml');
    const p = c.partners[1]!;
    assert.equal(p.delivery.protocol, 'hulft');
    assert.equal(p.hulft!.send[0]!.transferType, 'binary');
    assert.equal(c.hulft!.aliveCheckSeconds, 20);
    assert.deepEqual(hulftConfigWarnings(c), []);
    const defaults = parseConfig(company(`      host: ALPHA01\n      send: [{ fileId: TSG32A, fileTypes: ["32"], fileName: /srv/h/snd/TSG32A }]\n      receive: [{ fileId: TSG33A, fileTypes: ["33"], fileName: /srv/h/rcv/TSG33A }]\n`), '/x.yaml').partners[1]!.hulft!;
    // HULFT's own defaults: TRANSTYPE T, KJCHNGE S, CLEAR K; TRANSMODE N, ABNORMAL D, GENCTL N, JOBWAIT T, CODESET 0.
    assert.deepEqual([defaults.send[0]!.transferType, defaults.send[0]!.codeConversion, defaults.send[0]!.clear], ['text', 'sender', 'keep']);
    const r = defaults.receive[0]!;
    assert.deepEqual([r.mode, r.onError, r.generations, r.notify, r.codeSet], ['new', 'delete', 0, 'receipt', '0']);
    assert.deepEqual(defaults.ports, { rcv: 30000, obs: 31000 });
  });

  it('takes `delivery: hulft` as the short form', () => {
    const c = parseConfig(company(SPEC_PROFILE).replace('delivery: { protocol: hulft }', 'delivery: hulft'), '/x.yaml');
    assert.equal(c.partners[1]!.delivery.protocol, 'hulft');
  });

  it('checks file IDs by HULFT version, naming the path', () => {
    const long = problems(company(SPEC_PROFILE.replace('TSG32A', 'A'.repeat(51))));
    assert.ok(long.some((p) => p.startsWith('partners[1].hulft.send[0].fileId') && /1 to 50 bytes/.test(p)), long.join('\n'));
    const chars = problems(company(SPEC_PROFILE.replace('TSG32A', 'tsg-32a')));
    assert.ok(chars.some((p) => p.startsWith('partners[1].hulft.send[0].fileId') && /A-Z, 0-9 and _/.test(p)), chars.join('\n'));
    const v7 = (id: string) => problems(company(SPEC_PROFILE.replace('version: 8', 'version: 7').replace('TSG33A', id)));
    assert.ok(v7('TSG33ABCD').some((p) => p.startsWith('partners[1].hulft.receive[0].fileId') && /at most 8 bytes/.test(p)));
    assert.ok(v7('3TSG').some((p) => /start with a letter/.test(p)));
    assert.ok(v7('TSG_33').some((p) => /no '_'/.test(p)));
    // version 8 takes what version 7 does not
    parseConfig(company(SPEC_PROFILE.replace('TSG33A', '3TSG_33_RESULTS_FROM_ALPHA')), '/x.yaml');
    assert.ok(problems(company(SPEC_PROFILE.replace('version: 8', 'version: 7').replace('compression: none', 'compression: deflate'))).some((p) => p.startsWith('partners[1].hulft.send[0].compression')));
  });

  it('wants file IDs unique per direction, clear: keep, job IDs of at most 50 bytes', () => {
    const twice = problems(company(SPEC_PROFILE + `        - { fileId: TSG33A, fileTypes: ["33"], fileName: /srv/h/rcv/OTHER }\n`));
    assert.ok(twice.some((p) => p.startsWith('partners[1].hulft.receive[1].fileId') && /already used by partners\[1\]\.hulft\.receive\[0\]/.test(p)), twice.join('\n'));
    // the same ID in the other direction is fine
    parseConfig(company(SPEC_PROFILE.replace('fileId: TSG33A', 'fileId: TSG32A')), '/x.yaml');
    const clear = problems(company(SPEC_PROFILE.replace('clear: keep', 'clear: delete')));
    assert.ok(clear.some((p) => p.startsWith('partners[1].hulft.send[0].clear') && /must be keep/.test(p)), clear.join('\n'));
    const job = problems(company(SPEC_PROFILE.replace('success: TSGRCVOK', `success: ${'J'.repeat(51)}`)));
    assert.ok(job.some((p) => p.startsWith('partners[1].hulft.receive[0].jobs.success')));
    const host = problems(company(SPEC_PROFILE.replace('host: ALPHA01', `host: ${'H'.repeat(69)}`)));
    assert.ok(host.some((p) => p.startsWith('partners[1].hulft.host') && /68 bytes/.test(p)), host.join('\n'));
  });

  it('checks generations, FILENAME lengths, file types and the centre section', () => {
    assert.ok(problems(company(SPEC_PROFILE.replace('generations: 9999', 'generations: 1'))).some((p) => p.startsWith('partners[1].hulft.receive[0].generations')));
    assert.ok(problems(company(SPEC_PROFILE.replace('/srv/h/rcv/TSG33A', `/srv/${'r'.repeat(190)}`))).some((p) => p.startsWith('partners[1].hulft.receive[0].fileName') && /190 bytes/.test(p)));
    assert.ok(problems(company(SPEC_PROFILE.replace('fileTypes: ["32"]', 'fileTypes: ["41"]'))).some((p) => p.startsWith('partners[1].hulft.send') && /file type 32/.test(p)));
    const noCentre = problems(company(SPEC_PROFILE).replace(/^hulft: .*$/m, ''));
    assert.ok(noCentre.some((p) => p.startsWith('hulft') && /binDir/.test(p)), noCentre.join('\n'));
    assert.ok(problems(company(SPEC_PROFILE).replace('aliveCheckSeconds: 20', 'aliveCheckSeconds: 5')).some((p) => p.startsWith('hulft.aliveCheckSeconds')));
    const noSection = problems(`${centre}  - { id: cc9, name: C, role: card-company, code: "2000000009", cardCompanyCodes: ["009"], receive: ["32"], delivery: { protocol: hulft } }\n`);
    assert.ok(noSection.some((p) => p.startsWith('partners[1].hulft')), noSection.join('\n'));
  });

  it('refuses a job line over 200 bytes and text transfer of layouts with packed fields', () => {
    const long = problems(company(SPEC_PROFILE).replace('aliveCheckSeconds: 20', `aliveCheckSeconds: 20, jobCommand: /opt/${'x'.repeat(100)}/tsunagi`));
    assert.ok(long.some((p) => p.startsWith('hulft.jobCommand') && /200/.test(p)), long.join('\n'));
    const packed = problems(company(SPEC_PROFILE.replace('transferType: binary', 'transferType: text'), `    formats: { "32": { layout: sales.company120, encoding: sjis, framing: crlf } }\n`));
    assert.ok(packed.some((p) => p.startsWith('partners[1].hulft.send[0].transferType') && /amount \(type P\)/.test(p)), packed.join('\n'));
    const ebcdic = problems(company(SPEC_PROFILE.replace('transferType: binary', 'transferType: text'), `    formats: { "32": { encoding: ebcdic-kana, framing: none } }\n`));
    assert.ok(ebcdic.some((p) => /Shift_JIS/.test(p)) && ebcdic.some((p) => /CR LF/.test(p)), ebcdic.join('\n'));
  });

  it('warns where HULFT allows what tsunagi does not recommend', () => {
    const c = parseConfig(company(SPEC_PROFILE.replace('mode: new', 'mode: append').replace('notify: job', 'notify: receipt').replace('codeConversion: none', 'codeConversion: sender')), '/x.yaml');
    const w = hulftConfigWarnings(c).map((x) => `${x.path.join('.')}: ${x.message}`);
    assert.ok(w.some((x) => x.startsWith('partners.1.hulft.receive.0.mode')), w.join('\n'));
    assert.ok(w.some((x) => x.startsWith('partners.1.hulft.receive.0.notify')));
    assert.ok(w.some((x) => x.startsWith('partners.1.hulft.send.0.transferType')));
  });
});

describe('what tsunagi prints for HULFT', () => {
  it('hulft-defs: a parameter file with the letters HULFT uses', () => {
    const c = parseConfig(company(SPEC_PROFILE), '/etc/tsunagi.yaml');
    const text = hulftParameterFile('cc-alpha', c.partners[1]!.hulft!, c.hulft!, c.file);
    const block = (key: string) => text.split('\nEND\n').find((b) => b.includes(`\n${key}\n`) || b.includes(`\n${key}`))!;
    const snd = block('SNDFILE=TSG32A');
    for (const line of ['FILENAME=/srv/h/snd/TSG32A', 'TRANSTYPE=B', 'KJCHNGE=N', 'CLEAR=K', 'JOBID=TSGSENT', 'EJOBID=TSGSENT']) assert.ok(snd.includes(`\n${line}`), `${line} in\n${snd}`);
    const rcv = block('RCVFILE=TSG33A');
    for (const line of ['TRANSMODE=N', 'ABNORMAL=D', 'GENCTL=Y', 'GENMNGNO=9999', 'JOBWAIT=J', 'CODESET=0', 'JOBID=TSGRCVOK', 'EJOBID=TSGRCVNG']) assert.ok(rcv.includes(`\n${line}`), `${line} in\n${rcv}`);
    assert.ok(block('JOB=TSGRCVNG').includes('hulft-received --file-id $FILEID --file $FILENM --host $HOST --status $STATUS --detail $DETAIL --msg0=$MSG0 --failed'));
    assert.ok(block('JOB=TSGSENT').includes('hulft-sent --file-id $FILEID --host $HOST --file $FILENM --status $STATUS --detail $DETAIL --msg0=$MSG0'));
    assert.match(text, /HOST=ALPHA01/);
  });

  it('hulft-job-line: the spec lines, checked for 200 bytes and their variables', () => {
    const lines = hulftJobLines('tsunagi');
    assert.equal(lines.received, 'tsunagi hulft-received --file-id $FILEID --file $FILENM --host $HOST --status $STATUS --detail $DETAIL --msg0=$MSG0');
    assert.equal(lines.failed, `${lines.received} --failed`);
    assert.equal(lines.sent, 'tsunagi hulft-sent --file-id $FILEID --host $HOST --file $FILENM --status $STATUS --detail $DETAIL --msg0=$MSG0');
    assert.equal(jobLineProblem(lines.received, 'received'), null);
    assert.match(jobLineProblem(`${lines.received} ${'x'.repeat(100)}`, 'received')!, /at most 200/);
    assert.match(jobLineProblem('tsunagi hulft-received --file-id $FILEID', 'received')!, /missing/);
  });

  it('hulft-format: C→X, K→N (M in EBCDIC), N→9, P→P', () => {
    const items = hulftFormatItems('sales.company120');
    const t = (field: string) => items.find((i) => i.field === field)!.hulftType;
    assert.deepEqual([t('merchantNo'), t('slipNo'), t('amount')], ['X', '9', 'P']);
    const sjis = hulftFormatItems('sales');
    const k = sjis.find((i) => i.ourType === 'K');
    if (k) assert.equal(k.hulftType, 'N');
    const kEbcdic = hulftFormatItems('sales', 'ebcdic-kana').find((i) => i.ourType === 'K');
    if (kEbcdic) assert.equal(kEbcdic.hulftType, 'M');
    assert.ok(sjis.some((i) => i.recordType === '1') && sjis.some((i) => i.recordType === '9'), 'a family gives every record type (multiformat)');
  });
});

describe('§5 character checks', () => {
  it('text transfer: refuses a character outside JIS X 0201/0208 and control bytes, naming record and field', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-hulft-cs-'));
    try {
      const file = path.join(dir, 'T32.dat');
      await generateFile('32', { records: 3, seed: 1, senderCode: '0000000001', receiverCode: '2000000001', cardCompanyCodes: ['001'], out: file });
      assert.equal(await checkTextTransfer(file), null);
      const bytes = Buffer.from(await import('node:fs/promises').then((f) => f.readFile(file)));
      const rec2 = 202 * 2; // header + first data record, CR LF framed
      const bad = Buffer.from(bytes);
      bad[rec2 + 4] = 0x87; // NEC row 13 (①) in merchantNo of the second data record
      bad[rec2 + 5] = 0x40;
      await writeFile(file, bad);
      const p = await checkTextTransfer(file);
      assert.ok(p, 'a vendor character is refused');
      assert.equal(p!.recordNo, 3);
      assert.equal(p!.field, 'merchantNo');
      assert.match(p!.reason, /JIS X 0208/);
      const ctl = Buffer.from(bytes);
      ctl[rec2 + 10] = 0x09;
      await writeFile(file, ctl);
      assert.match((await checkTextTransfer(file))!.reason, /control byte 0x09/);
      // On receipt: nothing flagged in a clean file.
      await writeFile(file, bytes);
      assert.deepEqual(await findGaijiSubstitutes(file), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('W-HULFT-GAIJI', () => {
  it('flags □ (U+25A1) in a K field: what HULFT writes for a 外字 it has no table for', () => {
    const layout = checkLayout({ name: 'kanji.test', recordLength: 9, recordType: '2', encoding: 'sjis', framing: 'crlf', fields: [{ name: 'recordType', type: 'N', length: 1, offset: 0 }, { name: 'shopName', type: 'K', length: 4, offset: 1 }, { name: 'note', type: 'K', length: 4, offset: 5 }] });
    const rec = Buffer.from([0x32, 0x93, 0x8c, 0x81, 0xa0, 0x8b, 0x9e, 0x81, 0x40]); // 2 東□ 京　
    assert.deepEqual(gaijiFieldsIn(rec, 0, layout), ['shopName']);
    assert.deepEqual(gaijiFieldsIn(Buffer.from([0x32, 0x93, 0x8c, 0x8b, 0x9e, 0x81, 0x40, 0x81, 0x40]), 0, layout), []);
  });
});
