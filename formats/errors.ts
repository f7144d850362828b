// Error codes of the spec and the one error object every check produces.

export const ERROR_CODES = {
  E101: 'file size or framing breaks the record grid',
  E102: 'unknown recordType',
  E103: 'records out of order',
  E104: 'missing trailer or end record',
  E105: 'trailer count differs from the records counted',
  E106: 'trailer amount differs from the amounts summed',
  E107: 'fileType not allowed for this partner',
  E108: 'duplicate file',
  E109: 'bytes not valid in the code page',
  E201: 'N field holds something other than digits',
  E202: 'not a real date',
  E203: 'not a real time',
  E204: 'card number: wrong length, not digits, or Luhn check fails',
  E205: 'card expired before the use date',
  E206: 'code not in its list',
  E207: 'installments do not fit the payment method',
  E208: 'amount is zero or does not add up',
  E209: 'void or return without original slip number and date',
  E210: 'double-byte or control character in a C field',
  E301: 'no route for the card company or issuer code',
  E302: 'merchant number does not belong to the sender',
  E303: 'duplicate record in the file',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FormatErrorRecord {
  /** 1-based record number in the file, the header being record 1. */
  recordNo: number;
  /** 1-based byte position of the field in the record; 0 for a whole-record or file error. */
  bytePos: number;
  code: ErrorCode;
  /** Field name as in the spec, '' for a whole-record or file error. */
  field: string;
  /** Half-width text; never a whole card number. */
  detail: string;
}

/** Structural errors (E1xx) always reject the whole file. */
export const isStructural = (code: ErrorCode): boolean => code.startsWith('E1');

export function makeError(recordNo: number, bytePos: number, code: ErrorCode, field: string, detail: string = ERROR_CODES[code]): FormatErrorRecord {
  return { recordNo, bytePos, code, field, detail };
}

/** E108 is decided by the caller against the ledger; this builds its error for the 91 notice. */
export function makeDuplicateFileError(detail = 'same sender, fileType and fileSeq already accepted'): FormatErrorRecord {
  return makeError(1, 0, 'E108', 'fileSeq', detail);
}

/** Thrown for files that cannot be read as this kind of file at all (e.g. no header). */
export class FormatError extends Error {
  constructor(message: string, readonly code: ErrorCode = 'E101') {
    super(message);
  }
}
