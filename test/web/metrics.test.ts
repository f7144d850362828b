// /metrics scraped over HTTPS with curl and parsed as Prometheus text; /healthz answers for the
// ledger, the queue, the disk and the listeners.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateFile } from '../../formats/index.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { startPortalCentre, type PortalCentre } from './portal-centre.ts';

const run = promisify(execFile);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text exposition format, strictly: HELP and TYPE before samples, every line parsed. */
export function parsePrometheus(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        assert.match(meta[3]!, /^(counter|gauge|histogram|summary|untyped)$/, line);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)(?: \d+)?$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]!) || types.has(family), `sample before its TYPE: ${line}`);
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

describe('/metrics and /healthz', { timeout: 60_000 }, () => {
  let c: PortalCentre;
  before(async () => {
    c = await startPortalCentre();
    // m-tokyo drops a sales file with planted errors; cc1's folder is missing, so its delivery fails.
    await generateFile('31', { records: 50, seed: 3, errors: true, merchantNo: '101000000000001', senderCode: '1000000001', receiverCode: '0000000001', fileSeq: 9, cardCompanyCodes: ['001'], createdDate: tokyoDate(new Date()), out: path.join(c.centre.spool.inbound('m-tokyo'), 'S.dat') });
    await c.engine.enqueue({ kind: 'scan', input: {}, jobId: 'scan-metrics' });
    await c.engine.drain();
  });
  after(async () => {
    await c?.stop();
    if (c) await rm(c.dir, { recursive: true, force: true });
  });

  it('scrapes the Prometheus text format with files, records, rejections, deliveries, cycle, queue and listeners', async () => {
    const { stdout } = await run('curl', ['-sSf', '--cacert', path.join(c.dir, 'keys', 'cert.pem'), `${c.url}/metrics`]);
    const { types, samples } = parsePrometheus(stdout);
    for (const name of ['tsunagi_files', 'tsunagi_records', 'tsunagi_rejections', 'tsunagi_delivery_attempts', 'tsunagi_delivery_failures', 'tsunagi_cycle_duration_seconds', 'tsunagi_queue_jobs', 'tsunagi_listener_connections', 'tsunagi_http_request_duration_seconds'])
      assert.ok(types.has(name), `${name} is exported`);
    assert.equal(value(samples, 'tsunagi_files', { partner: 'm-tokyo', direction: 'in', file_type: '31' }), 1);
    assert.equal(value(samples, 'tsunagi_records', { partner: 'm-tokyo', direction: 'in', file_type: '31' }), 50);
    assert.equal(value(samples, 'tsunagi_files', { partner: 'm-tokyo', direction: 'out', file_type: '91' }), 1);
    assert.equal(value(samples, 'tsunagi_files', { partner: 'cc1', direction: 'out', file_type: '32' }), 1);
    const file = (await c.centre.files.list({ partnerId: 'm-tokyo', direction: 'in' }))[0]!;
    const errors = await c.centre.ledger.db('file_errors').where({ file_id: file.id });
    assert.ok(errors.length > 3);
    for (const e of errors) assert.equal(value(samples, 'tsunagi_rejections', { code: e.code }), Number(e.count), e.code);
    assert.equal(value(samples, 'tsunagi_delivery_attempts', { protocol: 'local', outcome: 'error' }), 1);
    assert.equal(value(samples, 'tsunagi_delivery_failures', { protocol: 'local' }), 1);
    assert.equal(value(samples, 'tsunagi_files_by_state', { state: 'failed' }), 1);
    assert.ok(value(samples, 'tsunagi_cycle_duration_seconds', { stat: 'max' })! > 0);
    assert.equal(value(samples, 'tsunagi_queue_jobs', { state: 'waiting' }), 0);
    assert.ok(value(samples, 'tsunagi_listener_connections', { listener: 'web' })! >= 1, 'the scrape itself');
    assert.equal(value(samples, 'tsunagi_listener_connections', { listener: 'mail' }), 0);
  });

  it('answers /healthz with each check', async () => {
    const { stdout } = await run('curl', ['-sS', '--cacert', path.join(c.dir, 'keys', 'cert.pem'), '-w', '\n%{http_code}', `${c.url}/healthz`]);
    const [body, status] = stdout.split('\n');
    assert.equal(status, '200');
    const h = JSON.parse(body!);
    assert.equal(h.ok, true);
    assert.deepEqual(Object.keys(h.checks).sort(), ['disk', 'ledger', 'listeners', 'queue']);
    assert.deepEqual(h.listeners.map((l: { name: string }) => l.name).sort(), ['mail', 'web']);
  });
});
