// The header record: reading it from the first bytes of a file (to learn the file type, the
// record length, the framing and the code page family) and building one for an output file.
import { ebcdicToCanonical, isEbcdic } from './codepages/index.ts';
import { FormatError } from './errors.ts';
import { blankRecord, decodeField, encodeField } from './field-codec.ts';
import { cutLayout, familyForFileType, getLayout, type Encoding, type Framing } from './layouts.ts';

export interface HeaderFields {
  fileType: string;
  codeType: string;
  senderCode: string;
  senderName: string;
  createdDate: string;
  createdTime: string;
  receiverCode: string;
  periodFrom: string;
  periodTo: string;
  fileSeq: string;
  cycle: string;
}

export interface HeaderInfo extends HeaderFields {
  recordLength: number;
  framing: Framing;
  encodingFamily: 'ascii' | 'ebcdic';
  /** The code page to read the file with: the family's default within the detected family. */
  encoding: Encoding;
  /** Layout family for the fileType and record length, when one is known. */
  family?: string;
  /** false when the record length was assumed from the fileType (no line end or next record seen) */
  recordLengthSeen: boolean;
}

export const HEADER_FIELD_NAMES: readonly (keyof HeaderFields)[] = ['fileType', 'codeType', 'senderCode', 'senderName', 'createdDate', 'createdTime', 'receiverCode', 'periodFrom', 'periodTo', 'fileSeq', 'cycle'];
const RECORD_LENGTHS = [200, 120];

/** Decodes the header fields of a canonical header record. */
export function readHeaderFields(canon: Buffer, off = 0): HeaderFields {
  const layout = cutLayout(getLayout('header'), 120);
  const out = {} as HeaderFields;
  for (const name of HEADER_FIELD_NAMES) out[name] = decodeField(canon, off, layout.byName.get(name)!);
  return out;
}

/**
 * Reads the header from the first bytes of a file (pass at least 202 bytes to detect framing).
 * Throws FormatError for bytes that are not a header.
 */
export function sniffHeader(firstBytes: Buffer, encodingHint?: Encoding): HeaderInfo {
  if (firstBytes.length < 120) throw new FormatError(`not a header record: only ${firstBytes.length} bytes`, 'E101');
  const b0 = firstBytes[0];
  const encodingFamily = b0 === 0x31 ? 'ascii' : b0 === 0xf1 ? 'ebcdic' : null;
  // A data, trailer or end record first is a known record out of order (E103), not an unknown one.
  const outOfOrder = b0 === 0x32 || b0 === 0x38 || b0 === 0x39 ? String.fromCharCode(b0) : b0 === 0xf2 || b0 === 0xf8 || b0 === 0xf9 ? String.fromCharCode(b0 - 0xc0) : null;
  if (outOfOrder) throw new FormatError(`records out of order: the first record is recordType '${outOfOrder}', not the header '1'`, 'E103');
  if (!encodingFamily) throw new FormatError(`not a header record: first byte 0x${b0!.toString(16).padStart(2, '0')} is not recordType '1' in ASCII or EBCDIC`, 'E102');
  let canon = firstBytes;
  if (encodingFamily === 'ebcdic') {
    canon = Buffer.alloc(120);
    const enc = encodingHint && isEbcdic(encodingHint) ? encodingHint : 'ebcdic-kana';
    ebcdicToCanonical(enc, cutLayout(getLayout('header'), 120), firstBytes, 0, canon, 120);
  }
  const fields = readHeaderFields(canon);
  if (!/^[0-9]{2}$/.test(fields.fileType)) throw new FormatError(`not a header record: fileType '${fields.fileType.replace(/[^\x20-\x7e]/g, '?')}' is not two digits`, 'E102');
  const { recordLength, framing, seen } = detectGrid(firstBytes, encodingFamily, fields.fileType);
  const family = familyForFileType(fields.fileType, recordLength);
  const encoding: Encoding = encodingHint ?? (family && isEbcdic(family.encoding) === (encodingFamily === 'ebcdic') ? family.encoding : encodingFamily === 'ebcdic' ? 'ebcdic-kana' : 'sjis');
  return { ...fields, recordLength, framing, encodingFamily, encoding, family: family?.recordLength === recordLength ? family.name : undefined, recordLengthSeen: seen };
}

function detectGrid(b: Buffer, encodingFamily: 'ascii' | 'ebcdic', fileType: string): { recordLength: number; framing: Framing; seen: boolean } {
  const expected = familyForFileType(fileType)?.recordLength ?? 200;
  const order = [expected, ...RECORD_LENGTHS.filter((l) => l !== expected)];
  for (const L of order) {
    if (b.length > L + 1 && b[L] === 0x0d && b[L + 1] === 0x0a) return { recordLength: L, framing: 'crlf', seen: true };
    if (b.length > L && b[L] === 0x0a) return { recordLength: L, framing: 'lf', seen: true };
  }
  // No line ends: records back to back. A 200-byte header has filler at byte 120, so a record
  // type there means 120-byte records.
  const isRecordType = (x: number | undefined) => x !== undefined && (encodingFamily === 'ascii' ? x >= 0x31 && x <= 0x39 : x >= 0xf1 && x <= 0xf9);
  if (b.length > 120 && isRecordType(b[120])) return { recordLength: 120, framing: 'none', seen: true };
  if (b.length > 200 && isRecordType(b[200])) return { recordLength: 200, framing: 'none', seen: true };
  return { recordLength: expected, framing: 'none', seen: false };
}

/** A canonical header record of the given length. Missing fields are blank (zeros / spaces). */
export function buildHeader(values: Partial<HeaderFields>, recordLength: number): Buffer {
  const layout = cutLayout(getLayout('header'), recordLength);
  const rec = blankRecord(layout);
  for (const name of HEADER_FIELD_NAMES) {
    const v = values[name];
    if (v !== undefined && v !== '') encodeField(String(v), rec, 0, layout.byName.get(name)!);
  }
  return rec;
}

/** A canonical end record: '9' and spaces. */
export function buildEnd(recordLength: number): Buffer {
  return blankRecord(cutLayout(getLayout('end'), recordLength));
}
