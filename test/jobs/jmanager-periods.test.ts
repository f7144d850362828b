// Jmanager cycles: which period is due on a run date, at month ends, in 30- and 31-day months and
// in February of leap and common years.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lastCompletedPeriod, periodContaining, type Cycle } from '../../jobs/jmanager/periods.ts';

const due = (cycle: Cycle, run: string) => {
  const p = lastCompletedPeriod(cycle, run);
  return `${p.from}-${p.to}`;
};

describe('jmanager periods', () => {
  it('D is the previous day, across month and year ends', () => {
    assert.equal(due('D', '20240315'), '20240314-20240314');
    assert.equal(due('D', '20240301'), '20240229-20240229');
    assert.equal(due('D', '20230301'), '20230228-20230228');
    assert.equal(due('D', '20250101'), '20241231-20241231');
  });

  it('F runs 1-5 ... 21-25 and 26 to the month end', () => {
    assert.equal(due('F', '20240306'), '20240301-20240305');
    assert.equal(due('F', '20240310'), '20240301-20240305'); // 6-10 not over yet
    assert.equal(due('F', '20240311'), '20240306-20240310');
    assert.equal(due('F', '20240326'), '20240321-20240325');
    assert.equal(due('F', '20240401'), '20240326-20240331'); // 31-day month: six days
    assert.equal(due('F', '20240501'), '20240426-20240430'); // 30-day month
    assert.equal(due('F', '20240301'), '20240226-20240229'); // leap February
    assert.equal(due('F', '20230301'), '20230226-20230228'); // common February: three days
    assert.equal(due('F', '20230305'), '20230226-20230228');
  });

  it('H runs 1-15 and 16 to the month end', () => {
    assert.equal(due('H', '20240316'), '20240301-20240315');
    assert.equal(due('H', '20240331'), '20240301-20240315');
    assert.equal(due('H', '20240401'), '20240316-20240331');
    assert.equal(due('H', '20240701'), '20240616-20240630');
    assert.equal(due('H', '20240301'), '20240216-20240229');
    assert.equal(due('H', '20230301'), '20230216-20230228');
  });

  it('M is the previous month', () => {
    assert.equal(due('M', '20240301'), '20240201-20240229');
    assert.equal(due('M', '20240331'), '20240201-20240229');
    assert.equal(due('M', '20230315'), '20230201-20230228');
    assert.equal(due('M', '20240501'), '20240401-20240430');
    assert.equal(due('M', '20240801'), '20240701-20240731');
    assert.equal(due('M', '20250101'), '20241201-20241231');
    assert.equal(due('M', '21000301'), '21000201-21000228'); // 2100 is not a leap year
  });

  it('periods tile every month without gap or overlap', () => {
    for (const cycle of ['F', 'H', 'M'] as Cycle[]) {
      for (const ym of ['202401', '202402', '202302', '202404', '202412']) {
        let day = `${ym}01`;
        const seen: string[] = [];
        while (day.startsWith(ym)) {
          const p = periodContaining(cycle, day);
          assert.ok(p.from <= day && day <= p.to, `${cycle} ${day}`);
          seen.push(p.to);
          const next = new Date(Date.UTC(+day.slice(0, 4), +day.slice(4, 6) - 1, +day.slice(6) + 1));
          day = next.toISOString().slice(0, 10).replaceAll('-', '');
        }
        assert.equal(seen.at(-1), periodContaining('M', `${ym}01`).to);
      }
    }
  });
});
