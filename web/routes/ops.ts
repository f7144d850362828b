// The operator console (operators only): files by partner and state, one file's history (as
// `tsunagi show`), failed deliveries with a resend button, the day's reconciliation, listener and
// queue health. bull-board is mounted under /ops/queues by the server when the queue is BullMQ.
import { createReadStream } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { FILE_STATES, type FileRow } from '../../spool/ledger/index.ts';
import { resendFile, ResendError } from '../../jobs/resend.ts';
import { addDays, parseYmd } from '../../jobs/jmanager/periods.ts';
import { pathExists } from '../../spool/atomic.ts';
import { tokyoDate } from '../../spool/tree.ts';
import { freeText, html, label, type Html } from '../html.ts';
import { notFound, sendPage, type WebContext } from '../context.ts';
import { requireCsrf, requireRole } from './auth.ts';
import { formatTime, STATE_LABELS, TYPE_LABELS } from '../labels.ts';
import { healthReport } from '../health.ts';

type Query = Record<string, string | undefined>;
const LIMIT = 200;

function filesTable(rows: FileRow[]): Html {
  if (!rows.length) return html`<p>${label('該当なし', 'No files')}</p>`;
  return html`<table id="files"><thead><tr><th>ID</th><th>${label('日時', 'Time')}</th><th>${label('取引先', 'Partner')}</th><th>${label('方向', 'Dir')}</th><th>${label('種別', 'Type')}</th><th>${label('状態', 'State')}</th><th class="num">${label('件数', 'Records')}</th><th>${label('ファイル名', 'Name')}</th><th>${label('理由', 'Reason')}</th></tr></thead><tbody>
${rows.map((f) => html`<tr><td><a href="/ops/files/${encodeURIComponent(f.id)}">${f.id}</a></td><td>${formatTime(f.created_at)}</td><td>${f.partner_id}</td><td>${f.direction}</td><td>${f.file_type ?? ''}</td><td>${STATE_LABELS[f.state] ?? f.state}</td><td class="num">${f.record_count ?? ''}</td><td>${f.name}</td><td>${freeText(f.reason)}</td></tr>`)}</tbody></table>`;
}

function select(name: string, options: string[], current: string | undefined, all: Html): Html {
  return html`<select name="${name}"><option value="">${all}</option>${options.map((o) => html`<option value="${o}"${o === current ? html` selected` : ''}>${o}</option>`)}</select>`;
}

function tokyoDayStartMs(ymd: string): number {
  return parseYmd(ymd) - 9 * 3600_000;
}

