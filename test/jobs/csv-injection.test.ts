// The reconciliation report neutralises cells a spreadsheet would run as formulas (a partner
// controls some of that text: file names, merchant fields); numbers stay numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csvCell, neutraliseFormula } from '../../jobs/reconcile/report.ts';

test('formula cells get an apostrophe; negative amounts and ordinary text do not', () => {
  for (const bad of ['=HYPERLINK("http://x","y")', '+1+1', '-2+3', '@SUM(A1:A9)', '\t=1', '\r=1', '=cmd|\' /C calc\'!A0']) {
    assert.equal(neutraliseFormula(bad), `'${bad}`, JSON.stringify(bad));
  }
  for (const ok of ['-1200', '+15', '3.50', 'URIAGE.DAT', 'E204 cardNo', '']) assert.equal(neutraliseFormula(ok), ok);
  assert.equal(csvCell('=1+2,"x"', true), `"'=1+2,""x"""`, 'neutralised, then quoted');
  assert.equal(csvCell(-500, false), '-500');
});
