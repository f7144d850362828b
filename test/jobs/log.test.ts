// No Luhn-valid 12-19 digit run ever leaves a logger whole: messages, fields, nested objects, errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../jobs/log.ts';
import { redactCardNumbers, luhnValid } from '../../formats/index.ts';

const CARD = '4111111111111111'; // Luhn-valid test card
const CARD19 = '6011000990139424000'.slice(0, 18) + luhnDigit('601100099013942400');

function luhnDigit(body: string): string {
  for (let d = 0; d < 10; d++) if (luhnValid(body + d)) return String(d);
  throw new Error('unreachable');
}

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, log: createLogger({ destination, level: 'trace' }) };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('log redaction', () => {
  it('masks card numbers to first 6 and last 4', () => {
    assert.equal(redactCardNumbers(`card ${CARD} end`), 'card 411111******1111 end');
    assert.equal(luhnValid(CARD19), true);
    assert.equal(redactCardNumbers(CARD19), `${CARD19.slice(0, 6)}*********${CARD19.slice(-4)}`);
    // Not Luhn-valid, 12 digits: a reference number stays readable.
    assert.equal(redactCardNumbers('ref 123456789012'), luhnValid('123456789012') ? 'ref ********9012' : 'ref 123456789012');
    assert.equal(redactCardNumbers('ref 123456789015'), 'ref ********9015', 'a Luhn-valid 12-digit run is masked');
    // Runs over 19 digits could hide a card anywhere: masked.
    assert.equal(redactCardNumbers(`x${CARD}0000y`), 'x411111**********0000y');
  });

  it('covers every logger path', async () => {
    const { lines, log } = capture();
    log.info(`message ${CARD}`);
    log.info({ cardNo: CARD, nested: { list: [CARD, { deep: `a${CARD}b` }] } }, 'fields');
    log.warn({ n: Number(CARD) }, 'number field');
    log.error(new Error(`failed for ${CARD}`));
    log.error({ err: new Error(`wrapped ${CARD}`) }, 'with err');
    log.child({ card: CARD }).info('child bindings');
    log.info('format %s and %d', CARD, Number(CARD));
    await settle();
    assert.equal(lines.length, 7);
    for (const line of lines) {
      assert.ok(!line.includes(CARD), `whole card number in: ${line}`);
      assert.ok(!line.includes('1.1111111111111111e'), line);
      JSON.parse(line);
    }
    assert.ok(lines.every((l) => l.includes('411111')), 'masked form kept for investigation');
  });
});
