// Opening a fixed-width file for reading: sniff its header, choose the family, encoding and framing
// (explicit options win), and stream canonical records to a callback.
import { fileAccess } from './file-access.ts';
import { ebcdicToCanonical, isEbcdic, recordTypeOf } from './codepages/index.ts';
import { FormatError } from './errors.ts';
import { sniffHeader, type HeaderInfo } from './header.ts';
import { familyOfLayoutName, type Encoding, type Family, type Framing, type Layout } from './layouts.ts';
import { readRecords, type ReadResult } from './record-io.ts';

export interface SourceOptions { layout?: string; encoding?: Encoding; framing?: Framing }

export interface SourceFile { path: string; header: HeaderInfo; family: Family; encoding: Encoding; framing: Framing }

export async function openSource(path: string, opts: SourceOptions): Promise<SourceFile> {
  const fh = await fileAccess().openRead(path);
  let first: Buffer;
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    first = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const header = sniffHeader(first, opts.encoding);
  const familyName = opts.layout ?? header.family;
  if (!familyName) throw new FormatError(`${path}: no layout for fileType ${header.fileType} with ${header.recordLength}-byte records`, 'E107');
  const family = familyOfLayoutName(familyName);
  return { path, header, family, encoding: opts.encoding ?? header.encoding, framing: opts.framing ?? header.framing };
}

/** type: '1' header, '2' data, '8' trailer, '9' end, '' unknown. `rec` is canonical. */
export type CanonicalHandler = (rec: Buffer, off: number, recordNo: number, type: string, layout: Layout | null) => void;

/** Streams canonical records; a grid break or undecodable EBCDIC byte is a FormatError. */
export async function streamCanonical(src: SourceFile, onRecord: CanonicalHandler, afterChunk?: () => Promise<void> | void): Promise<ReadResult> {
  const { family, encoding } = src;
  const byType: Record<string, Layout> = { '1': family.header, '2': family.data, '8': family.trailer, '9': family.end };
  const ebcdic = isEbcdic(encoding);
  const scratch = Buffer.alloc(family.recordLength);
  const result = await readRecords(src.path, { recordLength: family.recordLength, framing: src.framing, afterChunk }, (buf, off, recordNo) => {
    const type = recordTypeOf(encoding, buf[off]!);
    const layout = byType[type] ?? null;
    if (ebcdic) {
      const bad = ebcdicToCanonical(encoding, layout, buf, off, scratch, family.recordLength);
      if (bad >= 0) throw new FormatError(`${src.path}: record ${recordNo} byte ${bad + 1} is not valid in ${encoding}`, 'E109');
      onRecord(scratch, 0, recordNo, type, layout);
    } else onRecord(buf, off, recordNo, type, layout);
  });
  if (result.gridBreak) throw new FormatError(`${src.path}: ${result.gridBreak.detail}`, 'E101');
  return result;
}
