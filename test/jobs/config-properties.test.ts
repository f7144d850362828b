// Property-based tests (fast-check, fixed seed: test/helpers/property.ts) of the config parser: any
// YAML text (the starter config with lines dropped, repeated, retyped or spliced, any YAML value, alias
// bombs) is either a config or a ConfigError whose problems each name a path in the file, never
// another error and never an unbounded expansion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../../jobs/config.ts';
import { starterConfig } from '../../jobs/starter.ts';
import { checkProperty, parsesOrRefuses } from '../helpers/property.ts';

// The starter config `tsunagi init` writes: listeners, partners of every role, schedules, secrets.
const good = starterConfig({ merchantPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl m-tokyo' });
const lines = good.split('\n');

const scalar = fc.oneof(fc.constantFrom('~', 'null', 'true', '0', '-1', '1e309', '0x10', '"', "'", '[', '{', '&a', '*a', '!!binary AAAA', '<<: *a', '? x', '|', '>-'), fc.string({ maxLength: 10 }), fc.integer().map(String));
const edit = fc.oneof(
  fc.nat({ max: lines.length - 1 }).map((i) => (ls: string[]) => ls.filter((_, j) => j !== i)),
  fc.nat({ max: lines.length - 1 }).map((i) => (ls: string[]) => [...ls.slice(0, i + 1), ls[i]!, ...ls.slice(i + 1)]),
  fc.tuple(fc.nat({ max: lines.length - 1 }), scalar).map(([i, v]) => (ls: string[]) => ls.map((l, j) => (j === i ? l.replace(/:\s.*$/, `: ${v}`) : l))),
  fc.tuple(fc.nat({ max: lines.length - 1 }), fc.string({ maxLength: 20 })).map(([i, junk]) => (ls: string[]) => [...ls.slice(0, i), junk, ...ls.slice(i)]),
  fc.tuple(fc.nat({ max: lines.length - 1 }), fc.integer({ min: -2, max: 4 })).map(([i, d]) => (ls: string[]) => ls.map((l, j) => (j === i ? (d < 0 ? l.slice(-d) : ' '.repeat(d) + l) : l))),
);
const edited = fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => edits.reduce((ls, e) => e(ls), lines).join('\n'));
const anyYaml = fc.jsonValue({ maxDepth: 3 }).map((v) => stringify(v));
const bomb = fc.integer({ min: 2, max: 9 }).map((levels) => {
  let text = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  for (let i = 1; i <= levels; i++) text += `a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(',')}]\n`;
  return `${text}centre: *a${levels}\n`;
});

function check(text: string): void {
  const started = Date.now();
  const config = parsesOrRefuses(() => parseConfig(text, '/etc/tsunagi.yaml'), [ConfigError]);
  assert.ok(Date.now() - started < 2000, 'parsing took over 2 s');
  if (config) return;
  let problems: string[] = [];
  try {
    parseConfig(text, '/etc/tsunagi.yaml');
  } catch (err) {
    problems = (err as ConfigError).problems;
  }
  assert.ok(problems.length > 0, 'a ConfigError without problems');
  for (const p of problems) assert.match(p, /^(line \d+: |\(top\)|YAML aliases: |([A-Za-z_$][\w$-]*|\[(\d+|"([^"\\]|\\.)*")\])(\.[A-Za-z_$][\w$-]*|\[(\d+|"([^"\\]|\\.)*")\])*( \(line \d+\))?: )/, `problem does not say where: ${p}`);
}

test('config: the starter config edited at random is a config or a ConfigError that names where', () => {
  checkProperty(120, [edited], check);
});

test('config: any YAML value, and alias bombs, are a config or a ConfigError', () => {
  checkProperty(80, [fc.oneof(anyYaml, bomb)], check);
});

test('counterexample: a key that is not a name is quoted in the path of its problem', () => {
  assert.throws(() => parseConfig('":": ""\n', '/etc/tsunagi.yaml'), (err: Error) => err instanceof ConfigError && err.problems.some((p) => p.startsWith('[":"] (line 1): unknown key')));
});

test('counterexample: an alias to an anchor never set, and an alias bomb, are ConfigErrors (yaml threw a ReferenceError)', () => {
  for (const text of ['centre: *a\n', fc.sample(bomb, { seed: 1, numRuns: 1 })[0]!]) {
    assert.throws(() => parseConfig(text, '/etc/tsunagi.yaml'), (err: Error) => err instanceof ConfigError && /^YAML aliases: /.test(err.problems[0]!));
  }
});
