// Taking over a push whose holder was killed, on SQLite and PostgreSQL: the deliver job finds the
// file 'sending', sees from host:pid:start-time that its holder is gone, and finishes the push from
// what the partner's folder holds (the journal in the deliveries row says where it stood), never
// by pushing a second copy; a live holder's push is left alone and reported.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, rm, writeFile, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { makeJobContext } from '../../jobs/runtime.ts';
import { HANDLERS } from '../../jobs/handlers/index.ts';
import { recoverOrphans } from '../../jobs/recovery.ts';
import { sha256File } from '../../spool/checksum.ts';
import { formatHolder, processStartedAt } from '../../spool/ledger/index.ts';
import type { JobRequest } from '../../jobs/context.ts';
import { makeTestCentre } from '../helpers/centre.ts';
import { postgresLedger, type TestLedger } from '../helpers/ledgers.ts';

const quiet = () => createLogger({ level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

/** A holder that is surely gone: a process that ran and exited. */
async function deadHolder(): Promise<string> {
  const child = spawn(process.execPath, ['-e', '0']);
  const pid = child.pid!;
  const started = processStartedAt(pid) ?? 1;
  await new Promise((r) => child.once('exit', r));
  return formatHolder({ host: (await import('node:os')).hostname(), pid, startedAt: started });
}

async function sendingFile(centre: Centre, name: string, holder: string, phase: 'staging' | 'committing', tempName: string): Promise<string> {
  const p = path.join(centre.spool.outbound('cc1'), name);
  await writeFile(p, Buffer.alloc(50_000, name.charCodeAt(4)));
  const { sha256, size } = await sha256File(p);
  const id = `O-test-${name}`;
  await centre.files.create({ id, partner_id: 'cc1', direction: 'out', file_type: '32', name, path: p, size, sha256, sender_code: null, receiver_code: null, file_seq: null, business_date: null, record_count: 1, accepted_count: 1, rejected_count: 0, amount_total: null, parent_id: null, state: 'ready' }, 'test');
  await centre.files.transition(id, 'ready', 'sending', 'push attempt 1', { attempts: 1 }, undefined, holder);
  await centre.ledger.db('deliveries').insert({ file_id: id, attempt: 1, protocol: 'local', remote_name: name, started_at: Date.now(), holder, heartbeat_at: Date.now(), phase, temp_name: tempName });
  return id;
}

for (const kind of ['sqlite', 'postgres']) {
  describe(`takeover of an interrupted push (${kind})`, () => {
    const cleanups: (() => Promise<unknown>)[] = [];
    after(async () => {
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    });

    it('finishes a killed push from the partner side: renames a whole temporary, accepts one already renamed (and taken), re-pushes one cut off while staging; leaves a live holder alone', async () => {
      let pg: TestLedger | undefined;
      if (kind === 'postgres') {
        pg = await postgresLedger();
        cleanups.push(() => pg!.dispose());
      }
      const def = await makeTestCentre({ merchants: 1, companies: 1, ledger: pg?.url });
      cleanups.push(() => rm(def.dir, { recursive: true, force: true }));
      const centre = await openCentre(def.configFile, { log: quiet() });
      cleanups.push(() => centre.close());
      const queued: JobRequest[] = [];
      const ctx = makeJobContext(centre, async (r) => void queued.push(r));
      const remote = def.remote('cc1');
      const dead = await deadHolder();

      // A: killed after the temporary was whole, before the rename.
      const a = await sendingFile(centre, 'T32_A.dat', dead, 'committing', 'T32_A.dat.k1.part');
      await writeFile(path.join(remote, 'T32_A.dat.k1.part'), await readFile(path.join(centre.spool.outbound('cc1'), 'T32_A.dat')));
      // B: killed after the rename; the partner took the file already.
      const b = await sendingFile(centre, 'T32_B.dat', dead, 'committing', 'T32_B.dat.k2.part');
      // C: killed mid-upload: a torn temporary.
      const c = await sendingFile(centre, 'T32_C.dat', dead, 'staging', 'T32_C.dat.k3.part');
      await writeFile(path.join(remote, 'T32_C.dat.k3.part'), Buffer.alloc(100));
      // D: held by a live process.
      const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
      cleanups.push(async () => sleeper.kill('SIGKILL'));
      await new Promise((r) => setTimeout(r, 200));
      const live = formatHolder({ host: (await import('node:os')).hostname(), pid: sleeper.pid!, startedAt: processStartedAt(sleeper.pid!)! });
      const d = await sendingFile(centre, 'T32_D.dat', live, 'staging', 'T32_D.dat.k4.part');

      const report = await recoverOrphans(ctx, { honourHolders: true });
      assert.deepEqual(report.held.map((h) => h.fileId), [d]);
      assert.deepEqual(queued.map((q) => q.input.fileId).sort(), [a, b, c].sort());
      for (const q of queued) await HANDLERS.deliver(q.input, ctx);

      for (const id of [a, b, c]) assert.equal((await centre.files.require(id)).state, 'sent', id);
      assert.equal((await centre.files.require(d)).state, 'sending');
      assert.deepEqual((await readdir(remote)).sort(), ['T32_A.dat', 'T32_C.dat'], 'A renamed, B not pushed again, C pushed once, no temporaries');
      assert.equal((await stat(path.join(remote, 'T32_A.dat'))).size, 50_000);
      const rows = (await centre.ledger.db('deliveries').orderBy('id').select('file_id', 'outcome', 'note')) as { file_id: string; outcome: string; note: string | null }[];
      const of = (id: string) => rows.filter((r) => r.file_id === id).map((r) => r.outcome);
      assert.deepEqual(of(a), ['ok']);
      assert.deepEqual(of(b), ['ok']);
      assert.deepEqual(of(c), ['abandoned', 'ok']);
      assert.deepEqual(of(d), [null]);
      assert.match(rows.find((r) => r.file_id === a)!.note ?? '', /finished after attempt 1/);
      assert.match(rows.find((r) => r.file_id === b)!.note ?? '', /had completed/);
      assert.equal((await centre.files.require(c)).attempts, 1, 'a kill does not use up the retry budget');

      // The live holder dies: its push is taken over at once.
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
      await HANDLERS.deliver({ fileId: d }, ctx);
      assert.equal((await centre.files.require(d)).state, 'sent');
      assert.deepEqual((await readdir(remote)).sort(), ['T32_A.dat', 'T32_C.dat', 'T32_D.dat']);
    });
  });
}
