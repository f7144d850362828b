// Config errors point at the offending key's own line and suggest the nearest known key (issue 12).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../jobs/config.ts';

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, '/tmp/t.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const HEAD = ['centre:', '  code: "0000000001"', '  name: X', 'spoolRoot: ./spool', 'ledger: sqlite:./t.db', 'queue: embedded', 'retentionDays: 90', 'deliver: { maxAttempts: 3 }'];

test('a top-level typo on line 9 is reported at line 9, with the key it was meant to be', () => {
  assert.deepEqual(problems([...HEAD, 'quietPeriodSecond: 5'].join('\n')), ["quietPeriodSecond (line 9): unknown key 'quietPeriodSecond'; did you mean 'quietPeriodSeconds'?"]);
});

test('a typo deep in a partner is reported at its own line, not the partner\'s first', () => {
  const partner = [
    'partners:',
    '  - id: cc1',
    '    name: CC1',
    '    role: card-company',
    '    code: "2000000001"',
    '    cardCompanyCodes: ["001"]',
    '    delivery:',
    '      protocol: sftp',
    '      host: h',
    '      user: u',
    '      path: /in',
    '      privateKey: { file: ./k }',
    '      knownHosts: ./kh',
    '      timeoutSecond: 5',
    '    resultDeadlineHour: 24',
  ];
  const lines = [...HEAD, ...partner];
  assert.deepEqual(problems(lines.join('\n')), [
    `partners[0].delivery.timeoutSecond (line ${lines.indexOf('      timeoutSecond: 5') + 1}): unknown key 'timeoutSecond'; did you mean 'timeoutSeconds'?`,
    `partners[0].resultDeadlineHour (line ${lines.indexOf('    resultDeadlineHour: 24') + 1}): unknown key 'resultDeadlineHour'; did you mean 'resultDeadlineHours'?`,
  ]);
});

test('a wrong value points at its key\'s line; a missing key at its parent; no suggestion for a word nothing like a key', () => {
  const lines = [...HEAD, 'partners:', '  - id: m1', '    name: M1', '    role: merchant', '    code: "1000000001"', '    rejectPolicy: sometimes', '    flavour: vanilla'];
  assert.deepEqual(problems(lines.join('\n')), [
    'partners[0].rejectPolicy (line 14): expected one of "record", "file"',
    "partners[0].flavour (line 15): unknown key 'flavour'",
  ]);
  const noKnownHosts = [...HEAD, 'partners:', '  - id: cc1', '    name: CC1', '    role: card-company', '    code: "2000000001"', '    cardCompanyCodes: ["001"]', '    delivery:', '      protocol: sftp', '      host: h', '      user: u', '      path: /in', '      privateKey: { file: ./k }'];
  assert.deepEqual(problems(noKnownHosts.join('\n')), ['partners[0].delivery.knownHosts (line 15): missing, expected string']);
});
