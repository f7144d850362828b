// The merchant portal: its files (what it sent, what we have for it), upload (fixed width or CSV)
// through the spool's landing with the validation result once ingest is done, and downloads
// recorded as pickups exactly like an SFTP download. Every query is filtered by the session's
// partner: an id from another merchant answers as if it did not exist.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Multipart } from '@fastify/multipart';
import { sha256File } from '../../spool/checksum.ts';
import { createSpoolFile, createSpoolReadStream, spoolFileSize } from '../../spool/encrypted-file.ts';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { importCsv, CSV_FILE_TYPES, type CsvRowError } from '../../formats/index.ts';
import { jobId } from '../../jobs/context.ts';
import { recordPickup } from '../../jobs/handlers/deliver.ts';
import { pathExists } from '../../spool/atomic.ts';
import { AuditWriteFailed, LandingRefused, assertSafeFileName, beginLanding, landFile, UnsafeNameError } from '../../spool/landing.ts';
import { partnerUploadLimits } from '../../jobs/security-config.ts';
import { reserveSequence, type FileRow } from '../../spool/ledger/index.ts';
import { fileOfUpload, getUpload, recordUpload, type UploadRow } from '../../spool/ledger/uploads.ts';
import { isTemporaryName, tokyoDate, tokyoTime } from '../../spool/tree.ts';
import { freeText, html, label, type Html } from '../html.ts';
import { notFound, sendPage, type WebContext } from '../context.ts';
import { requireRole } from './auth.ts';
import { sameToken } from '../sessions.ts';
import { formatTime, STATE_LABELS, TYPE_LABELS } from '../labels.ts';

const RETENTION_LIST_DAYS = 90;

/** A file of this partner, or undefined (another partner's file is "not there"). */
export async function ownFile(web: WebContext, partnerId: string, id: string): Promise<FileRow | undefined> {
  const row = await web.centre.ledger.db('files').where({ id, partner_id: partnerId }).first();
  return row ? ((await web.centre.files.get(row.id)) as FileRow) : undefined;
}

function fileTable(rows: FileRow[], kind: 'in' | 'out'): Html {
  if (!rows.length) return html`<p>${label('ファイルはありません', 'No files')}</p>`;
  return html`<table><thead><tr><th>${label('日時', 'Time')}</th><th>${label('種別', 'Type')}</th><th>${label('ファイル名', 'Name')}</th><th>${label('状態', 'State')}</th><th class="num">${label('件数', 'Records')}</th>${kind === 'in' ? html`<th class="num">${label('エラー', 'Rejected')}</th>` : ''}<th></th></tr></thead><tbody>
${rows.map((f) => html`<tr><td>${formatTime(f.created_at)}</td><td>${f.file_type ?? ''} ${TYPE_LABELS[f.file_type ?? ''] ?? ''}</td><td>${f.name}</td><td>${STATE_LABELS[f.state] ?? f.state}</td><td class="num">${f.record_count ?? ''}</td>${kind === 'in' ? html`<td class="num">${f.rejected_count ?? ''}</td>` : ''}<td><a href="/portal/files/${encodeURIComponent(f.id)}">${label('詳細', 'Details')}</a>${kind === 'out' && f.path && !f.purged_at ? html` <a href="/portal/files/${encodeURIComponent(f.id)}/download">${label('ダウンロード', 'Download')}</a>` : ''}</td></tr>`)}
</tbody></table>`;
}

async function errorCounts(web: WebContext, fileId: string): Promise<{ code: string; count: number }[]> {
  return (await web.centre.ledger.db('file_errors').where({ file_id: fileId }).orderBy('code')).map((r: { code: string; count: number }) => ({ code: r.code, count: Number(r.count) }));
}

