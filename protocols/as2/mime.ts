// MIME over exact bytes: an entity is split into its header block and its body without re-encoding
// anything, so a signature or a MIC is computed on exactly what was transmitted.

export class MimeError extends Error {}

export interface MimeEntity {
  /** Lower-case header name -> unfolded value (the first occurrence). */
  headers: Map<string, string>;
  body: Buffer;
  /** The whole entity: header block, blank line, body. */
  raw: Buffer;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const LFLF = Buffer.from('\n\n');

export function parseHeaderBlock(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  let current: string | undefined;
  const flush = () => {
    if (current === undefined) return;
    const colon = current.indexOf(':');
    if (colon > 0) {
      const name = current.slice(0, colon).trim().toLowerCase();
      if (!headers.has(name)) headers.set(name, current.slice(colon + 1).trim());
    }
    current = undefined;
  };
  for (const line of lines) {
    if (/^[ \t]/.test(line) && current !== undefined) current += ` ${line.trim()}`;
    else {
      flush();
      if (line.length > 0) current = line;
    }
  }
  flush();
  return headers;
}

/** Splits an entity (headers, blank line, body). An entity that starts with the blank line has no headers. */
export function parseEntity(raw: Buffer, maxHeaderBytes = 64 * 1024): MimeEntity {
  let end = raw.subarray(0, maxHeaderBytes + 4).indexOf(CRLFCRLF);
  let sep = 4;
  if (raw[0] === 0x0d && raw[1] === 0x0a) {
    end = 0;
    sep = 2;
  } else if (end < 0) {
    end = raw.subarray(0, maxHeaderBytes + 2).indexOf(LFLF);
    sep = 2;
    if (end < 0) throw new MimeError('MIME entity without a header block');
  }
  return { headers: parseHeaderBlock(raw.subarray(0, end).toString('latin1')), body: raw.subarray(end + sep), raw };
}

export interface ContentType {
  type: string;
  params: Map<string, string>;
}

/** `type/subtype; a=b; c="d"`: type lower-cased, parameter names lower-cased, values unquoted. */
export function parseParams(value: string): ContentType {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    // Inside a quoted string a backslash escapes the next character (RFC 2045 quoted-pair): an
    // escaped quote does not end the string.
    if (ch === '\\' && quoted && i + 1 < value.length) {
      cur += ch + value[++i]!;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === ';' && !quoted) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  const params = new Map<string, string>();
  for (const p of parts.slice(1)) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    params.set(p.slice(0, eq).trim().toLowerCase(), v);
  }
  return { type: parts[0]!.trim().toLowerCase(), params };
}

export function contentTypeOf(entity: MimeEntity): ContentType {
  return parseParams(entity.headers.get('content-type') ?? 'text/plain');
}

/**
 * The parts of a multipart body, exactly as transmitted: each part runs from after its delimiter
 * line to before the CRLF that precedes the next delimiter.
 */
export function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  if (!boundary || boundary.length > 200) throw new MimeError('multipart without a usable boundary');
  const dash = Buffer.from(`--${boundary}`);
  const crlfDash = Buffer.from(`\r\n--${boundary}`);
  let pos: number;
  if (body.subarray(0, dash.length).equals(dash)) pos = 0;
  else {
    pos = body.indexOf(crlfDash);
    if (pos < 0) throw new MimeError('multipart boundary not found');
    pos += 2;
  }
  const parts: Buffer[] = [];
  for (;;) {
    let lineEnd = pos + dash.length;
    if (body[lineEnd] === 0x2d && body[lineEnd + 1] === 0x2d) return parts; // closing delimiter
    // transport padding, then CRLF
    while (body[lineEnd] === 0x20 || body[lineEnd] === 0x09) lineEnd++;
    if (body[lineEnd] === 0x0d && body[lineEnd + 1] === 0x0a) lineEnd += 2;
    else if (body[lineEnd] === 0x0a) lineEnd += 1;
    else throw new MimeError('malformed multipart delimiter line');
    const next = body.indexOf(crlfDash, lineEnd);
    if (next < 0) throw new MimeError('multipart without a closing delimiter');
    parts.push(body.subarray(lineEnd, next));
    pos = next + 2;
    if (parts.length > 64) throw new MimeError('too many multipart parts');
  }
}

/** The body of an entity with its Content-Transfer-Encoding undone. */
export function decodedBody(entity: MimeEntity): Buffer {
  const cte = (entity.headers.get('content-transfer-encoding') ?? 'binary').toLowerCase();
  if (cte === 'base64') return Buffer.from(entity.body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
  if (cte === 'quoted-printable') {
    const text = entity.body.toString('latin1').replace(/=\r?\n/g, '');
    return Buffer.from(text.replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
  }
  return entity.body;
}

/** A header value quoted when it holds anything but a token (RFC 4130 AS2 ids with spaces or quotes). */
export function quoteIfNeeded(value: string): string {
  return /^[A-Za-z0-9!#$%&'*+.^_`{|}~-]+$/.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

export function unquote(value: string): string {
  const v = value.trim();
  return v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
}

export function headerBlock(headers: [string, string][]): Buffer {
  return Buffer.from(headers.map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n', 'latin1');
}

/** `filename` of a Content-Disposition, if any. */
export function fileNameOf(entity: MimeEntity): string | undefined {
  const cd = entity.headers.get('content-disposition');
  if (!cd) return undefined;
  const params = parseParams(cd).params;
  return params.get('filename') ?? undefined;
}
