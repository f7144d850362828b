// Property-based tests (fast-check, fixed seed: test/helpers/property.ts) of the virtual root that
// SFTP and FTP resolve every client path through: any path a partner sends resolves inside the
// partner's two folders or is refused (EscapeRefused, audited, or NotInTree), and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fc from 'fast-check';
import { EscapeRefused, NotInTree, resolveVirtualPath } from '../../protocols/sftp/virtual-root.ts';
import { fileNameProblem } from '../../spool/names.ts';
import { checkProperty, parsesOrRefuses } from '../helpers/property.ts';

const dirs = { inbound: '/srv/spool/m001/inbound', outbound: '/srv/spool/m001/outbound' };
const segment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('inbound', 'outbound', '.', '..', '', 'T31_1.dat', '.hidden', '...', '..\\..', 'a\0b', '%2e%2e', '\u202etxt.exe', 'ｶﾀｶﾅ.dat') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 60, maxLength: 120 }) },
);
const clientPath = fc.tuple(fc.boolean(), fc.array(segment, { maxLength: 6 }), fc.constantFrom('/', '//', '/./')).map(([abs, parts, sep]) => (abs ? '/' : '') + parts.join(sep));
const cwd = fc.constantFrom('/', '/inbound', '/outbound', '/inbound/..', '/nowhere');

test('virtual root: any client path resolves inside the partner folders or is EscapeRefused / NotInTree', () => {
  checkProperty(2000, [cwd, clientPath], (from, p) => {
    const v = parsesOrRefuses(() => resolveVirtualPath(dirs, from, p), [EscapeRefused, NotInTree]);
    if (!v) return;
    assert.match(v.clientPath, /^\/(inbound|outbound)?(\/[^/]+)?$/);
    if (v.kind === 'file') {
      assert.equal(path.dirname(v.real), v.dir);
      assert.equal(v.dir, dirs[v.area]);
      assert.equal(fileNameProblem(v.name), null);
      assert.equal(path.basename(v.real), v.name);
    }
    if (v.kind !== 'root') assert.ok(v.clientPath.startsWith(`/${v.area}`));
  });
});

test('virtual root: resolving a resolved path again gives the same place', () => {
  checkProperty(1000, [cwd, clientPath], (from, p) => {
    let v;
    try {
      v = resolveVirtualPath(dirs, from, p);
    } catch {
      return;
    }
    assert.deepEqual(resolveVirtualPath(dirs, '/', v.clientPath), v);
  });
});
