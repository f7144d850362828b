// Encoders and decoders for every 全銀TCP/IP message (TTC header, session control, file control,
// data). Byte layouts follow ../shared/specs/zengin-tcpip.md exactly; decoders refuse what does not
// fit and say which 処理結果 the receiver should answer with.
import { decodeEbcdic, encodeEbcdic, EbcdicError } from './ebcdic.ts';

export const TTC_LENGTH = 5;
export const CONTROL_LENGTH = 69;

export type Form = 'pc' | 'host';

/** 処理結果 values. Session and file control reuse the numbers with different meanings. */
export const Result = {
  ok: 0x00,
  unknownKind: 0x10,
  // session control
  receiverCodeWrong: 0x11,
  senderCodeWrong: 0x12,
  outsideServiceHours: 0x13,
  passwordWrong: 0x14,
  applicationIdWrong: 0x15,
  modeWrong: 0x16,
  modeChangeRefused: 0x17,
  // file control
  fileNameUnknown: 0x11,
  accessKeyWrong: 0x12,
  textCountDiffers: 0x13,
  recordCountDiffers: 0x14,
  recordLengthWrong: 0x15,
  duplicateTransfer: 0x16,
  noFileToSend: 0x17,
  other: 0x99,
} as const;

export const SessionKind = {
  openRequest: 0x00,
  openResponse: 0x01,
  closeRequest: 0x02,
  closeResponse: 0x03,
  modeChangeRequest: 0x04,
  modeChangeResponse: 0x05,
} as const;

export const FileKind = {
  startRequest: 0x10,
  startResponse: 0x11,
  endRequest: 0x12,
  endResponse: 0x13,
  restartRequest: 0x14,
} as const;

/** A message the peer got wrong; `result` is the 処理結果 to answer with. */
export class ProtocolError extends Error {
  constructor(
    readonly result: number,
    message: string,
  ) {
    super(message);
  }
}

/** Bytes that are not a TTC header at all (an HTTP request, a TLS hello): not a 全銀 peer; close at once. */
export class NotZenginError extends ProtocolError {}

/**
 * The 処理結果 a 閉局要求 can carry for `result`: the session-control table shares its numbers with
 * the file-control one (0x13 is "outside service hours" there, "text count differs" here), so a
 * file-level reason goes as 0x99 (other) rather than as a session code it does not mean.
 */
export function closeRequestResult(result: number): number {
  return result === Result.ok || result === Result.unknownKind ? result : Result.other;
}

export interface TtcHeader {
  form: Form;
  isData: boolean;
  seq: number;
  length: number;
}

export function encodeTtc(h: TtcHeader, out: Buffer = Buffer.alloc(TTC_LENGTH), at = 0): Buffer {
  out[at] = (h.form === 'pc' ? 0x10 : 0x00) | (h.isData ? 0x01 : 0x00);
  out.writeUInt16BE(h.seq, at + 1);
  out.writeUInt16BE(h.length, at + 3);
  return out;
}

export function decodeTtc(buf: Buffer): TtcHeader {
  if (buf.length < TTC_LENGTH) throw new ProtocolError(Result.other, `message of ${buf.length} bytes is shorter than the TTC header`);
  const b = buf[0]!;
  const high = b >> 4;
  const low = b & 0x0f;
  if ((high !== 0 && high !== 1) || (low !== 0 && low !== 1)) throw new ProtocolError(Result.other, `TTC byte 0x${b.toString(16)} is neither control nor data`);
  return { form: high === 1 ? 'pc' : 'host', isData: low === 1, seq: buf.readUInt16BE(1), length: buf.readUInt16BE(3) };
}

// ---------------------------------------------------------------------------------------------
// Session control (通信制御電文)

export type Mode = '0' | '1';

export interface SessionControl {
  kind: number;
  result: number;
  /** 相手センター確認コード: the code of whoever receives this message. 7 bytes. */
  receiverCode: Buffer;
  /** 当方センター確認コード: the code of whoever sends it. 7 bytes. */
  senderCode: Buffer;
  /** YYMMDDhhmmss as 6 BCD bytes, kept raw so that a response can echo it. */
  timestamp: Buffer;
  password: Buffer;
  applicationId: string;
  mode: Mode;
}

const SESSION_KINDS = new Set<number>(Object.values(SessionKind));
const FILE_KINDS = new Set<number>(Object.values(FileKind));

