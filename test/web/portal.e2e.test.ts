// The merchant portal and the operator console end to end in headless Chromium (Debian's chromium
// through playwright-core): login with TOTP, upload and see the result with the 91 notice,
// download (a pickup), Jmanager search with totals, CSV and the 71 file, an operator's resend of a
// failed delivery, and a merchant trying another merchant's ids. A screenshot of each page goes
// to test-artifacts/web/ (gitignored).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { generateFile, redactCardNumbers } from '../../formats/index.ts';
import { buildJmanagerFile } from '../../jobs/jmanager/build.ts';
import { addDays, lastCompletedPeriod } from '../../jobs/jmanager/periods.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { listAudit } from '../../spool/ledger/index.ts';
import { totp } from '../../web/auth/totp.ts';
import { seedAggregates, type SeedTotals } from '../../scripts/lib/jmanager-seed.ts';
import { startPortalCentre, type PortalCentre } from './portal-centre.ts';

export const CHROMIUM = process.env.TSUNAGI_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ARTEFACTS = path.resolve('test-artifacts', 'web');

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTEFACTS, `${name}.png`), fullPage: true });
}

async function login(page: Page, url: string, user: { username: string; password: string; totpSecret: string | null }): Promise<void> {
  await page.goto(`${url}/login`);
  await page.fill('input[name=username]', user.username);
  await page.fill('input[name=password]', user.password);
  await page.click('button[type=submit]');
  if (user.totpSecret) {
    await page.waitForURL(/\/login\/totp/);
    await page.fill('input[name=code]', totp(user.totpSecret));
    await page.click('button[type=submit]');
  }
  await page.waitForURL(/\/(portal|ops)/);
}

