// Property-based tests (fast-check, fixed seed: test/helpers/property.ts) of what HULFT hands us
// from a partner: the job variables of the post-receive / post-send jobs (the partner chooses
// $MSG0..5 and the file ID it sends under), and the received file's bytes, read by the text-transfer
// and 外字 checks. Each parses or is refused with a UsageError; the file checks report, never throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { generateFile } from '../../formats/index.ts';
import { checkTextTransfer, findGaijiSubstitutes } from '../../protocols/hulft/charset.ts';
import { JOB_FLAGS, parseJobArgs } from '../../scripts/lib/hulft-job.ts';
import { UsageError } from '../../scripts/cli-kit.ts';
import { checkAsyncProperty, checkProperty, mutationsOf, parsesOrRefuses } from '../helpers/property.ts';

const usage = 'tsunagi hulft-received ...';
const flagNames = Object.keys(JOB_FLAGS);
const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('', '--', '-', '=', '--x', 'TSGabc'));
const arg = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...flagNames, 'config', 'failed', 'json'), fc.boolean(), value).map(([f, eq, v]) => (eq ? [`--${f}=${v}`] : [`--${f}`, v])) },
  { weight: 1, arbitrary: fc.constantFrom(['--constructor', 'x'], ['--tostring'], ['--__proto__=1'], ['--hasownproperty'], ['--valueof=1'], ['-x'], ['plain']) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }).map((s) => [s]) },
);

test('HULFT job arguments: any argv parses into known flags only, or is a UsageError', () => {
  checkProperty(1500, [fc.array(arg, { maxLength: 8 }).map((a) => a.flat())], (argv) => {
    const parsed = parsesOrRefuses(() => parseJobArgs(argv, usage), [UsageError]);
    if (!parsed) return;
    for (const k of Object.keys(parsed.values)) assert.ok(Object.hasOwn(JOB_FLAGS, k), `flag --${k} accepted though HULFT has no such variable`);
    for (const v of Object.values(parsed.values)) assert.equal(typeof v, 'string');
  });
});

test('counterexample: --constructor (a name every object inherits) is an unknown option', () => {
  for (const name of ['constructor', 'tostring', 'valueof', 'hasownproperty']) {
    assert.throws(() => parseJobArgs([`--${name}`, 'x'], usage), (err: Error) => err instanceof UsageError && err.message.includes(`unknown option --${name}`));
  }
});

test('HULFT received files: the text-transfer and 外字 checks report on any bytes, never throw', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsunagi-hulft-prop-'));
  const samples: Buffer[] = [];
  for (const [fileType, layout] of [['31', undefined], ['32', 'sales.company120']] as const) {
    const out = path.join(dir, `sample-${fileType}.dat`);
    await generateFile(fileType, { records: 4, seed: 3, layout, out });
    samples.push(readFileSync(out));
  }
  let n = 0;
  await checkAsyncProperty(60, [fc.oneof(...samples.map((s) => mutationsOf(s))), fc.constantFrom(undefined, 'sales', 'sales.company120')], async (raw, layout) => {
    const p = path.join(dir, `f${++n}.dat`);
    writeFileSync(p, raw);
    const problem = await checkTextTransfer(p, { layout });
    if (problem) {
      assert.ok(problem.recordNo >= 0 && problem.bytePos >= 0, JSON.stringify(problem));
      assert.ok(problem.reason.length > 0);
    }
    const hits = await findGaijiSubstitutes(p, { layout }, 5);
    assert.ok(hits.length <= 5);
  });
});
