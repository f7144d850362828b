// Jmanager Web検索照会: a head office's aggregates for a date range within the last 90 days, by
// store, terminal and card company; daily, per-store or full detail with totals; the detail as CSV
// (UTF-8 with BOM, for Excel in Japan) and its 71 files themselves.
import type { FastifyInstance } from 'fastify';
import type { AggregateFilter, AggregateRow } from '../../jobs/jmanager/aggregates.ts';
import { JmanagerSnapshots, type Snapshot } from '../jmanager-snapshot.ts';
import { addDays, parseYmd } from '../../jobs/jmanager/periods.ts';
import { AGG_SUM_COLUMNS } from '../../jobs/terminal/rows.ts';
import { tokyoDate } from '../../spool/tree.ts';
import type { FileRow } from '../../spool/ledger/index.ts';
import { html, label, type Html } from '../html.ts';
import { sendPage, type WebContext } from '../context.ts';
import { requireRole } from './auth.ts';
import { formatTime } from '../labels.ts';

export const SEARCH_DAYS = 90;
const PAGE_ROWS = 100;

type Query = Record<string, string | undefined>;
type View = 'daily' | 'store' | 'detail';

export interface Search {
  filter: AggregateFilter;
  view: View;
  page: number;
}

const SUM_LABELS: Record<(typeof AGG_SUM_COLUMNS)[number], [string, string]> = {
  sale_count: ['売上件数', 'Sales'],
  sale_amount: ['売上金額', 'Sales amount'],
  void_count: ['取消件数', 'Voids'],
  void_amount: ['取消金額', 'Void amount'],
  return_count: ['返品件数', 'Returns'],
  return_amount: ['返品金額', 'Return amount'],
};

const KEY_LABELS: Record<string, [string, string]> = {
  business_date: ['利用日', 'Date'],
  store_code: ['店舗', 'Store'],
  merchant_no: ['加盟店番号', 'Merchant no.'],
  terminal_id: ['端末', 'Terminal'],
  card_company_code: ['カード会社', 'Card company'],
  payment_kind: ['支払区分', 'Kind'],
  payment_method: ['支払方法', 'Method'],
};

const VIEW_KEYS: Record<View, string[]> = {
  daily: ['business_date'],
  store: ['store_code'],
  detail: ['business_date', 'store_code', 'merchant_no', 'terminal_id', 'card_company_code', 'payment_kind', 'payment_method'],
};

const CODE = /^[0-9A-Za-z-]{1,13}$/;

/** Reads and checks the search form; throws a message for the page on a bad value. */
export function parseSearch(q: Query, merchantNos: readonly string[], today: string): Search {
  const from = q.from || addDays(today, -6);
  const to = q.to || today;
  for (const [name, d] of [['from', from], ['to', to]] as const) {
    if (!/^\d{8}$/.test(d)) throw new Error(`${name}: YYYYMMDD`);
    try {
      parseYmd(d);
    } catch {
      throw new Error(`${name}: not a date`);
    }
  }
  const earliest = addDays(today, -(SEARCH_DAYS - 1));
  if (from > to) throw new Error('開始日が終了日より後です (from is after to)');
  if (from < earliest) throw new Error(`照会できるのは過去${SEARCH_DAYS}日分です (only the last ${SEARCH_DAYS} days: from ${earliest})`);
  if (to > today) throw new Error(`終了日は今日まで (to is after today ${today})`);
  const optional = (name: string) => {
    const v = (q[name] ?? '').trim();
    if (!v) return undefined;
    if (!CODE.test(v)) throw new Error(`${name}: letters and digits only`);
    return v;
  };
  const view = (['daily', 'store', 'detail'] as const).find((v) => v === q.view) ?? 'daily';
  const page = Math.max(1, Math.min(100_000, Number.parseInt(q.page ?? '1', 10) || 1));
  return { filter: { merchantNos, from, to, store: optional('store'), terminal: optional('terminal'), cardCompany: optional('cardCompany') }, view, page };
}

export interface SearchResult {
  rows: Record<string, unknown>[];
  totals: Record<string, number>;
  groups: number;
}

/** One page of the chosen view and the totals over the whole filter, from the head office's snapshot. */
export function runSearch(snapshot: Snapshot, s: Search): SearchResult {
  const selected = snapshot.select(s.filter);
  const by = s.view === 'daily' ? 'business_date' : s.view === 'store' ? 'store_code' : null;
  const { groups, totals } = snapshot.group(selected, by);
  const page = groups.slice((s.page - 1) * PAGE_ROWS, s.page * PAGE_ROWS);
  const rows = by ? (page as Record<string, unknown>[]) : (page as number[]).map((i) => snapshot.row(i) as unknown as Record<string, unknown>);
  return { rows, totals, groups: groups.length };
}

const yen = (n: unknown) => Number(n).toLocaleString('ja-JP');

