// Writing one file of a layout family in its code page: records given in canonical (Shift_JIS)
// form are encoded and written; finish() adds the trailer and the end record and closes the file.
import { canonicalToEncoding } from './codepages/index.ts';
import { buildEnd } from './header.ts';
import type { Encoding, Family, Framing, Layout } from './layouts.ts';
import { RecordFileWriter } from './record-io.ts';

export class FamilyFileWriter {
  private readonly writer: RecordFileWriter;
  private readonly encoded: Buffer;

  constructor(
    path: string,
    private readonly family: Family,
    private readonly encoding: Encoding,
    framing: Framing,
  ) {
    this.writer = new RecordFileWriter(path, framing);
    this.encoded = Buffer.alloc(family.recordLength);
  }

  /** Writes one canonical record of `layout` (the family's data layout by default). */
  put(canon: Buffer, layout: Layout = this.family.data): void {
    canonicalToEncoding(this.encoding, layout, canon, 0, this.encoded, 0);
    this.writer.write(this.encoded);
  }

  /** Writes the trailer and the end record and closes the file. */
  finish(trailer: Buffer): void {
    this.put(trailer, this.family.trailer);
    this.put(buildEnd(this.family.recordLength), this.family.end);
    this.writer.close();
  }

  /** Closes and removes a file that could not be finished. */
  abandon(): void {
    this.writer.abandon();
  }
}
