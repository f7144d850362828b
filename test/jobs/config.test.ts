import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../jobs/config.ts';
import { cronProblem } from '../../jobs/cron.ts';

const good = `
centre: { code: "0000000001", name: TSUNAGI }
partners:
  - id: m001
    name: Merchant One
    role: merchant
    code: "1000000001"
    merchantNos: ["123456789012345"]
    send: ["31"]
    receive: ["33", "91"]
  - id: cc1
    name: Card One
    role: card-company
    code: "2000000001"
    cardCompanyCodes: ["001"]
    receive: ["32"]
    delivery: { protocol: local, path: /tmp/cc1 }
`;

function problems(text: string): string[] {
  try {
    parseConfig(text, '/etc/tsunagi.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /^\/etc\/tsunagi\.yaml: invalid config/);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('accepts a good config and fills defaults', () => {
    const c = parseConfig(good, '/etc/tsunagi.yaml');
    assert.equal(c.ledger, 'sqlite:./tsunagi.db');
    assert.equal(c.queue, 'embedded');
    assert.equal(c.partners[0]!.delivery.protocol, 'pull');
    assert.equal(c.partners[0]!.rejectPolicy, 'record');
    assert.equal(c.baseDir, '/etc');
  });

  it('names the path, the line and what was expected', () => {
    const p = problems(good.replace('path: /tmp/cc1', 'path: 42'));
    assert.deepEqual(p, ['partners[1].delivery.path (line 17): expected string']);
    const q = problems(good.replace('protocol: local, path: /tmp/cc1', 'protocol: carrier-pigeon'));
    assert.equal(q.length, 1);
    assert.match(q[0]!, /^partners\[1\]\.delivery\.protocol \(line 17\): /);
  });

  it('refuses unknown keys, duplicate ids and codes, bad queues', () => {
    assert.deepEqual(problems(good.replace('role: merchant', 'role: merchant\n    colour: red')), ["partners[0].colour (line 7): unknown key 'colour'"]);
    const dup = problems(good.replace('id: cc1', 'id: m001'));
    assert.match(dup[0]!, /partners\[1\]\.id.*partner id 'm001' is already used by partners\.0/);
    assert.match(problems(good + 'queue: rabbit\n')[0]!, /^queue \(line \d+\): 'embedded' or a redis:\/\/ URL/);
  });

  it('refuses secrets written into the YAML', () => {
    const p = problems(good.replace('path: /tmp/cc1', 'path: /tmp/cc1, password: hunter2'));
    assert.match(p[0]!, /unknown key 'password'/);
  });

  it('reports YAML syntax errors with their line', () => {
    const p = problems('centre: [\n');
    assert.match(p[0]!, /^line \d+: /);
  });

  it('refuses cron patterns with both day-of-month and day-of-week', () => {
    assert.equal(cronProblem('0 2 * * *'), null);
    assert.equal(cronProblem('*/5 0-6 1,15 * *'), null);
    assert.match(cronProblem('0 2 1 * 1')!, /both day-of-month and day-of-week/);
    assert.match(cronProblem('0 25 * * *')!, /hour '25' is outside 0-23/);
    assert.match(cronProblem('0 2 * *')!, /expected 5 fields/);
    const p = problems(good + 'schedules: { cycle: "0 2 1 * 1" }\n');
    assert.match(p[0]!, /^schedules\.cycle \(line \d+\): cron '0 2 1 \* 1': sets both/);
  });
});
