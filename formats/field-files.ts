// Whole files written from, and read into, field values by name: for test data, the demo and
// small answers, where clarity matters more than speed (the engine's paths work on bytes).
import { buildHeader, type HeaderFields } from './header.ts';
import { blankRecord, encodeField } from './field-codec.ts';
import { getFamily, type Encoding, type Framing } from './layouts.ts';
import { FamilyFileWriter } from './family-file-writer.ts';
import { TotalsAccumulator } from './totals.ts';
import { openSource, streamCanonical } from './source-file.ts';
import { snapshotFields } from './record-view.ts';

/** A file of `family`: the header, one data record per entry of `records`, a trailer with their totals. */
export function writeFieldRecords(out: string, family: string, header: Partial<HeaderFields>, records: readonly Record<string, string>[], encoding: Encoding = 'sjis', framing: Framing = 'crlf'): void {
  const fam = getFamily(family);
  const w = new FamilyFileWriter(out, fam, encoding, framing);
  w.put(buildHeader({ codeType: '0', createdTime: '090000', periodFrom: header.createdDate, periodTo: header.createdDate, ...header }, fam.recordLength), fam.header);
  const totals = new TotalsAccumulator(fam);
  for (const r of records) {
    const rec = blankRecord(fam.data);
    for (const [k, v] of Object.entries(r)) {
      const field = fam.data.byName.get(k);
      if (!field) throw new Error(`${family}: no field ${k} in layout ${fam.data.name}`);
      encodeField(v, rec, 0, field);
    }
    totals.add(rec, 0);
    w.put(rec);
  }
  const trailer = blankRecord(fam.trailer);
  totals.writeInto(trailer);
  w.finish(trailer);
}

/** The header fields, the file type and every data record of a file, as field values by name. */
export async function readFieldRecords(file: string): Promise<{ fileType: string; header: Record<string, string>; records: Record<string, string>[] }> {
  const src = await openSource(file, {});
  const records: Record<string, string>[] = [];
  await streamCanonical(src, (rec, off, _n, type) => {
    if (type === '2') records.push(snapshotFields(src.family.data, rec, off));
  });
  return { fileType: src.header.fileType, header: { ...src.header } as unknown as Record<string, string>, records };
}
