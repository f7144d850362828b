// A kill between the 'accepted' commit of a file with rejected records and the making of its 91
// notice must not lose the notice: the next step after 'accepted' is the route job (that is what
// recovery re-enqueues), so the route job makes the missing notice before it routes.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { HANDLERS } from '../../jobs/handlers/index.ts';
import type { JobRequest } from '../../jobs/context.ts';
import { dropSalesFiles, makeTestCentre } from '../helpers/centre.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('91 notice after a kill between accept and notice', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('the route job makes the missing notice once, and a second route makes no other', async () => {
    const def = await makeTestCentre({ merchants: 1, companies: 2 });
    cleanups.push(() => rm(def.dir, { recursive: true, force: true }));
    await dropSalesFiles(def, { records: 40, errorsFor: [0] });
    const centre = await openCentre(def.configFile, { log: quiet() });
    cleanups.push(() => centre.close());
    const queued: JobRequest[] = [];
    const ctx = makeJobContext(centre, async (r) => void queued.push(r));
    await HANDLERS.scan({}, ctx);
    const ingestJob = queued.find((j) => j.kind === 'ingest')!;
    assert.ok(ingestJob, 'scan asked for an ingest');
    await HANDLERS.ingest(ingestJob.input, ctx);
    const [inbound] = await centre.files.list({ direction: 'in' });
    assert.equal(inbound!.state, 'accepted');
    assert.ok((inbound!.rejected_count ?? 0) > 0, 'the file has rejected records');
    const [notice] = await centre.files.list({ direction: 'out' });
    assert.equal(notice?.file_type, '91', 'ingest made the 91 notice');

    // What a kill right after the 'accepted' commit leaves: no notice (the error codes commit
    // with the outcome, so they are there).
    const codes = await centre.ledger.db('file_errors').where({ file_id: inbound!.id });
    assert.ok(codes.length > 0, 'the error codes committed with the accept');
    await centre.ledger.db('transitions').where({ file_id: notice!.id }).delete();
    await centre.ledger.db('files').where({ id: notice!.id }).delete();
    await rm(notice!.path!, { force: true });

    queued.length = 0;
    await HANDLERS.route({ fileId: inbound!.id }, ctx);
    const notices = (await centre.files.list({ direction: 'out' })).filter((f) => f.file_type === '91');
    assert.equal(notices.length, 1, 'the route job made the lost notice');
    assert.equal(notices[0]!.id, notice!.id, 'under the same id and name');
    assert.equal(notices[0]!.name, notice!.name);
    assert.ok(queued.some((j) => j.kind === 'deliver' && (j.input as { fileId: string }).fileId === notice!.id), 'and asked for its delivery');
    assert.deepEqual(await centre.ledger.db('file_errors').where({ file_id: inbound!.id }), codes, 'the error codes as they were');
    assert.equal((await centre.files.get(inbound!.id))!.state, 'routed');

    await HANDLERS.route({ fileId: inbound!.id }, ctx);
    assert.equal((await centre.files.list({ direction: 'out' })).filter((f) => f.file_type === '91').length, 1, 'still one notice');
  });
});
