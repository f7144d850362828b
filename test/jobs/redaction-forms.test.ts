// Log redaction of the forms card numbers also take: dashes or spaces, full-width digits, object
// keys, Buffers; and epoch-ms times are not mistaken for card numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../jobs/log.ts';
import { redactCardNumbers, redactDeep } from '../../formats/index.ts';

const CARD = '4111111111111111';

test('dashes, spaces and full-width digits are masked', () => {
  assert.equal(redactCardNumbers('card 4111-1111-1111-1111 ok'), 'card 411111******1111 ok');
  assert.equal(redactCardNumbers('card 4111 1111 1111 1111 ok'), 'card 411111******1111 ok');
  assert.equal(redactCardNumbers('カード ４１１１１１１１１１１１１１１１ です'), 'カード 411111******1111 です');
  assert.equal(redactCardNumbers('card ４１１１－１１１１－１１１１－１１１１'), 'card 411111******1111');
  // Not card numbers: dates, phone numbers, a non-Luhn group.
  for (const ok of ['2026-12-01T13:14:35.650Z', 'tel 03-1234-5678', '1234 5678 9012 3456 7']) assert.equal(redactCardNumbers(ok), ok);
});

test('keys, Buffers and nested values are masked; epoch-ms times are kept', () => {
  const at = 1796128576134; // a Luhn-valid 13-digit time? whatever it is, a time key keeps it
  const out = redactDeep({ [CARD]: 'x', buf: Buffer.from(`pan=${CARD}`), nested: [{ n: Number(CARD) }], at, created_at: at, sentAtMs: at }) as Record<string, unknown>;
  assert.ok(!JSON.stringify(out).includes(CARD));
  assert.ok(Object.keys(out).includes('411111******1111'));
  assert.equal(Buffer.from((out.buf as { data: number[] }).data).toString(), 'pan=411111******1111');
  assert.equal(out.at, at);
  assert.equal(out.created_at, at);
  assert.equal(out.sentAtMs, at);
});

test('through the logger: every form leaves as masked, a time field as logged', () => {
  let text = '';
  const log = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, done) => ((text += c.toString()), done()) }) });
  const t = 4_000_000_000_001; // 13 digits
  log.info({ [CARD]: 1, raw: Buffer.from(CARD), spaced: '4111 1111 1111 1111', wide: '４１１１１１１１１１１１１１１１', updated_at: t }, 'forms');
  const line = JSON.parse(text) as Record<string, unknown>;
  assert.ok(!text.includes(CARD) && !text.includes('4111 1111 1111 1111') && !text.includes('４１１１１１１１'), text);
  assert.equal(line.updated_at, t);
});
