import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, utimes, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RestartStore, partialsRoot } from '../../protocols/zengin/restart-store.ts';

describe('全銀 partial files', () => {
  it('are purged only when no restart resumed them for the given age', async () => {
    const work = await mkdtemp(path.join(tmpdir(), 'tsunagi-partials-'));
    try {
      const dir = path.join(partialsRoot(work), 'm001');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'old.part'), 'x');
      await writeFile(path.join(dir, 'fresh.part'), 'y');
      const tenDaysAgo = new Date(Date.now() - 10 * 86400_000);
      await utimes(path.join(dir, 'old.part'), tenDaysAgo, tenDaysAgo);
      assert.equal(await new RestartStore(partialsRoot(work)).purgeOlderThan(7 * 86400_000), 1);
      assert.deepEqual(await readdir(dir), ['fresh.part']);
      assert.equal(await new RestartStore(path.join(work, 'missing')).purgeOlderThan(0), 0);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
