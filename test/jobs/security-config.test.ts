// Secrets for the ledger and queue URLs: { env } and { file } like every other secret; a wrong
// value is reported without repeating it (it may hold a password).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, parseConfig } from '../../jobs/config.ts';

const CENTRE = 'centre: { code: "0000000001", name: X }';

describe('ledger and queue URLs from secrets', () => {
  let dir: string;
  after(async () => dir && rm(dir, { recursive: true, force: true }));

  it('reads the ledger URL from an environment variable and the queue URL from a file (relative to the config)', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsunagi-urls-'));
    await writeFile(path.join(dir, 'queue.url'), 'redis://:s3cret@127.0.0.1:6392/0\n', { mode: 0o600 });
    process.env.TSUNAGI_TEST_LEDGER_URL = 'postgres://tsunagi:pa55@127.0.0.1:5432/test';
    const cfg = parseConfig(`${CENTRE}\nledger: { env: TSUNAGI_TEST_LEDGER_URL }\nqueue: { file: ./queue.url }\n`, path.join(dir, 'tsunagi.yaml'));
    assert.equal(cfg.ledger, 'postgres://tsunagi:pa55@127.0.0.1:5432/test');
    assert.equal(cfg.queue, 'redis://:s3cret@127.0.0.1:6392/0');
    const literal = parseConfig(`${CENTRE}\nledger: sqlite:./x.db\n`, path.join(dir, 'tsunagi.yaml'));
    assert.equal(literal.ledger, 'sqlite:./x.db');
    assert.equal(literal.queue, 'embedded');
  });

  it('a missing variable or a value of the wrong shape is a config error that does not print the value', () => {
    delete process.env.TSUNAGI_TEST_LEDGER_URL;
    assert.throws(() => parseConfig(`${CENTRE}\nledger: { env: TSUNAGI_TEST_LEDGER_URL }\n`, '/tmp/t.yaml'), (e: unknown) => e instanceof ConfigError && /TSUNAGI_TEST_LEDGER_URL is not set/.test(e.message));
    process.env.TSUNAGI_TEST_LEDGER_URL = 'mysql://root:hunter2@db/x';
    assert.throws(
      () => parseConfig(`${CENTRE}\nledger: { env: TSUNAGI_TEST_LEDGER_URL }\n`, '/tmp/t.yaml'),
      (e: unknown) => e instanceof ConfigError && /not sqlite:PATH or a postgres:\/\/ URL/.test(e.message) && !e.message.includes('hunter2'),
    );
    delete process.env.TSUNAGI_TEST_LEDGER_URL;
  });
});
