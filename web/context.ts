// What every web route gets: the running centre and engine, the stores, and the audit helper.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type {} from '@fastify/cookie';
import type { Centre } from '../jobs/centre.ts';
import type { Engine } from '../jobs/engine.ts';
import type { PartnerConfig } from '../jobs/config.ts';
import type { WebListenerSettings } from '../jobs/web-config.ts';
import type { ProtocolListener } from '../protocols/contract.ts';
import { recordAudit, type AuditEvent } from '../spool/ledger/index.ts';
import type { Session, SessionStore } from './sessions.ts';
import type { UsersRepository, WebUser } from './users.ts';
import { html, layout, type Html, type PageUser } from './html.ts';

export interface NamedListener {
  name: string;
  listener: ProtocolListener;
}

export interface Auth {
  user: WebUser;
  session: Session;
  /** The merchant the user belongs to (merchant users only). */
  partner?: PartnerConfig;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth?: Auth;
  }
}

export interface WebContext {
  centre: Centre;
  engine: Engine;
  settings: WebListenerSettings;
  users: UsersRepository;
  sessions: SessionStore;
  listeners: () => NamedListener[];
  secure: boolean;
  now(): Date;
  audit(req: FastifyRequest, event: AuditEvent, detail: string, partnerId?: string | null): Promise<void>;
}

export const SESSION_COOKIE = 'tsunagi_session';
export const PRELOGIN_COOKIE = 'tsunagi_login';

export function makeAudit(centre: Centre): WebContext['audit'] {
  return async (req, event, detail, partnerId) => {
    const who = req.auth ? `${req.auth.user.username}: ` : '';
    await recordAudit(centre.ledger, { partnerId: partnerId !== undefined ? partnerId : (req.auth?.user.partner_id ?? null), protocol: 'web', event, remote: req.ip, detail: `${who}${detail}` });
  };
}

export function pageUser(req: FastifyRequest): PageUser | undefined {
  const a = req.auth;
  if (!a || !a.session.second_factor_ok) return undefined;
  return { username: a.user.username, role: a.user.role, partnerName: a.partner?.name, csrf: a.session.csrf };
}

export function sendPage(req: FastifyRequest, reply: FastifyReply, title: Html | string, body: Html, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(layout(title, body, pageUser(req)));
}

/** The same answer for "not there" and "not yours": a merchant learns nothing by trying ids. */
export function notFound(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendPage(req, reply, '見つかりません (Not found)', html`<p>このページはありません。 <span class="en">There is no such page.</span></p>`, 404);
}