/** The validation result of an inbound file and its 91 notice, as far as ingest got. */
async function resultBlock(web: WebContext, partnerId: string, file: FileRow | undefined): Promise<Html> {
  if (!file) return html`<p class="notice" id="status" data-state="waiting">${label('受付待ち: 取り込みを待っています', 'Waiting for ingest')}…</p>`;
  if (file.state === 'received') return html`<p class="notice" id="status" data-state="received">${label('検証中', 'Validating')}…</p>`;
  const errors = await errorCounts(web, file.id);
  const notices = (await web.centre.files.list({ parentId: file.id })).filter((c) => c.file_type === '91' && c.partner_id === partnerId);
  const ok = file.state !== 'rejected';
  return html`<p id="status" data-state="${file.state}" class="${ok ? 'ok' : 'bad'}">${ok ? label('受付済み', 'Accepted') : label('不受理', 'Rejected')}: ${freeText(file.reason)}</p>
<table><tbody><tr><th>${label('レコード件数', 'Records')}</th><td class="num" id="records">${file.record_count ?? 0}</td></tr>
<tr><th>${label('受付件数', 'Accepted')}</th><td class="num" id="accepted">${file.accepted_count ?? 0}</td></tr>
<tr><th>${label('エラー件数', 'Rejected')}</th><td class="num" id="rejected">${file.rejected_count ?? 0}</td></tr>
${errors.map((e) => html`<tr><th>${label('エラーコード', 'Error code')} ${e.code}</th><td class="num">${e.count}</td></tr>`)}</tbody></table>
${notices.map((n) => html`<p>${label('返却通知 (91)', 'Rejection notice')}: <a id="notice91" href="/portal/files/${encodeURIComponent(n.id)}/download">${n.name}</a></p>`)}`;
}

function uploadForm(csrf: string, message?: Html | string): Html {
  return html`${message ? html`<p class="error">${message}</p>` : ''}
<form method="post" action="/portal/upload" enctype="multipart/form-data" class="card">
<input type="hidden" name="_csrf" value="${csrf}">
<label>${label('CSVの場合のファイル種別', 'File type, for CSV')}<br><select name="csvType"><option value="">${label('固定長 (ヘッダーで判別)', 'fixed width (from its header)')}</option>${CSV_FILE_TYPES.map((t) => html`<option value="${t}">${t} ${TYPE_LABELS[t] ?? ''}</option>`)}</select></label>
<label>${label('ファイル', 'File')} (売上 31 / 有効性チェック 41 / ギフト 61)<br><input type="file" name="file" required></label>
<button type="submit">${label('送信', 'Upload')}</button></form>`;
}

class UploadRefused extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** What a landed upload is, handed to the record written before the file is committed. */
interface LandedUpload {
  sha256: string;
  size: number;
  name: string;
  errors?: CsvRowError[];
}
type RecordUpload = (landed: LandedUpload) => Promise<void>;

/** This partner's size limit and the disk's free-space reserve (as on every listener). */
const limitsOf = (web: WebContext, partnerId: string) => partnerUploadLimits(web.centre.config, partnerId);

/** An upload over the size limit or the free-space reserve: 413 or 507, the landing's own message. */
const refusalOf = (err: LandingRefused) => new UploadRefused(err.reason === 'too-large' ? 413 : 507, err.message);

/**
 * Streams the file part into a landing in the partner's inbound folder, hashing as it goes.
 * `record` (the upload row and its audit row) is committed before the file (see Landing.commit).
 */
async function landFixedWidth(web: WebContext, partnerId: string, name: string, stream: NodeJS.ReadableStream & { truncated?: boolean }, record: RecordUpload): Promise<LandedUpload> {
  let landing;
  try {
    landing = await beginLanding(web.centre.spool.inbound(partnerId), name, limitsOf(web, partnerId));
  } catch (err) {
    throw err instanceof LandingRefused ? refusalOf(err) : err;
  }
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(stream, new Writable({
      write(chunk: Buffer, _enc, done) {
        const refusal = landing.admit(size + chunk.length);
        if (refusal) return done(refusal);
        hash.update(chunk);
        size += chunk.length;
        landing.handle.write(chunk).then(() => done(), done);
      },
    }));
    if (stream.truncated) throw new UploadRefused(413, 'file too large');
    if (size === 0) throw new UploadRefused(400, 'empty file');
    const landed = { sha256: hash.digest('hex'), size, name };
    await landing.commit(() => record(landed));
    return landed;
  } catch (err) {
    await landing.abort();
    throw err instanceof LandingRefused ? refusalOf(err) : err;
  }
}

