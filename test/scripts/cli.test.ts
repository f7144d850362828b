// The CLI as operators and scripts use it: exit codes, messages, --json output.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTestCentre, dropSalesFiles, type TestCentre } from '../helpers/centre.ts';
import { generateFile } from '../../formats/index.ts';

const BIN = path.resolve('bin/tsunagi.js');
const run = promisify(execFile);

async function tsunagi(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('tsunagi CLI', () => {
  let c: TestCentre;
  before(async () => {
    c = await makeTestCentre({ merchants: 2, companies: 2 });
    await dropSalesFiles(c, { records: 20 });
    // m002 also sends a file with planted errors (rejectPolicy record: bad records only).
    await generateFile('31', { records: 30, seed: 77, errors: true, merchantNo: '100000000000002', senderCode: '1000000002', fileSeq: 2, cardCompanyCodes: ['001', '002'], out: path.join(c.dir, 'spool/partners/m002/inbound/bad.dat') });
  });
  after(async () => rm(c.dir, { recursive: true, force: true }));

  it('prints help, refuses unknown commands and flags with exit 2', async () => {
    const help = await tsunagi(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /cycle\s+run one full nightly cycle/);
    assert.equal((await tsunagi(['frobnicate'])).code, 2);
    const bad = await tsunagi(['files', '--colour']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown option '--colour'/);
  });

  it('check-config names the path and line, exit 2', async () => {
    const file = path.join(c.dir, 'broken.yaml');
    await writeFile(file, 'centre: { code: "12", name: X }\npartners:\n  - id: a\n    name: A\n    role: pilot\n    code: "1000000001"\n');
    const r = await tsunagi(['check-config', '--config', file]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /centre\.code \(line 1\): 10 digits/);
    assert.match(r.stderr, /partners\[0\]\.role \(line 5\): expected one of "merchant", "card-company", "online-centre"/);
    const ok = await tsunagi(['check-config', '--config', c.configFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok \(centre 0000000001/);
  });

  it('cycle exits 3 when records were rejected and prints a JSON summary', async () => {
    const r = await tsunagi(['cycle', '--config', c.configFile, '--json', '--date', '20261126']);
    assert.equal(r.code, 3, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.filesIn, 3);
    assert.equal(summary.recordsAccepted + summary.recordsRejected, 70);
    assert.ok(summary.recordsRejected > 0);
    assert.ok(!r.stdout.includes('4111111111111111'));
  });

  it('files --json, show and resend', async () => {
    const files = await tsunagi(['files', '--config', c.configFile, '--json', '--direction', 'out']);
    assert.equal(files.code, 0, files.stderr);
    const rows = files.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const notice = rows.find((r) => r.file_type === '91');
    assert.ok(notice, 'a 91 notice for the file with planted errors');
    assert.equal(notice.partner_id, 'm002');
    const sent = rows.find((r) => r.file_type === '32' && r.state === 'sent');
    const show = await tsunagi(['show', sent.id, '--config', c.configFile, '--json']);
    const history = JSON.parse(show.stdout);
    assert.deepEqual(history.transitions.map((t: { to_state: string }) => t.to_state), ['ready', 'sending', 'sent']);
    assert.equal(history.deliveries[0].outcome, 'ok');
    // The partner lost it: resend from the archive, under the same name.
    const dest = c.remote(sent.partner_id);
    await rm(path.join(dest, sent.name));
    const resend = await tsunagi(['resend', sent.id, '--config', c.configFile]);
    assert.equal(resend.code, 0, resend.stderr);
    assert.match(resend.stdout, /: sent/);
    assert.ok((await readdir(dest)).includes(sent.name));
    const again = JSON.parse((await tsunagi(['show', sent.id, '--config', c.configFile, '--json'])).stdout);
    assert.equal(again.deliveries.length, 2);
    // Resending an inbound file is a usage error.
    const inbound = rows.find((r) => r.parent_id)!.parent_id;
    const refused = await tsunagi(['resend', inbound, '--config', c.configFile]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /inbound file/);
  });

  it('purge removes archived files past retention, keeping their history', async () => {
    // 100 days from now, everything archived today is past the 90-day retention.
    const r = await tsunagi(['purge', '--config', c.configFile, '--json'], { TSUNAGI_NOW: new Date(Date.now() + 100 * 86400_000).toISOString() });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).purged > 0);
    const files = (await tsunagi(['files', '--config', c.configFile, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const purged = files.filter((f) => f.purged_at);
    assert.ok(purged.length > 0 && purged.every((f) => f.path === null));
  });
});