function resultTable(s: Search, r: SearchResult): Html {
  const keys = VIEW_KEYS[s.view];
  if (!r.groups) return html`<p id="no-rows">${label('該当するデータはありません', 'No aggregates in this range')}</p>`;
  const head = html`<tr>${keys.map((k) => html`<th>${label(...KEY_LABELS[k]!)}</th>`)}${AGG_SUM_COLUMNS.map((c) => html`<th class="num">${label(...SUM_LABELS[c])}</th>`)}</tr>`;
  const totalRow = html`<tr class="total" id="totals"><td colspan="${keys.length}">${label('合計', 'Total')}</td>${AGG_SUM_COLUMNS.map((c) => html`<td class="num" data-col="${c}">${yen(r.totals[c])}</td>`)}</tr>`;
  return html`<table id="results"><thead>${head}</thead><tbody>
${r.rows.map((row) => html`<tr>${keys.map((k) => html`<td>${row[k]}</td>`)}${AGG_SUM_COLUMNS.map((c) => html`<td class="num">${yen(row[c])}</td>`)}</tr>`)}
${totalRow}</tbody></table>`;
}

function pager(query: Query, s: Search, r: SearchResult): Html {
  const pages = Math.ceil(r.groups / PAGE_ROWS);
  if (pages <= 1) return html``;
  const link = (p: number) => `/portal/jmanager?${new URLSearchParams({ ...clean(query), page: String(p) })}`;
  return html`<p>${label('ページ', 'Page')} ${s.page} / ${pages} ${s.page > 1 ? html`<a href="${link(s.page - 1)}">${label('前へ', 'Previous')}</a>` : ''} ${s.page < pages ? html`<a href="${link(s.page + 1)}">${label('次へ', 'Next')}</a>` : ''}</p>`;
}

function clean(q: Query): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['from', 'to', 'store', 'terminal', 'cardCompany', 'view']) if (q[k]) out[k] = String(q[k]);
  return out;
}

function form(q: Query, s: Search | undefined, today: string): Html {
  const v = (k: string, d = '') => q[k] ?? d;
  const view = s?.view ?? 'daily';
  return html`<form method="get" action="/portal/jmanager" class="filters">
<label>${label('開始日', 'From')}<input name="from" value="${v('from', s?.filter.from)}" pattern="[0-9]{8}" size="9" required></label>
<label>${label('終了日', 'To')}<input name="to" value="${v('to', s?.filter.to)}" pattern="[0-9]{8}" size="9" required></label>
<label>${label('店舗', 'Store')}<input name="store" value="${v('store')}" size="10"></label>
<label>${label('端末', 'Terminal')}<input name="terminal" value="${v('terminal')}" size="13"></label>
<label>${label('カード会社', 'Card company')}<input name="cardCompany" value="${v('cardCompany')}" size="4"></label>
<label>${label('表示', 'View')}<select name="view">${(['daily', 'store', 'detail'] as const).map((x) => html`<option value="${x}"${x === view ? html` selected` : ''}>${{ daily: '日別 daily', store: '店舗別 by store', detail: '明細 detail' }[x]}</option>`)}</select></label>
<button type="submit" id="search">${label('検索', 'Search')}</button>
<span class="en">${label(`過去${SEARCH_DAYS}日 (${addDays(today, -(SEARCH_DAYS - 1))}〜${today})`, 'last 90 days')}</span></form>`;
}

async function seventyOneFiles(web: WebContext, partnerId: string, s: Search): Promise<FileRow[]> {
  // 71 names carry the period in the ledger id (P71<cycle><from><to>.<partner>); keep those that overlap.
  const rows = (await web.centre.ledger.db('files').where({ partner_id: partnerId, direction: 'out', file_type: '71' }).whereNull('purged_at').orderBy('created_at', 'desc').limit(500)) as FileRow[];
  return rows.filter((f) => {
    const m = /^P71[DFHM](\d{8})(\d{8})\./.exec(f.id);
    return !m || (m[1]! <= s.filter.to && m[2]! >= s.filter.from);
  });
}

const CSV_COLUMNS: (keyof AggregateRow)[] = ['business_date', 'store_code', 'merchant_no', 'terminal_id', 'card_company_code', 'payment_kind', 'payment_method', ...AGG_SUM_COLUMNS];

/** How often the cached snapshots are checked against the ledger: a cheap check (two index lookups) when nothing changed. */
const SNAPSHOT_REFRESH_MS = 3000;

