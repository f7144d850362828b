// Server-rendered pages: a tagged template that escapes every interpolation (only Html values pass
// through as they are), and the one layout every page uses. Labels are Japanese with English beside.
import { redactCardNumbers } from '../formats/index.ts';

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Free text from the ledger (reasons, errors): anything that could be a card number is masked first. */
export function freeText(value: unknown): string {
  return value === null || value === undefined ? '' : redactCardNumbers(String(value));
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(value);
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** A label in Japanese with its English beside it. */
export function label(ja: string, en: string): Html {
  return html`${ja} <span class="en">${en}</span>`;
}

export interface PageUser {
  username: string;
  role: 'merchant' | 'operator';
  partnerName?: string;
  csrf: string;
}

export function layout(title: Html | string, body: Html, user?: PageUser): string {
  const nav = !user
    ? ''
    : user.role === 'operator'
      ? html`<a href="/ops">${label('ファイル', 'Files')}</a><a href="/ops/failed">${label('配信失敗', 'Failed deliveries')}</a><a href="/ops/reconcile">${label('照合', 'Reconciliation')}</a><a href="/ops/health">${label('稼働状況', 'Health')}</a>`
      : html`<a href="/portal">${label('ファイル', 'Files')}</a><a href="/portal/upload">${label('送信', 'Upload')}</a><a href="/portal/jmanager">${label('Jmanager検索照会', 'Jmanager search')}</a>`;
  const who = user
    ? html`<form method="post" action="/logout" class="logout"><input type="hidden" name="_csrf" value="${user.csrf}"><span>${user.partnerName ?? 'operator'} / ${user.username}</span> <button type="submit">${label('ログアウト', 'Log out')}</button></form>`
    : '';
  const titleText = title instanceof Html ? title.text.replace(/<[^>]+>/g, '') : title;
  return `<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(titleText)} - tsunagi</title><link rel="stylesheet" href="/static/app.css"></head>
<body><header><strong>tsunagi Web-JTRANS</strong><nav>${render(nav)}</nav>${render(who)}</header>
<main><h1>${render(title)}</h1>
${body.text}
</main></body></html>`;
}

export const STYLESHEET = `
body{font-family:system-ui,"Hiragino Sans","Noto Sans CJK JP",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{display:flex;gap:1.5em;align-items:center;background:#16325c;color:#fff;padding:.6em 1.2em}
header a{color:#fff;margin-right:1em;text-decoration:none}header nav{flex:1}
header .en{color:#c9d6ea}.logout{margin:0}.logout button{font-size:.85em}
main{padding:1em 1.5em}h1{font-size:1.3em}.en{color:#6b7280;font-size:.85em}
table{border-collapse:collapse;background:#fff;font-size:.9em}th,td{border:1px solid #d5d9e0;padding:.25em .6em;text-align:left}
th{background:#e8edf5}td.num,th.num{text-align:right}tr.total td{font-weight:bold;background:#f0f3f8}
form.filters{display:flex;flex-wrap:wrap;gap:.8em;align-items:end;margin-bottom:1em}form.filters label{display:flex;flex-direction:column;font-size:.85em}
.ok{color:#146c2e}.bad{color:#b42318}.notice{background:#fff7e0;border:1px solid #e9c46a;padding:.5em 1em}.error{background:#fdecea;border:1px solid #b42318;padding:.5em 1em}
.card{background:#fff;border:1px solid #d5d9e0;padding:1em;max-width:28em}.card label{display:block;margin:.6em 0}
`;
