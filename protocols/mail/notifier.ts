// Notice mails (Web-JTRANS): when a merchant's result, list, 91 notice or 71 file is ready, or a
// file it sent has been validated, it gets a mail with a link to the portal through the configured
// smarthost. Never the file itself, and never a card number: card data stays off mail.
// Each (file, kind) is claimed in mail_notices before sending, so a second process or a restart
// does not mail it again; a failed send gives the claim back for the next round.
import { readFileSync } from 'node:fs';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { Ledger } from '../../spool/ledger/index.ts';
import { isUniqueViolation } from '../../spool/ledger/index.ts';
import { readSecretString } from '../secrets.ts';
import type { MailSettings } from './config.ts';

export interface NoticeTarget {
  partnerId: string;
  partnerName: string;
  to: string[];
  fileTypes: string[];
}

export interface MailNotifierOptions {
  ledger: Ledger;
  settings: MailSettings;
  targets: NoticeTarget[];
  /** The portal's base URL for the link; without one the mail names the file only. */
  portalUrl?: string;
  log: Logger;
  /** Files older than this are never announced (a first start on an old ledger mails nothing old). */
  maxAgeMs?: number;
  transport?: Transporter;
}

const TYPE_NAMES: Record<string, string> = {
  '33': '売上結果 (sales result)',
  '42': '有効性チェック結果 (validity check result)',
  '51': '無効カード 定例 (invalid card list)',
  '52': '無効カード 緊急 (emergency invalid card list)',
  '71': 'Jmanager 集計ファイル (Jmanager aggregate file)',
  '91': '返却通知 (rejection notice)',
};

interface Candidate {
  id: string;
  partner_id: string;
  direction: string;
  file_type: string | null;
  name: string;
  state: string;
  record_count: number | null;
  accepted_count: number | null;
  rejected_count: number | null;
}

export function makeTransport(settings: MailSettings): Transporter {
  const s = settings.smarthost;
  return nodemailer.createTransport({
    host: s.host,
    port: s.port,
    secure: s.secure,
    requireTLS: !s.secure && s.requireTLS,
    auth: s.user ? { user: s.user, pass: s.password ? readSecretString(s.password, 'smarthost password') : '' } : undefined,
    tls: { minVersion: 'TLSv1.2', ...(s.ca ? { ca: readFileSync(s.ca) } : {}) },
  });
}

export function noticeMail(file: Candidate, target: NoticeTarget, portalUrl: string | undefined): { subject: string; text: string } {
  const link = portalUrl ? `${portalUrl}/portal/files/${encodeURIComponent(file.id)}` : 'the portal';
  if (file.direction === 'in') {
    const ok = file.state !== 'rejected';
    return {
      subject: `[tsunagi] ${ok ? '受付' : '不受理'}: ${file.name} (${ok ? 'accepted' : 'rejected'})`,
      text: [
        `${target.partnerName} 様`,
        '',
        `送信いただいたファイル ${file.name} の検証が終わりました: ${ok ? '受付' : '不受理'}。`,
        `レコード ${file.record_count ?? 0} 件、受付 ${file.accepted_count ?? 0} 件、エラー ${file.rejected_count ?? 0} 件。`,
        `The file ${file.name} you sent has been validated: ${ok ? 'accepted' : 'rejected'} (${file.record_count ?? 0} records, ${file.accepted_count ?? 0} accepted, ${file.rejected_count ?? 0} rejected).`,
        '',
        `結果はポータルでご確認ください / See the result in the portal: ${link}`,
        '',
        'このメールにファイルは添付されません。 No file is attached to this mail.',
      ].join('\n'),
    };
  }
  const what = TYPE_NAMES[file.file_type ?? ''] ?? `file type ${file.file_type}`;
  return {
    subject: `[tsunagi] ${what}: ${file.name}`,
    text: [
      `${target.partnerName} 様`,
      '',
      `${what} の準備ができました: ${file.name} (${file.record_count ?? 0} 件)。`,
      `A new ${what} is ready for you: ${file.name} (${file.record_count ?? 0} records).`,
      '',
      `ポータルからダウンロードしてください / Download it from the portal: ${link}`,
      '',
      'このメールにファイルは添付されません。 No file is attached to this mail.',
    ].join('\n'),
  };
}

export class MailNotifier {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly transport: Transporter;
  private readonly byPartner: Map<string, NoticeTarget>;

  constructor(private readonly o: MailNotifierOptions) {
    this.transport = o.transport ?? makeTransport(o.settings);
    this.byPartner = new Map(o.targets.map((t) => [t.partnerId, t]));
  }

  /** Sends what is due now; returns how many mails went out. */
  async runOnce(now = Date.now()): Promise<number> {
    if (this.byPartner.size === 0) return 0;
    const { db } = this.o.ledger;
    const since = now - (this.o.maxAgeMs ?? 2 * 86_400_000);
    const rows = (await db('files as f')
      .leftJoin('mail_notices as n', function () {
        this.on('n.file_id', '=', 'f.id').andOn('n.kind', '=', db.raw('?', ['ready']));
      })
      .whereNull('n.file_id')
      .whereIn('f.partner_id', [...this.byPartner.keys()])
      .where('f.created_at', '>=', since)
      .where((q) => q.where((o) => o.where('f.direction', 'out').whereIn('f.state', ['ready', 'sending', 'sent', 'acknowledged'])).orWhere((i) => i.where('f.direction', 'in').whereIn('f.state', ['accepted', 'routed', 'rejected'])))
      .orderBy('f.created_at')
      .limit(500)
      .select('f.id', 'f.partner_id', 'f.direction', 'f.file_type', 'f.name', 'f.state', 'f.record_count', 'f.accepted_count', 'f.rejected_count')) as Candidate[];
    let sent = 0;
    for (const file of rows) {
      const target = this.byPartner.get(file.partner_id)!;
      if (file.direction === 'out' && !target.fileTypes.includes(file.file_type ?? '')) continue;
      // Accepted files move on to routed within moments; wait for that so the mail tells the end state.
      if (file.direction === 'in' && file.state === 'accepted') continue;
      try {
        await db('mail_notices').insert({ file_id: file.id, kind: 'ready', partner_id: file.partner_id, sent_at: null });
      } catch (err) {
        if (isUniqueViolation(err)) continue; // another process has it
        throw err;
      }
      const mail = noticeMail(file, target, this.o.portalUrl);
      try {
        await this.transport.sendMail({ from: this.o.settings.from, to: target.to, subject: mail.subject, text: mail.text });
        await db('mail_notices').where({ file_id: file.id, kind: 'ready' }).update({ sent_at: Date.now() });
        this.o.log.info({ fileId: file.id, partner: file.partner_id, to: target.to.length }, 'notice mail sent');
        sent++;
      } catch (err) {
        await db('mail_notices').where({ file_id: file.id, kind: 'ready' }).delete();
        this.o.log.warn({ fileId: file.id, partner: file.partner_id, err: (err as Error).message }, 'notice mail failed; will try again');
        break; // the smarthost is down: try the rest next round
      }
    }
    return sent;
  }

  start(): void {
    const tick = () => {
      this.running = this.runOnce()
        .catch((err) => this.o.log.error({ err }, 'notice round failed'))
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, this.o.settings.pollSeconds * 1000);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    clearTimeout(t);
    await this.running;
    this.transport.close();
  }
}
