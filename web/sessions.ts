// Portal sessions in the ledger (so that a restart or a second process keeps them): the cookie holds
// a random token, the table its sha256, with the session's CSRF token and whether the second
// factor was given.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Ledger } from '../spool/ledger/index.ts';

export interface Session {
  id: string;
  username: string;
  csrf: string;
  second_factor_ok: boolean;
  expires_at: number;
}

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

export class SessionStore {
  constructor(
    private readonly ledger: Ledger,
    private readonly lifetimeMs: number,
  ) {}

  /** Returns the cookie value; the token itself is never stored. */
  async create(username: string, secondFactorOk: boolean, now = Date.now()): Promise<string> {
    const token = randomToken();
    await this.ledger.db('web_sessions').insert({ id: hashToken(token), username, csrf: randomToken(), second_factor_ok: secondFactorOk, created_at: now, expires_at: now + this.lifetimeMs });
    // Expired sessions go on every login, so the table stays small.
    await this.ledger.db('web_sessions').where('expires_at', '<', now).delete();
    return token;
  }

  async get(token: string | undefined, now = Date.now()): Promise<Session | undefined> {
    if (!token || token.length > 100) return undefined;
    const row = await this.ledger.db('web_sessions').where({ id: hashToken(token) }).first();
    if (!row || Number(row.expires_at) < now) return undefined;
    return { ...row, second_factor_ok: Boolean(row.second_factor_ok), expires_at: Number(row.expires_at) };
  }

  /** Sliding expiry, written at most once a minute. */
  async touch(session: Session, now = Date.now()): Promise<void> {
    if (session.expires_at - now > this.lifetimeMs - 60_000) return;
    await this.ledger.db('web_sessions').where({ id: session.id }).update({ expires_at: now + this.lifetimeMs });
  }

  /** After the second factor: a new token (no session fixation across the step). */
  async promote(session: Session, now = Date.now()): Promise<string> {
    await this.ledger.db('web_sessions').where({ id: session.id }).delete();
    return this.create(session.username, true, now);
  }

  async end(token: string | undefined): Promise<void> {
    if (token) await this.ledger.db('web_sessions').where({ id: hashToken(token) }).delete();
  }
}