export function jmanagerRoutes(app: FastifyInstance, web: WebContext): void {
  const merchant = { preHandler: requireRole('merchant') };
  const today = () => tokyoDate(web.now());
  const snapshots = new JmanagerSnapshots(web.centre.ledger);
  /** The head office's whole searchable window: any search within 90 days is a slice of it. */
  const snapshotOf = (partnerId: string, merchantNos: readonly string[]) => snapshots.get(partnerId, merchantNos, addDays(today(), -(SEARCH_DAYS - 1)), today());
  // Warm at start, then keep the cached snapshots current in the background, so that a search
  // (the first one, or the first after an 81 load) finds its snapshot loaded. The warming runs
  // after the listener is up and never holds it back; errors only cost a slower first search.
  const windowNow = () => ({ from: addDays(today(), -(SEARCH_DAYS - 1)), to: today() });
  let refreshing: NodeJS.Timeout | undefined;
  let busy = false;
  app.addHook('onReady', async () => {
    const headOffices = web.centre.config.partners.filter((p) => p.role === 'merchant' && p.jmanagerCycles.length > 0 && p.merchantNos.length > 0);
    const { from, to } = windowNow();
    busy = true;
    void snapshots.warm(headOffices, from, to).catch((err: unknown) => web.centre.log.warn({ err }, 'jmanager snapshots: warming failed')).finally(() => (busy = false));
    refreshing = setInterval(() => {
      if (busy) return;
      busy = true;
      void snapshots.refresh(windowNow).catch((err: unknown) => web.centre.log.warn({ err }, 'jmanager snapshots: refresh failed')).finally(() => (busy = false));
    }, SNAPSHOT_REFRESH_MS);
    refreshing.unref();
  });
  app.addHook('onClose', async () => clearInterval(refreshing));
  // Opening the portal warms the head office's snapshot, so its first search is quick too.
  app.addHook('onResponse', async (req) => {
    const partner = req.auth?.partner;
    if (partner && req.routeOptions.url === '/portal' && partner.jmanagerCycles.length) void snapshotOf(partner.id, partner.merchantNos).catch(() => undefined);
  });

  app.get('/portal/jmanager', merchant, async (req, reply) => {
    const partner = req.auth!.partner!;
    const q = req.query as Query;
    let s: Search | undefined;
    let problem: string | undefined;
    try {
      s = parseSearch(q, partner.merchantNos, today());
    } catch (err) {
      problem = (err as Error).message;
    }
    const title = label('Jmanager 検索照会', 'Jmanager search');
    if (!s) return sendPage(req, reply, title, html`${form(q, s, today())}<p class="error">${problem}</p>`, 400);
    const window = windowNow();
    const { snapshot, stale } = await snapshots.getForPage(partner.id, partner.merchantNos, window.from, window.to);
    if (stale) reply.raw.once('finish', () => void snapshotOf(partner.id, partner.merchantNos).catch(() => undefined));
    const result = runSearch(snapshot, s);
    if (Object.keys(clean(q)).length) await web.audit(req, 'action', `jmanager search ${s.filter.from}-${s.filter.to} view ${s.view}: ${result.groups} rows`);
    const csvLink = `/portal/jmanager.csv?${new URLSearchParams(clean({ ...q, from: s.filter.from, to: s.filter.to }))}`;
    const files = await seventyOneFiles(web, partner.id, s);
    return sendPage(req, reply, title, html`${form(q, s, today())}
<p>${s.filter.from}〜${s.filter.to}: ${result.groups} ${label('行', 'rows')} · <a id="csv" href="${csvLink}">${label('CSVダウンロード (明細)', 'CSV download (detail)')}</a></p>
${stale ? html`<p class="notice" id="stale">${label(`最新の集計を読み込み中です。表示は ${formatTime(snapshot.loadedAt)} 時点の集計です`, `Loading the latest aggregates; these figures are as of ${formatTime(snapshot.loadedAt)}`)}</p>` : ''}
${resultTable(s, result)}${pager(q, s, result)}
<h2>${label('Jmanager 集計ファイル (71)', '71 files')}</h2>
${files.length ? html`<table><thead><tr><th>${label('作成日時', 'Created')}</th><th>${label('ファイル名', 'Name')}</th><th class="num">${label('件数', 'Rows')}</th><th></th></tr></thead><tbody>${files.map((f) => html`<tr><td>${formatTime(f.created_at)}</td><td>${f.name}</td><td class="num">${f.record_count ?? ''}</td><td><a class="file71" href="/portal/files/${encodeURIComponent(f.id)}/download">${label('ダウンロード', 'Download')}</a></td></tr>`)}</tbody></table>` : html`<p>${label('この期間の71ファイルはありません', 'No 71 files for this range')}</p>`}`);
  });

  app.get('/portal/jmanager.csv', merchant, async (req, reply) => {
    const partner = req.auth!.partner!;
    let s: Search;
    try {
      s = parseSearch(req.query as Query, partner.merchantNos, today());
    } catch (err) {
      return reply.code(400).type('text/plain; charset=utf-8').send((err as Error).message);
    }
    const lines: string[] = ['\ufeff' + CSV_COLUMNS.map((c) => (KEY_LABELS[c] ?? SUM_LABELS[c as keyof typeof SUM_LABELS])![0]).join(',')];
    const snapshot = await snapshotOf(partner.id, partner.merchantNos);
    const selected = snapshot.select(s.filter);
    for (const i of selected) {
      const r = snapshot.row(i);
      lines.push(CSV_COLUMNS.map((c) => String(r[c])).join(','));
    }
    const count = selected.length;
    await web.audit(req, 'download', `jmanager CSV ${s.filter.from}-${s.filter.to}: ${count} rows`);
    return reply
      .header('content-type', 'text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="jmanager_${partner.id}_${s.filter.from}_${s.filter.to}.csv"`)
      .header('cache-control', 'no-store')
      .send(lines.join('\r\n') + '\r\n');
  });
}

