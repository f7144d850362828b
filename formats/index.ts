// Public API of the formats engine. Everything the rest of tsunagi needs from the byte level.
export { sniffHeader, buildHeader, buildEnd, readHeaderFields, HEADER_FIELD_NAMES, type HeaderInfo, type HeaderFields } from './header.ts';
export { validateFile, type ValidateOptions, type ValidationReport } from './validate.ts';
export { ERROR_CODES, makeError, makeDuplicateFileError, isStructural, FormatError, type ErrorCode, type FormatErrorRecord } from './errors.ts';
export { maskCardNumber, maskCardNumbersIn, redactCardNumbers, redactDeep, luhnValid, luhnCheckDigit } from './card.ts';
export { generateFile, seededRandom, type GenerateOptions, type GenerateResult, type PlantedError } from './generate.ts';
export {
  getLayout, listLayouts, getFamily, listFamilies, familyForFileType, familyOfLayoutName, checkLayout, cutLayout, LayoutError, KNOWN_FILE_TYPES,
  type Layout, type Family, type FieldDef, type FieldType, type Encoding, type Framing,
} from './layouts.ts';
export { decodeField, encodeField, blankRecord, readDigits } from './field-codec.ts';
export { encodeSjis, decodeSjis, UnmappableCharacterError, InvalidBytesError, FieldEncodeError, codeTypeOf, isEbcdic } from './codepages/index.ts';
export { readRecords, RecordFileWriter, type GridBreak } from './record-io.ts';
export { FamilyFileWriter } from './family-file-writer.ts';
export { TotalsAccumulator } from './totals.ts';
export { splitFile, type SplitOptions, type SplitOutput, type TargetFormat, type SplitHeader, type ForwardInfo } from './split.ts';
export { convertFile, type ConvertOptions, type ConvertResult } from './convert.ts';
export { writeRejectNotice, noticeText, type RejectNoticeOptions } from './reject-notice.ts';
export { importCsv, CSV_FILE_TYPES, type CsvImportOptions, type CsvImportResult, type CsvRowError } from './csv-import.ts';
export { getMapping, compileMapping, loadMappingSpec, type MappingSpec, type FieldMapping, type CompiledMapping } from './mapping.ts';
export { makeRecordView, snapshotFields, type RecordFields } from './record-view.ts';
export { openSource, streamCanonical, type SourceFile } from './source-file.ts';
export { writeFieldRecords, readFieldRecords } from './field-files.ts';