export function opsRoutes(app: FastifyInstance, web: WebContext): void {
  const operator = { preHandler: requireRole('operator') };
  const { centre } = web;

  app.get('/ops', operator, async (req, reply) => {
    const q = req.query as Query;
    const db = centre.ledger.db('files').orderBy('created_at', 'desc').limit(LIMIT);
    if (q.partner) db.where('partner_id', q.partner);
    if (q.state && (FILE_STATES as readonly string[]).includes(q.state)) db.where('state', q.state);
    if (q.direction === 'in' || q.direction === 'out') db.where('direction', q.direction);
    if (q.type && /^\d\d$/.test(q.type)) db.where('file_type', q.type);
    if (q.date && /^\d{8}$/.test(q.date)) {
      const from = tokyoDayStartMs(q.date);
      db.where('created_at', '>=', from).where('created_at', '<', from + 86_400_000);
    }
    const rows = (await db) as FileRow[];
    const counts = (await centre.ledger.db('files').select('state').count({ n: '*' }).groupBy('state')) as { state: string; n: number | string }[];
    return sendPage(req, reply, label('ファイル一覧', 'Files'), html`<p>${counts.map((c) => html`<span>${STATE_LABELS[c.state] ?? c.state}: <b>${Number(c.n)}</b></span> · `)}</p>
<form method="get" action="/ops" class="filters">
<label>${label('取引先', 'Partner')}${select('partner', centre.config.partners.map((p) => p.id), q.partner, label('すべて', 'all'))}</label>
<label>${label('状態', 'State')}${select('state', [...FILE_STATES], q.state, label('すべて', 'all'))}</label>
<label>${label('方向', 'Direction')}${select('direction', ['in', 'out'], q.direction, label('すべて', 'all'))}</label>
<label>${label('種別', 'Type')}${select('type', Object.keys(TYPE_LABELS), q.type, label('すべて', 'all'))}</label>
<label>${label('日付', 'Date')}<input name="date" value="${q.date ?? ''}" pattern="[0-9]{8}" size="9" placeholder="YYYYMMDD"></label>
<button type="submit">${label('絞り込み', 'Filter')}</button></form>
${filesTable(rows)}${rows.length === LIMIT ? html`<p>${label(`最新${LIMIT}件`, `latest ${LIMIT} shown`)}</p>` : ''}`);
  });

  app.get<{ Params: { id: string } }>('/ops/files/:id', operator, async (req, reply) => {
    const file = await centre.files.get(req.params.id);
    if (!file) return notFound(req, reply);
    const transitions = await centre.files.history(file.id);
    const deliveries = await centre.ledger.db('deliveries').where({ file_id: file.id }).orderBy('id');
    const children = await centre.files.list({ parentId: file.id });
    const canResend = file.direction === 'out' && (file.state === 'failed' || file.state === 'sent') && !file.purged_at;
    return sendPage(req, reply, html`${file.id}`, html`<table id="file"><tbody>${Object.entries(file).map(([k, v]) => html`<tr><th>${k}</th><td>${k.endsWith('_at') ? formatTime(v as number) : k === 'reason' ? freeText(v) : (v ?? '')}</td></tr>`)}</tbody></table>
${canResend ? resendButton(file.id, req.auth!.session.csrf) : ''}
<h2>${label('状態遷移', 'Transitions')}</h2><table id="transitions"><thead><tr><th>${label('日時', 'At')}</th><th>from</th><th>to</th><th>actor</th><th>${label('理由', 'Reason')}</th></tr></thead><tbody>
${transitions.map((t) => html`<tr><td>${formatTime(t.at)}</td><td>${t.from_state ?? '-'}</td><td>${t.to_state}</td><td>${t.actor}</td><td>${freeText(t.reason)}</td></tr>`)}</tbody></table>
${deliveries.length ? html`<h2>${label('配信', 'Deliveries')}</h2><table id="deliveries"><thead><tr><th>#</th><th>protocol</th><th>remote</th><th>${label('開始', 'Started')}</th><th>outcome</th><th class="num">bytes</th><th>error</th></tr></thead><tbody>
${deliveries.map((d: Record<string, unknown>) => html`<tr><td>${d.attempt}</td><td>${d.protocol}</td><td>${d.remote_name}</td><td>${formatTime(d.started_at as number)}</td><td>${d.outcome}</td><td class="num">${d.bytes}</td><td>${freeText(d.error)}</td></tr>`)}</tbody></table>` : ''}
${children.length ? html`<h2>${label('派生ファイル', 'Derived files')}</h2>${filesTable(children)}` : ''}`);
  });

  app.get('/ops/failed', operator, async (req, reply) => {
    const rows = (await centre.ledger.db('files').where({ direction: 'out', state: 'failed' }).orderBy('updated_at', 'desc').limit(LIMIT)) as FileRow[];
    const csrf = req.auth!.session.csrf;
    const message = (req.query as Query).resent;
    return sendPage(req, reply, label('配信失敗', 'Failed deliveries'), html`${message ? html`<p class="notice" id="resent">${label('再送を依頼しました', 'Resend requested')}: ${message}</p>` : ''}
${rows.length ? html`<table id="failed"><thead><tr><th>ID</th><th>${label('取引先', 'Partner')}</th><th>${label('種別', 'Type')}</th><th>${label('ファイル名', 'Name')}</th><th class="num">${label('試行', 'Attempts')}</th><th>${label('理由', 'Reason')}</th><th></th></tr></thead><tbody>
${rows.map((f) => html`<tr><td><a href="/ops/files/${encodeURIComponent(f.id)}">${f.id}</a></td><td>${f.partner_id}</td><td>${f.file_type ?? ''}</td><td>${f.name}</td><td class="num">${f.attempts}</td><td>${freeText(f.reason)}</td><td>${resendButton(f.id, csrf)}</td></tr>`)}</tbody></table>` : html`<p id="none-failed" class="ok">${label('配信失敗はありません', 'No failed deliveries')}</p>`}`);
  });

  app.post<{ Params: { id: string } }>('/ops/files/:id/resend', { preHandler: [requireRole('operator'), requireCsrf] }, async (req, reply) => {
    const operatorName = req.auth!.user.username;
    try {
      await resendFile(web.engine, req.params.id, `web:${operatorName}`);
    } catch (err) {
      if (!(err instanceof ResendError)) throw err;
      await web.audit(req, 'refused', `resend ${req.params.id}: ${err.message}`, null);
      return sendPage(req, reply, label('再送', 'Resend'), html`<p class="error">${err.message}</p><p><a href="/ops/failed">${label('戻る', 'Back')}</a></p>`, 409);
    }
    await web.audit(req, 'action', `resend ${req.params.id}`, null);
    return reply.redirect(`/ops/failed?resent=${encodeURIComponent(req.params.id)}`, 303);
  });

  app.get('/ops/reconcile', operator, async (req, reply) => {
    const q = req.query as Query;
    const date = q.date && /^\d{8}$/.test(q.date) ? q.date : addDays(tokyoDate(web.now()), -1);
    const run = await centre.ledger.db('reconcile_runs').where({ report_date: date }).first();
    const recent = await centre.ledger.db('reconcile_runs').orderBy('report_date', 'desc').limit(14);
    const counts = run ? (JSON.parse(run.counts) as Record<string, number>) : {};
    return sendPage(req, reply, label('照合レポート', 'Reconciliation'), html`<form method="get" action="/ops/reconcile" class="filters"><label>${label('業務日', 'Business date')}<input name="date" value="${date}" pattern="[0-9]{8}" size="9"></label><button type="submit">${label('表示', 'Show')}</button></form>
${run ? html`<p id="reconcile-summary">${date}: <b>${run.discrepancies}</b> ${label('件の差異', 'discrepancies')} (${formatTime(Number(run.ran_at))}) · <a href="/ops/reconcile/${date}.csv">${label('CSVレポート', 'CSV report')}</a></p>
<table><tbody>${Object.entries(counts).map(([c, n]) => html`<tr><th>${c}</th><td class="num">${n}</td></tr>`)}</tbody></table>` : html`<p>${label('この日の照合はまだありません', 'Not reconciled yet')} (tsunagi reconcile --date ${date})</p>`}
<h2>${label('最近の照合', 'Recent runs')}</h2><table><tbody>${recent.map((r: Record<string, unknown>) => html`<tr><td><a href="/ops/reconcile?date=${r.report_date}">${r.report_date}</a></td><td class="num">${r.discrepancies}</td></tr>`)}</tbody></table>`);
  });

  app.get<{ Params: { date: string } }>('/ops/reconcile/:date.csv', operator, async (req, reply) => {
    if (!/^\d{8}$/.test(req.params.date)) return notFound(req, reply);
    const run = await centre.ledger.db('reconcile_runs').where({ report_date: req.params.date }).first();
    if (!run || !(await pathExists(run.report_path))) return notFound(req, reply);
    await web.audit(req, 'download', `reconciliation report ${req.params.date}`, null);
    return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', `attachment; filename="reconcile-${req.params.date}.csv"`).send(createReadStream(run.report_path));
  });

  app.get('/ops/health', operator, async (req, reply) => {
    const h = await healthReport(web);
    return sendPage(req, reply, label('稼働状況', 'Health'), html`<p id="overall" class="${h.ok ? 'ok' : 'bad'}">${h.ok ? label('正常', 'OK') : label('異常あり', 'Problems')}</p>
<table id="checks"><thead><tr><th>${label('項目', 'Check')}</th><th>${label('状態', 'State')}</th><th>${label('詳細', 'Detail')}</th></tr></thead><tbody>${Object.entries(h.checks).map(([k, c]) => html`<tr><td>${k}</td><td class="${c.ok ? 'ok' : 'bad'}">${c.ok ? 'OK' : 'NG'}</td><td>${c.detail}</td></tr>`)}</tbody></table>
<h2>${label('リスナー', 'Listeners')}</h2><table id="listeners"><thead><tr><th>${label('名前', 'Name')}</th><th>${label('ポート', 'Port')}</th><th class="num">${label('接続数', 'Connections')}</th></tr></thead><tbody>${h.listeners.map((l) => html`<tr><td>${l.name}</td><td>${l.port}</td><td class="num">${l.connections ?? '-'}</td></tr>`)}</tbody></table>
<h2>${label('キュー', 'Queue')} (${web.engine.kind})</h2><table id="queue"><tbody>${Object.entries(h.queue).map(([k, n]) => html`<tr><th>${k}</th><td class="num">${n}</td></tr>`)}</tbody></table>
${web.engine.bullQueues ? html`<p><a href="/ops/queues">bull-board</a></p>` : ''}`);
  });
}

function resendButton(fileId: string, csrf: string): Html {
  return html`<form method="post" action="/ops/files/${encodeURIComponent(fileId)}/resend" class="resend"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" data-file="${fileId}">${label('再送', 'Resend')}</button></form>`;
}