/** A CSV (31/41/61) becomes the fixed-width file the pipeline takes; its row errors are shown at once. */
async function landCsv(web: WebContext, partnerId: string, name: string, fileType: string, stream: NodeJS.ReadableStream & { truncated?: boolean }, record: RecordUpload): Promise<LandedUpload> {
  const { centre } = web;
  const partner = centre.partner(partnerId);
  // Inside the spool (work/, a 0700 dot folder), so the CSV and its fixed-width form are
  // encrypted at rest like every other file holding card numbers.
  const scratch = await mkdtemp(path.join(centre.spool.work, '.csv-'));
  try {
    const csvPath = path.join(scratch, 'upload.csv');
    const csv = await createSpoolFile(csvPath);
    try {
      for await (const chunk of stream) await csv.write(chunk as Buffer);
      await csv.finish();
    } catch (err) {
      await csv.close();
      throw err;
    }
    if (stream.truncated) throw new UploadRefused(413, 'file too large');
    const seq = await reserveSequence(centre.ledger, `csvUpload:${partnerId}`, 1);
    const now = web.now();
    const format = partner.formats[fileType as keyof typeof partner.formats];
    const fixedPath = path.join(scratch, 'fixed.dat');
    const result = await importCsv(csvPath, fileType, {
      out: fixedPath,
      header: { senderCode: partner.code, receiverCode: centre.config.centre.code, createdDate: tokyoDate(now), createdTime: tokyoTime(now), fileSeq: String(Number(seq) % 1_000_000).padStart(6, '0') },
      encoding: format?.encoding,
      framing: format?.framing,
      ownMerchantNos: new Set(partner.merchantNos),
    });
    const { sha256 } = await sha256File(fixedPath);
    const fixedName = `${name.replace(/\.csv$/i, '')}.dat`;
    let landed: LandedUpload | undefined;
    try {
      await landFile(centre.spool.inbound(partnerId), fixedName, (await createSpoolReadStream(fixedPath)) as AsyncIterable<Buffer>, limitsOf(web, partnerId), (size) => record((landed = { sha256, size, name: fixedName, errors: result.errors })));
    } catch (err) {
      throw err instanceof LandingRefused ? refusalOf(err) : err;
    }
    return landed!;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The parts of a multipart request; `onBroken` is called when the merchant's bytes break the form. */
async function* formParts(req: FastifyRequest, onBroken: () => void): AsyncGenerator<Multipart> {
  try {
    for await (const part of req.parts()) {
      if (part.type === 'file') part.file.once('error', onBroken);
      yield part;
    }
  } catch (err) {
    onBroken();
    throw err;
  }
}

export function portalRoutes(app: FastifyInstance, web: WebContext): void {
  const merchant = { preHandler: requireRole('merchant') };
  const partnerOf = (req: FastifyRequest) => req.auth!.partner!;

  app.get('/portal', merchant, async (req, reply) => {
    const partner = partnerOf(req);
    const since = web.now().getTime() - RETENTION_LIST_DAYS * 86_400_000;
    const q = (direction: 'in' | 'out') => web.centre.ledger.db('files').where({ partner_id: partner.id, direction }).where('created_at', '>=', since).orderBy('created_at', 'desc').limit(200);
    const [inbound, outbound] = [(await q('in')) as FileRow[], (await q('out')) as FileRow[]];
    return sendPage(req, reply, label('ファイル一覧', 'Files'), html`<h2>${label('受信ファイル (結果・通知・71)', 'Files for you')}</h2>${fileTable(outbound, 'out')}
<h2>${label('送信したファイル', 'Files you sent')}</h2>${fileTable(inbound, 'in')}`);
  });

  app.get('/portal/upload', merchant, async (req, reply) => sendPage(req, reply, label('ファイル送信', 'Upload a file'), uploadForm(req.auth!.session.csrf)));

  app.post('/portal/upload', merchant, async (req, reply) => {
    const partner = partnerOf(req);
    const csrf = req.auth!.session.csrf;
    let csrfOk = false;
    let csvType = '';
    let landed: LandedUpload | undefined;
    let upload: UploadRow | undefined;
    // The merchant's bytes broke the form itself (busboy's plain Errors: a cut body, a broken part
    // header): a 400 like any other refusal, not a failure of ours.
    let formBroken = false;
    try {
      for await (const part of formParts(req, () => { formBroken = true; })) {
        if (part.type === 'field') {
          if (part.fieldname === '_csrf') csrfOk = sameToken(String(part.value), csrf);
          if (part.fieldname === 'csvType') csvType = String(part.value);
          continue;
        }
        // The token comes before the file in the form, so nothing lands without it.
        if (!csrfOk) throw new UploadRefused(403, 'CSRF token missing or wrong');
        if (landed) throw new UploadRefused(400, 'one file at a time');
        const name = path.basename(part.filename || '');
        assertSafeFileName(name);
        if (isTemporaryName(name)) throw new UnsafeNameError(`unsafe file name ${JSON.stringify(name)}`);
        if (csvType && !CSV_FILE_TYPES.includes(csvType)) throw new UploadRefused(400, `no CSV import for type ${csvType}`);
        if (csvType && !partner.send.includes(csvType as never)) throw new UploadRefused(400, `you may not send ${csvType} files`);
        const target = csvType ? `${name.replace(/\.csv$/i, '')}.dat` : name;
        if (await pathExists(path.join(web.centre.spool.inbound(partner.id), target))) throw new UploadRefused(409, `${target} is waiting in your inbound folder already`);
        // The upload row and its audit row are committed before the file, and before the answer.
        const record: RecordUpload = async (l) => {
          upload = await recordUpload(web.centre.ledger, { partner_id: partner.id, username: req.auth!.user.username, channel: 'web', name: l.name, sha256: l.sha256, size: l.size, detail: l.errors ? JSON.stringify(l.errors.slice(0, 1000)) : null });
          await web.audit(req, 'upload', `${l.name} (${l.size} bytes, sha256 ${l.sha256.slice(0, 16)}) upload ${upload.id}`);
        };
        landed = csvType ? await landCsv(web, partner.id, name, csvType, part.file, record) : await landFixedWidth(web, partner.id, name, part.file, record);
      }
    } catch (err) {
      const status = err instanceof UploadRefused ? err.status : err instanceof UnsafeNameError || formBroken ? 400 : err instanceof AuditWriteFailed ? 503 : 500;
      if (status === 500) web.centre.log.error({ err, partner: partner.id }, 'portal upload failed');
      const message = formBroken && !(err instanceof UploadRefused) ? `the form could not be read (${(err as Error).message})` : (err as Error).message;
      // Best effort: when the audit trail itself is what failed, the merchant still gets the 503.
      await web.audit(req, 'refused', `upload refused: ${message}`).catch((e: Error) => web.centre.log.error({ err: e.message }, 'audit write failed'));
      return sendPage(req, reply, label('ファイル送信', 'Upload a file'), uploadForm(csrf, status === 500 ? 'upload failed' : message), status);
    }
    if (!csrfOk || !landed || !upload) return sendPage(req, reply, label('ファイル送信', 'Upload a file'), uploadForm(csrf, !csrfOk ? 'CSRF token missing or wrong' : 'no file'), !csrfOk ? 403 : 400);
    await web.engine.enqueue({ kind: 'scan', input: { partnerId: partner.id }, jobId: jobId('scan', 'web', partner.id, Date.now()) });
    return reply.redirect(`/portal/uploads/${upload.id}`, 303);
  });

  app.get<{ Params: { id: string } }>('/portal/uploads/:id', merchant, async (req, reply) => {
    const partner = partnerOf(req);
    const upload = await getUpload(web.centre.ledger, partner.id, req.params.id);
    if (!upload) return notFound(req, reply);
    const file = await fileOfUpload(web.centre.ledger, upload);
    const done = file && file.state !== 'received';
    if (!done) reply.header('refresh', '2');
    return sendPage(req, reply, label('送信結果', 'Upload result'), html`<p>${upload.name} (${upload.size} bytes) ${formatTime(upload.uploaded_at)} ${upload.channel === 'mail' ? label('メール受付', 'by mail') : ''}</p>
${csvErrors(upload)}${await resultBlock(web, partner.id, file)}${file ? html`<p><a href="/portal/files/${encodeURIComponent(file.id)}">${label('ファイル詳細', 'File details')}</a></p>` : ''}`);
  });

  app.get<{ Params: { id: string } }>('/portal/files/:id', merchant, async (req, reply) => {
    const partner = partnerOf(req);
    const file = await ownFile(web, partner.id, req.params.id);
    if (!file) return notFound(req, reply);
    const body = file.direction === 'in'
      ? await resultBlock(web, partner.id, file)
      : html`<p>${STATE_LABELS[file.state] ?? file.state}</p>${file.path && !file.purged_at ? html`<p><a id="download" href="/portal/files/${encodeURIComponent(file.id)}/download">${label('ダウンロード', 'Download')}</a></p>` : ''}`;
    return sendPage(req, reply, html`${file.name}`, html`<table><tbody><tr><th>${label('種別', 'Type')}</th><td>${file.file_type ?? ''} ${TYPE_LABELS[file.file_type ?? ''] ?? ''}</td></tr>
<tr><th>${label('受付日時', 'Created')}</th><td>${formatTime(file.created_at)}</td></tr><tr><th>${label('サイズ', 'Size')}</th><td>${file.size ?? ''}</td></tr><tr><th>SHA-256</th><td>${file.sha256 ?? ''}</td></tr></tbody></table>${body}`);
  });

  app.get<{ Params: { id: string } }>('/portal/files/:id/download', merchant, async (req, reply) => sendDownload(web, req, reply, partnerOf(req).id, req.params.id));
}

function csvErrors(upload: UploadRow): Html {
  if (!upload.detail) return html``;
  const errors = JSON.parse(upload.detail) as CsvRowError[];
  if (!errors.length) return html`<p class="ok">${label('CSV変換: エラーなし', 'CSV converted without errors')}</p>`;
  return html`<p class="bad">${label('CSV変換で除外した行', 'CSV rows left out')}: ${errors.length}</p><table><thead><tr><th>${label('行', 'Line')}</th><th>${label('コード', 'Code')}</th><th>${label('項目', 'Field')}</th><th>${label('内容', 'Detail')}</th></tr></thead><tbody>
${errors.slice(0, 100).map((e) => html`<tr><td>${e.line}</td><td>${e.code}</td><td>${e.field}</td><td>${freeText(e.detail)}</td></tr>`)}</tbody></table>`;
}

/** Sends one of the partner's outbound files; a whole download of a ready file is its pickup. */
export async function sendDownload(web: WebContext, req: FastifyRequest, reply: FastifyReply, partnerId: string, id: string): Promise<FastifyReply> {
  const file = await ownFile(web, partnerId, id);
  if (!file || file.direction !== 'out' || !file.path || file.purged_at || !(await pathExists(file.path))) return notFound(req, reply);
  // Decrypted here, as the bytes leave to the partner.
  const size = await spoolFileSize(file.path);
  await web.audit(req, 'download', `${file.name} (${size} bytes) file ${file.id}`, partnerId);
  const stream = await createSpoolReadStream(file.path);
  let sent = 0;
  stream.on('data', (chunk) => (sent += chunk.length));
  reply.raw.once('finish', () => {
    if (sent === size) void recordPickup({ centre: web.centre }, partnerId, file.name, sent).catch((err) => web.centre.log.error({ err, fileId: file.id }, 'recording a portal pickup failed'));
  });
  return reply
    .header('content-type', 'application/octet-stream')
    .header('content-length', size)
    .header('content-disposition', `attachment; filename="${file.name.replace(/[^\x20-\x7e]|"/g, '_')}"`)
    .header('cache-control', 'no-store')
    .send(stream);
}