export function isSessionKind(kind: number): boolean {
  return SESSION_KINDS.has(kind);
}
export function isFileKind(kind: number): boolean {
  return FILE_KINDS.has(kind);
}

function fixed(buf: Buffer, len: number, what: string): Buffer {
  if (buf.length !== len) throw new Error(`${what} must be ${len} bytes, got ${buf.length}`);
  return buf;
}

export function encodeSessionControl(m: SessionControl, form: Form = 'pc'): Buffer {
  const out = Buffer.alloc(CONTROL_LENGTH, 0x00);
  encodeTtc({ form, isData: false, seq: 0, length: CONTROL_LENGTH }, out);
  out[5] = m.kind;
  out[6] = m.result;
  fixed(m.receiverCode, 7, 'receiver centre code').copy(out, 7);
  fixed(m.senderCode, 7, 'sender centre code').copy(out, 14);
  fixed(m.timestamp, 6, 'timestamp').copy(out, 21);
  fixed(m.password, 6, 'password').copy(out, 27);
  encodeEbcdic(m.applicationId, 1).copy(out, 33);
  encodeEbcdic(m.mode, 1).copy(out, 34);
  return out;
}

/** Decodes the 64 bytes after the TTC header. The caller checked the TTC header already. */
export function decodeSessionControl(buf: Buffer): SessionControl {
  checkControlLength(buf);
  const kind = buf[5]!;
  if (!SESSION_KINDS.has(kind)) throw new ProtocolError(Result.unknownKind, `unknown session 電文区分 0x${kind.toString(16)}`);
  let applicationId: string;
  try {
    applicationId = decodeEbcdic(buf.subarray(33, 34));
  } catch {
    throw new ProtocolError(Result.applicationIdWrong, 'application ID is not an EBCDIC character');
  }
  const modeByte = buf[34]!;
  if (modeByte !== 0xf0 && modeByte !== 0xf1) throw new ProtocolError(Result.modeWrong, `mode byte 0x${modeByte.toString(16)} is neither '0' nor '1'`);
  return {
    kind,
    result: buf[6]!,
    receiverCode: Buffer.from(buf.subarray(7, 14)),
    senderCode: Buffer.from(buf.subarray(14, 21)),
    timestamp: Buffer.from(buf.subarray(21, 27)),
    password: Buffer.from(buf.subarray(27, 33)),
    applicationId,
    mode: modeByte === 0xf0 ? '0' : '1',
  };
}

function checkControlLength(buf: Buffer): void {
  if (buf.length !== CONTROL_LENGTH) throw new ProtocolError(Result.other, `control message of ${buf.length} bytes, expected ${CONTROL_LENGTH}`);
  const h = decodeTtc(buf);
  if (h.isData || h.length !== CONTROL_LENGTH || h.seq !== 0) throw new ProtocolError(Result.other, 'control message with a data flag, a sequence number or a wrong length');
}

/** YYMMDDhhmmss in Asia/Tokyo as 6 BCD bytes. */
export function bcdTimestamp(at: Date = new Date()): Buffer {
  const tokyo = new Date(at.getTime() + 9 * 3600_000).toISOString(); // 2025-01-02T12:34:56
  const digits = tokyo.slice(2, 4) + tokyo.slice(5, 7) + tokyo.slice(8, 10) + tokyo.slice(11, 13) + tokyo.slice(14, 16) + tokyo.slice(17, 19);
  return Buffer.from(digits, 'hex');
}

// ---------------------------------------------------------------------------------------------
// File control (ファイル制御電文)

export interface FileControl {
  kind: number;
  result: number;
  /** 12 characters, upper-case letters and digits. */
  fileName: string;
  /** 6 characters. */
  accessKey: string;
  textCount: number;
  recordCount: number;
  recordLength: number;
  restartFrom: number;
  restartTo: number;
  /** ファイル補助情報, 17 characters (spaces unless agreed). */
  auxInfo: string;
}

export const MAX_TEXTS = 0xffff;
export const MAX_RECORDS = 0xffffff;

