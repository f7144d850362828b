// The SQLite ledger's durability option: FULL unless the URL asks for ?synchronous=normal.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openLedger, parseLedgerUrl } from '../../spool/ledger/index.ts';

it('sqlite:PATH?synchronous=normal opens the same file with synchronous=NORMAL; the default is FULL; other options are refused', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-sync-'));
  try {
    assert.equal(parseLedgerUrl('sqlite:./l.db?synchronous=normal', dir).target, path.join(dir, 'l.db'));
    assert.throws(() => parseLedgerUrl('sqlite:./l.db?journal=off', dir), /synchronous=full or \?synchronous=normal/);
    for (const [url, expected] of [[`sqlite:${path.join(dir, 'l.db')}`, 2], [`sqlite:${path.join(dir, 'l.db')}?synchronous=normal`, 1]] as const) {
      const ledger = await openLedger(url);
      try {
        const rows = (await ledger.db.raw('pragma synchronous')) as { synchronous: number }[];
        assert.equal(rows[0]!.synchronous, expected);
      } finally {
        await ledger.close();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