describe('web portal and operator console in Chromium', { timeout: 120_000 }, () => {
  let c: PortalCentre;
  let browser: BrowserContext;
  let page: Page;
  let profile: string;
  let tokyoSeed: SeedTotals;
  let osakaSeed: SeedTotals;
  const today = tokyoDate(new Date());
  let uploadUrl = '';
  let noticeId = '';
  let failedId = '';

  before(async () => {
    await mkdir(ARTEFACTS, { recursive: true });
    c = await startPortalCentre();
    const yesterday = addDays(today, -1);
    tokyoSeed = await seedAggregates(c.centre.ledger, { merchantNos: ['101000000000001'], endDate: yesterday, days: 7, stores: 3, terminalsPerStore: 2, cardCompanies: ['001', '003'], seed: 1, filePrefix: 'I-tokyo' });
    osakaSeed = await seedAggregates(c.centre.ledger, { merchantNos: ['102000000000001'], endDate: yesterday, days: 7, stores: 1, terminalsPerStore: 1, cardCompanies: ['001'], seed: 2, filePrefix: 'I-osaka' });
    await buildJmanagerFile(c.engine.ctx, c.centre.partner('m-tokyo'), lastCompletedPeriod('D', today));
    profile = await mkdtemp(path.join(tmpdir(), 'tsunagi-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, ignoreHTTPSErrors: true, acceptDownloads: true, args: CHROMIUM_ARGS, locale: 'ja-JP', viewport: { width: 1280, height: 800 } });
    page = await browser.newPage();
  });

  after(async () => {
    await browser?.close();
    await c?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
    if (c) await rm(c.dir, { recursive: true, force: true });
  });

  it('a merchant logs in with password and TOTP; the cookie is Secure, HttpOnly, SameSite', async () => {
    await page.goto(`${c.url}/portal`);
    assert.match(page.url(), /\/login\?next=/, 'no session: the login page');
    await shot(page, '01-login');
    await page.fill('input[name=username]', c.users.tokyo.username);
    await page.fill('input[name=password]', c.users.tokyo.password);
    await page.click('button[type=submit]');
    await page.waitForURL(/\/login\/totp/);
    await shot(page, '02-totp');
    // A wrong code first: refused, counted, audited.
    const right = totp(c.users.tokyo.totpSecret!);
    await page.fill('input[name=code]', right === '000000' ? '111111' : '000000');
    await page.click('button[type=submit]');
    assert.match(await page.textContent('.error') ?? '', /コードが違います/);
    await page.fill('input[name=code]', totp(c.users.tokyo.totpSecret!));
    await page.click('button[type=submit]');
    await page.waitForURL(/\/portal$/);
    await shot(page, '03-portal-files');
    const cookie = (await browser.cookies(c.url)).find((k) => k.name === 'tsunagi_session')!;
    assert.ok(cookie.secure && cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
    const audit = await listAudit(c.centre.ledger, { protocol: 'web' });
    assert.ok(audit.some((a) => a.event === 'login_ok' && a.partner_id === 'm-tokyo' && /TOTP/.test(a.detail ?? '')));
    assert.ok(audit.some((a) => a.event === 'login_refused' && /TOTP/.test(a.detail ?? '')));
  });

  it('uploads a sales file and shows its validation result with the 91 notice to download (a pickup)', async () => {
    const file = path.join(c.dir, 'URIAGE_WEB.dat');
    await generateFile('31', { records: 60, seed: 7, errors: true, merchantNo: '101000000000001', senderCode: '1000000001', receiverCode: '0000000001', fileSeq: 1, cardCompanyCodes: ['001', '003'], createdDate: today, out: file });
    await page.click('nav a[href="/portal/upload"]');
    await shot(page, '04-upload-form');
    await page.setInputFiles('input[type=file]', file);
    await page.click('form[action="/portal/upload"] button[type=submit]');
    await page.waitForURL(/\/portal\/uploads\//);
    uploadUrl = page.url();
    // The page refreshes itself until ingest is done.
    await page.waitForSelector('#status[data-state="routed"], #status[data-state="rejected"]', { timeout: 30_000 });
    await shot(page, '05-upload-result');
    assert.equal(await page.getAttribute('#status', 'data-state'), 'routed');
    assert.ok(Number(await page.textContent('#rejected')) > 0, 'planted errors were found');
    assert.equal(Number(await page.textContent('#records')), 60);
    const link = page.locator('#notice91');
    noticeId = decodeURIComponent((await link.getAttribute('href'))!.split('/')[3]!);
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const bytes = await readFile((await download.path())!);
    assert.equal(bytes.subarray(1, 3).toString(), '91');
    // The detail text (code first, in half-width kana) carries the masked number.
    assert.match(bytes.toString('latin1'), /E204cardNo +E204 [^\r\n]*\b\d{6}\*+\d{4}\b/, 'the card number in the notice is masked');
    assert.equal(redactCardNumbers(await page.content()), await page.content(), 'no card number on the page');
    await c.engine.drain();
    const notice = await c.centre.files.get(noticeId);
    assert.equal(notice?.state, 'sent');
    const pickups = await c.centre.ledger.db('deliveries').where({ file_id: noticeId });
    assert.deepEqual(pickups.map((d) => [d.protocol, d.outcome, Number(d.bytes)]), [['pull', 'picked_up', bytes.length]]);
    const audit = await listAudit(c.centre.ledger, { partnerId: 'm-tokyo', protocol: 'web' });
    assert.ok(audit.some((a) => a.event === 'upload' && /URIAGE_WEB\.dat/.test(a.detail ?? '')));
    assert.ok(audit.some((a) => a.event === 'download' && a.detail?.includes(noticeId)));
    // The 32 for cc1 could not be delivered (its folder is missing): that is for the operator.
    const failed = await c.centre.files.list({ partnerId: 'cc1', state: 'failed' });
    assert.equal(failed.length, 1);
    failedId = failed[0]!.id;
  });

  it('searches Jmanager within 90 days with totals, and downloads the CSV (UTF-8 BOM) and the 71 file', async () => {
    const from = addDays(today, -7);
    await page.goto(`${c.url}/portal/jmanager?from=${from}&to=${today}&view=store`);
    await shot(page, '06-jmanager-search');
    const total = await page.textContent('#totals td[data-col="sale_count"]');
    assert.equal(Number(total!.replace(/,/g, '')), tokyoSeed.sale_count);
    assert.equal(Number((await page.textContent('#totals td[data-col="sale_amount"]'))!.replace(/,/g, '')), tokyoSeed.sale_amount);
    assert.equal(await page.locator('#results tbody tr').count(), 3 + 1, 'three stores and the totals');
    const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
    const text = await readFile((await csv.path())!);
    assert.deepEqual([...text.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 BOM');
    const lines = text.toString('utf8').slice(1).trim().split('\r\n');
    assert.match(lines[0]!, /^利用日,店舗,加盟店番号/);
    assert.equal(lines.length - 1, tokyoSeed.rows);
    const [seventyOne] = await Promise.all([page.waitForEvent('download'), page.click('a.file71')]);
    assert.equal((await readFile((await seventyOne.path())!)).subarray(1, 3).toString(), '71');
    // Beyond 90 days is refused on the page.
    await page.goto(`${c.url}/portal/jmanager?from=${addDays(today, -120)}&to=${today}`);
    assert.match(await page.textContent('.error') ?? '', /90/);
    // Store filter narrows it down.
    await page.goto(`${c.url}/portal/jmanager?from=${from}&to=${today}&view=detail&store=S0002`);
    assert.ok((await page.locator('#results tbody tr').count()) > 1);
    await shot(page, '07-jmanager-detail');
  });

  it('an operator logs in with TOTP, sees the failed delivery, resends it, and reads its history', async () => {
    await browser.clearCookies();
    await login(page, c.url, c.users.operator);
    await shot(page, '08-ops-files');
    await page.goto(`${c.url}/ops/failed`);
    await shot(page, '09-ops-failed');
    await mkdir(c.cc1Folder, { recursive: true }); // the card company's folder is back
    await page.click(`button[data-file="${failedId}"]`);
    await page.waitForSelector('#resent');
    await c.engine.drain();
    assert.equal((await c.centre.files.get(failedId))?.state, 'sent');
    await page.goto(`${c.url}/ops/files/${encodeURIComponent(failedId)}`);
    const history = await page.textContent('#transitions');
    assert.match(history!, /resend requested by web:ops/);
    await shot(page, '10-ops-file-history');
    await page.goto(`${c.url}/ops/reconcile`);
    await shot(page, '11-ops-reconcile');
    await page.goto(`${c.url}/ops/health`);
    assert.equal(await page.textContent('#overall'), '正常 OK');
    await shot(page, '12-ops-health');
    const audit = await listAudit(c.centre.ledger, { protocol: 'web' });
    assert.ok(audit.some((a) => a.event === 'action' && a.detail === `ops: resend ${failedId}`));
  });

  it("a merchant cannot reach another merchant's files, uploads, downloads or the console by changing ids", async () => {
    await browser.clearCookies();
    await login(page, c.url, c.users.osaka);
    const uploadPath = new URL(uploadUrl).pathname;
    for (const p of [`/portal/files/${encodeURIComponent(noticeId)}`, `/portal/files/${encodeURIComponent(noticeId)}/download`, uploadPath, `/portal/files/${encodeURIComponent(failedId)}/download`]) {
      const r = await page.goto(`${c.url}${p}`);
      assert.equal(r?.status(), 404, p);
    }
    await shot(page, '13-cross-partner-404');
    assert.equal((await page.goto(`${c.url}/ops`))?.status(), 403);
    assert.equal((await page.goto(`${c.url}/ops/files/${encodeURIComponent(noticeId)}`))?.status(), 403);
    await page.goto(`${c.url}/portal/jmanager?from=${addDays(today, -7)}&to=${today}`);
    assert.equal(Number((await page.textContent('#totals td[data-col="sale_count"]'))!.replace(/,/g, '')), osakaSeed.sale_count, "only its own merchant numbers' aggregates");
    await page.goto(`${c.url}/portal`);
    assert.doesNotMatch(await page.content(), /URIAGE_WEB|T91_/);
    await shot(page, '14-other-merchant-portal');
  });

  it('refuses a form without its CSRF token, and locks an account after repeated failures', async () => {
    // Logged in as m-osaka: a logout and an upload without the token are refused.
    assert.equal((await page.request.post(`${c.url}/logout`, { form: { _csrf: 'wrong' } })).status(), 403);
    const upload = await page.request.post(`${c.url}/portal/upload`, { multipart: { file: { name: 'X.dat', mimeType: 'application/octet-stream', buffer: Buffer.from('x') } } });
    assert.equal(upload.status(), 403);
    assert.equal((await c.centre.ledger.db('web_uploads').where({ partner_id: 'm-osaka' })).length, 0);
    await browser.clearCookies();
    for (let i = 0; i < 5; i++) {
      await page.goto(`${c.url}/login`);
      await page.fill('input[name=username]', c.users.osaka.username);
      await page.fill('input[name=password]', 'not-the-password');
      await page.click('button[type=submit]');
    }
    await page.goto(`${c.url}/login`);
    await page.fill('input[name=username]', c.users.osaka.username);
    await page.fill('input[name=password]', c.users.osaka.password);
    await page.click('button[type=submit]');
    assert.match(await page.textContent('.error') ?? '', /ロック/);
    await shot(page, '15-locked');
    const refused = (await listAudit(c.centre.ledger, { partnerId: 'm-osaka', protocol: 'web' })).filter((a) => a.event === 'login_refused');
    assert.equal(refused.length, 6);
    assert.match(refused.at(-1)!.detail!, /locked/);
  });
});