export function encodeFileControl(m: FileControl, form: Form = 'pc'): Buffer {
  const out = Buffer.alloc(CONTROL_LENGTH, 0x00);
  encodeTtc({ form, isData: false, seq: 0, length: CONTROL_LENGTH }, out);
  out[5] = m.kind;
  out[6] = m.result;
  encodeEbcdic(m.fileName, 12).copy(out, 7);
  encodeEbcdic(m.accessKey, 6).copy(out, 19);
  if (m.textCount > MAX_TEXTS || m.recordCount > MAX_RECORDS) throw new Error(`counts ${m.textCount}/${m.recordCount} exceed the message fields`);
  out.writeUInt16BE(m.textCount, 25);
  out.writeUIntBE(m.recordCount, 27, 3);
  out[30] = 0xf0; // レコードID '0': fixed length
  out.writeUInt16BE(m.recordLength, 31);
  out.writeUInt16BE(m.restartFrom, 33);
  out.writeUInt16BE(m.restartTo, 35);
  out[37] = 0xf0; // データ圧縮ID '0': none
  encodeEbcdic(m.auxInfo, 17).copy(out, 38);
  return out;
}

export function decodeFileControl(buf: Buffer): FileControl {
  checkControlLength(buf);
  const kind = buf[5]!;
  if (!FILE_KINDS.has(kind)) throw new ProtocolError(Result.unknownKind, `unknown file 電文区分 0x${kind.toString(16)}`);
  const text = (from: number, to: number, result: number, what: string) => {
    try {
      return decodeEbcdic(buf.subarray(from, to));
    } catch (err) {
      if (err instanceof EbcdicError) throw new ProtocolError(result, `${what}: ${err.message}`);
      throw err;
    }
  };
  if (buf[30] !== 0xf0) throw new ProtocolError(Result.recordLengthWrong, 'レコードID is not 0 (fixed length)');
  if (buf[37] !== 0xf0) throw new ProtocolError(Result.other, 'データ圧縮ID is not 0 (compression is not supported)');
  return {
    kind,
    result: buf[6]!,
    fileName: text(7, 19, Result.fileNameUnknown, 'file name'),
    accessKey: text(19, 25, Result.accessKeyWrong, 'access key'),
    textCount: buf.readUInt16BE(25),
    recordCount: buf.readUIntBE(27, 3),
    recordLength: buf.readUInt16BE(31),
    restartFrom: buf.readUInt16BE(33),
    restartTo: buf.readUInt16BE(35),
    auxInfo: text(38, 55, Result.other, 'ファイル補助情報'),
  };
}

/** The 電文区分 of a control message, without decoding the rest. */
export function controlKind(buf: Buffer): number {
  return buf[5] ?? -1;
}

// ---------------------------------------------------------------------------------------------
// Data messages

export function encodeDataHeader(seq: number, payloadLength: number, form: Form = 'pc'): Buffer {
  return encodeTtc({ form, isData: true, seq, length: TTC_LENGTH + payloadLength });
}

/** How many whole records one data message carries. */
export function recordsPerText(maxText: number, recordLength: number): number {
  const n = Math.floor((maxText - TTC_LENGTH) / recordLength);
  if (n < 1) throw new Error(`record length ${recordLength} does not fit in maxText ${maxText}`);
  return n;
}

/** Text and record counts of a file of `size` bytes. */
export function countsFor(size: number, recordLength: number, maxText: number): { textCount: number; recordCount: number; perText: number } {
  if (size % recordLength !== 0) throw new Error(`file size ${size} is not a multiple of the record length ${recordLength}`);
  const recordCount = size / recordLength;
  const perText = recordsPerText(maxText, recordLength);
  const textCount = Math.ceil(recordCount / perText);
  if (recordCount > MAX_RECORDS) throw new Error(`${recordCount} records exceed the 全銀 limit of ${MAX_RECORDS}`);
  if (textCount > MAX_TEXTS) throw new Error(`${textCount} data messages exceed the 全銀 limit of ${MAX_TEXTS}; raise maxText`);
  return { textCount, recordCount, perText };
}

/** Centre codes and passwords are configured as hex or EBCDIC text; on the wire they are raw bytes. */
export function codeBytes(hex14: string): Buffer {
  if (!/^[0-9A-Fa-f]{14}$/.test(hex14)) throw new Error('a centre code is 14 hex digits');
  return Buffer.from(hex14, 'hex');
}

export function passwordBytes(secret: string, encoding: 'ebcdic' | 'hex'): Buffer {
  if (encoding === 'hex') {
    if (!/^[0-9A-Fa-f]{12}$/.test(secret)) throw new Error('a hex password is 12 hex digits');
    return Buffer.from(secret, 'hex');
  }
  if (secret.length !== 6) throw new Error('an EBCDIC password is 6 characters');
  return encodeEbcdic(secret, 6);
}
