// Property-based tests (fast-check, fixed seed: test/helpers/property.ts) of the partner input the
// web and mail channels parse: a logged-in merchant's multipart upload (any body, any part names
// and file names, any CSV) gets a clear 3xx or 4xx answer, never a 500, and lands only safe names;
// a mail message (any MIME) yields its attachments or an SMTP refusal, never another error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { fileNameProblem } from '../../spool/names.ts';
import { attachmentsOf } from '../../protocols/mail/listener.ts';
import { cardNumberArb, checkAsyncProperty, mutationsOf } from '../helpers/property.ts';
import { startPortalCentre, type PortalCentre } from './portal-centre.ts';

let c: PortalCentre;
let app: FastifyInstance;
let cookie = '';
let csrf = '';

const cookiesOf = (res: { headers: Record<string, unknown> }) => ([] as string[]).concat((res.headers['set-cookie'] as string[] | string | undefined) ?? []).map((s) => s.split(';')[0]!);

before(async () => {
  c = await startPortalCentre();
  app = c.services.web!.app!;
  const page = await app.inject({ method: 'GET', url: '/login' });
  const pre = cookiesOf(page).join('; ');
  const token = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: pre, 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ _csrf: token, next: '/portal', username: c.users.osaka.username, password: c.users.osaka.password }).toString() });
  assert.equal(login.statusCode, 303, login.body.slice(0, 300));
  cookie = cookiesOf(login).join('; ');
  const form = await app.inject({ method: 'GET', url: '/portal/upload', headers: { cookie } });
  csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!;
});

after(async () => {
  await c?.stop();
});

const CSV = 'cardCompanyCode,merchantNo,storeCode,terminalId,slipNo,txnType,cardNo,expiry,useDate,useTime,paymentMethod,installments,amount,merchantRef\r\n';
const csvRow = (card: string) => `001,102000000000001,ST01,TRM1,1,10,${card},2812,20250331,101010,10,00,1200,\r\n`;
const fileName = fc.oneof(
  fc.constantFrom('T31_up.csv', 'up.dat', '../../etc/passwd', '..', '.hidden', 'a\r\nb.csv', '\u202ecsv.exe', 'ｶﾀｶﾅ'.repeat(70), '', 'a"b.csv', 'x\\y.csv', 'x.part'),
  fc.string({ unit: 'binary', maxLength: 30 }),
);
const csvType = fc.constantFrom('', '31', '41', '61', '32', 'x', '31\r\n');
const content = fc.oneof(
  cardNumberArb.map((card) => Buffer.from(CSV + csvRow(card))),
  cardNumberArb.map((card) => Buffer.from(CSV + csvRow(card).replace(',10,00,', ',"10'))),
  fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
  fc.constant(Buffer.from([0x81, 0x20, 0xff])),
);

/** A form as a browser sends it: the token, the CSV type, the file; then bytes flipped or cut at random. */
const bodyArb = fc
  .tuple(fileName, csvType, content, fc.boolean(), fc.nat({ max: 3 }))
  .chain(([name, type, bytes, tokenFirst, broken]) => {
    const b = 'tsunagiBoundary7MA4YWxk';
    const field = (n: string, v: string) => Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${n}"\r\n\r\n${v}\r\n`);
    const file = Buffer.concat([Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="${name.replace(/"/g, '%22')}"\r\nContent-Type: application/octet-stream\r\n\r\n`, 'utf8'), bytes, Buffer.from('\r\n')]);
    const parts = tokenFirst ? [field('_csrf', csrf), field('csvType', type), file] : [file, field('_csrf', csrf)];
    const body = Buffer.concat([...parts, Buffer.from(`--${b}--\r\n`)]);
    return (broken === 0 ? mutationsOf(body) : fc.constant(body)).map((payload) => ({ payload, boundary: b }));
  });

test('web upload: any multipart body from a logged-in merchant gets a clear answer (3xx or 4xx, never 500) and lands only safe names', async () => {
  await checkAsyncProperty(40, [bodyArb], async ({ payload, boundary }) => {
    const res = await app.inject({ method: 'POST', url: '/portal/upload', headers: { cookie, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload });
    assert.ok(res.statusCode < 500, `status ${res.statusCode}: ${res.body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 400)}`);
    assert.doesNotMatch(res.body, /\b(?:4|5|35|37)\d{13,14}\b/, 'a whole card number in the answer');
  });
  for (const name of await readdir(c.centre.spool.inbound('m-osaka'))) assert.equal(fileNameProblem(name), null, name);
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  assert.ok(health.statusCode < 500, 'the web listener is still up');
});

const mailArb = fc
  .tuple(fileName, content, fc.constantFrom('base64', '7bit', 'quoted-printable', 'x-unknown'), fc.constantFrom('attachment', 'inline', ''))
  .chain(([name, bytes, cte, disposition]) => {
    const encoded = cte === 'base64' ? bytes.toString('base64').replace(/.{76}/g, '$&\r\n') : bytes.toString('latin1');
    const msg = Buffer.from(
      `From: uriage@tokyo.example\r\nTo: centre@example\r\nSubject: sales\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="MB"\r\n\r\n--MB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--MB\r\nContent-Type: application/octet-stream; name="${name}"\r\nContent-Disposition: ${disposition}${disposition ? '; ' : ''}filename="${name}"\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${encoded}\r\n--MB--\r\n`,
      'latin1',
    );
    return fc.oneof({ weight: 2, arbitrary: fc.constant(msg) }, { weight: 1, arbitrary: mutationsOf(msg) });
  });

test('mail: any message yields attachments with safe names, or an SMTP refusal (a response code), never another error', async () => {
  await checkAsyncProperty(120, [mailArb], async (raw) => {
    try {
      const files = await attachmentsOf(raw);
      assert.ok(files.length > 0);
      for (const f of files) {
        assert.equal(fileNameProblem(f.name), null, f.name);
        assert.ok(f.content.length <= raw.length);
      }
    } catch (err) {
      const code = (err as { responseCode?: number }).responseCode;
      assert.ok(code && code >= 500 && code < 600, `${(err as Error).constructor.name}: ${(err as Error).message}`);
    }
  });
});

test('counterexample: a cut multipart body is a 400 (busboy\'s "Unexpected end of multipart data" was a 500 and an error in our log)', async () => {
  const res = await app.inject({ method: 'POST', url: '/portal/upload', headers: { cookie, 'content-type': 'multipart/form-data; boundary=b' }, payload: Buffer.from([0]) });
  assert.equal(res.statusCode, 400);
  assert.match(res.body, /the form could not be read/);
});
