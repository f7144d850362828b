// `tsunagi convert`: one file from one layout/code page/framing to another, record by record,
// header, trailer and end included; trailers are recomputed for the target layout.
import { canonicalToEncoding, codeTypeOf, FieldEncodeError } from './codepages/index.ts';
import { FormatError } from './errors.ts';
import { blankRecord } from './field-codec.ts';
import { buildEnd, buildHeader, readHeaderFields } from './header.ts';
import { familyOfLayoutName, type Encoding, type Framing, type Layout } from './layouts.ts';
import { getMapping } from './mapping.ts';
import { RecordFileWriter } from './record-io.ts';
import { openSource, streamCanonical } from './source-file.ts';
import { TotalsAccumulator } from './totals.ts';

export interface ConvertOptions {
  /** source layout (data layout or family name); default from the header */
  from?: string;
  to: string;
  inEncoding?: Encoding;
  inFraming?: Framing;
  outEncoding?: Encoding;
  outFraming?: Framing;
}

export interface ConvertResult { records: number; dataRecords: number; groups: number; encoding: Encoding; framing: Framing; layout: string }

export async function convertFile(inPath: string, opts: ConvertOptions, outPath: string): Promise<ConvertResult> {
  const src = await openSource(inPath, { layout: opts.from, encoding: opts.inEncoding, framing: opts.inFraming });
  const target = familyOfLayoutName(opts.to);
  const encoding = opts.outEncoding ?? target.encoding;
  const framing = opts.outFraming ?? target.framing;
  const mapping = getMapping(src.family.data.name, target.data.name);
  const totals = new TotalsAccumulator(target);
  const canon = blankRecord(target.data);
  const encoded = Buffer.alloc(target.recordLength);
  const writer = new RecordFileWriter(outPath, framing);
  const result: ConvertResult = { records: 0, dataRecords: 0, groups: 0, encoding, framing, layout: target.data.name };
  const put = (rec: Buffer, layout: Layout, recordNo: number) => {
    try {
      canonicalToEncoding(encoding, layout, rec, 0, encoded, 0);
    } catch (err) {
      if (err instanceof FieldEncodeError) throw new FormatError(`record ${recordNo}: ${err.message}`, 'E109');
      throw err;
    }
    writer.write(encoded);
    result.records++;
  };
  try {
    await streamCanonical(src, (rec, off, recordNo, type) => {
      switch (type) {
        case '1': {
          const h = readHeaderFields(rec, off);
          put(buildHeader({ ...h, codeType: codeTypeOf(encoding) }, target.recordLength), target.header, recordNo);
          totals.reset();
          result.groups++;
          return;
        }
        case '2':
          try {
            mapping.apply(rec, off, canon, 0);
          } catch (err) {
            if (err instanceof FieldEncodeError) throw new FormatError(`record ${recordNo}: ${err.message}`, 'E109');
            throw err;
          }
          totals.add(canon, 0);
          result.dataRecords++;
          put(canon, target.data, recordNo);
          return;
        case '8': {
          const trailer = blankRecord(target.trailer);
          // fields that cannot be recomputed (e.g. a 91's fileSha256) survive a same-layout conversion
          if (src.family.trailer.name === target.trailer.name) rec.copy(trailer, 0, off, off + target.recordLength);
          totals.writeInto(trailer);
          put(trailer, target.trailer, recordNo);
          return;
        }
        case '9':
          put(buildEnd(target.recordLength), target.end, recordNo);
          return;
        default:
          throw new FormatError(`record ${recordNo}: unknown recordType`, 'E102');
      }
    });
    writer.close();
  } catch (err) {
    writer.abandon();
    throw err;
  }
  return result;
}
