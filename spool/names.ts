// File names that come from partners. A partner's name is data, never part of our own paths: work
// and archive names are built from our file id, and the partner's name is kept in the ledger. The
// names we accept into inbound are checked in bytes (a file system limits bytes, not characters:
// 77 katakana are 231 bytes in UTF-8) and refuse control characters and bidirectional overrides,
// which break an operator's terminal table or make a name read differently from what it is.

/** At most this many UTF-8 bytes: a temporary name (".NAME.xxxxxxxx.part", 15 more) still fits in 255. */
export const MAX_NAME_BYTES = 240;

// C0, DEL and C1 controls (CR and LF among them).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
// Bidirectional embeddings, overrides and isolates, and the invisible direction marks.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
// U+FFFD stands for bytes that were not UTF-8: the name on disk would not be this name.
const REPLACEMENT = '\ufffd';

/** Why a partner's file name cannot be used as a file name here, or null when it can. */
export function fileNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty name';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) return `name is ${bytes} bytes in UTF-8, at most ${MAX_NAME_BYTES}`;
  if (CONTROL.test(name)) return 'control character in name';
  if (BIDI.test(name)) return 'bidirectional control character in name';
  if (name.includes(REPLACEMENT)) return 'name is not valid UTF-8';
  if (name.includes('/') || name.includes('\\')) return 'folder separator in name';
  if (name === '.' || name === '..' || name.startsWith('.')) return 'dot name';
  return null;
}

/**
 * A name as it may be shown or stored: controls and bidirectional characters written as \uXXXX,
 * cut to `maxChars` (the ledger's column).
 */
export function displayName(name: string, maxChars = 255): string {
  const escaped = name.replace(new RegExp(`${CONTROL.source}|${BIDI.source}`, 'gu'), (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
  return escaped.length <= maxChars ? escaped : `${escaped.slice(0, maxChars - 1)}…`;
}
