// Portal accounts in the ledger: a merchant's users belong to its partner id; operators belong to
// none and always need TOTP. `tsunagi users add|disable|reset` and the login page use this.
import type { Ledger } from '../spool/ledger/index.ts';
import type { TsunagiConfig } from '../jobs/config.ts';
import { generatePassword, hashPassword } from './auth/password.ts';
import { generateTotpSecret } from './auth/totp.ts';

export type Role = 'merchant' | 'operator';

export interface WebUser {
  username: string;
  partner_id: string | null;
  role: Role;
  password_hash: string;
  totp_secret: string | null;
  totp_last_step: number | null;
  disabled: boolean;
  failed_logins: number;
  locked_until: number | null;
  last_login_at: number | null;
}

export class UserError extends Error {}

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

function normalise(row: Record<string, unknown> | undefined): WebUser | undefined {
  if (!row) return undefined;
  for (const k of ['totp_last_step', 'locked_until', 'last_login_at', 'failed_logins']) if (typeof row[k] === 'string') row[k] = Number(row[k]);
  row.disabled = Boolean(row.disabled);
  return row as unknown as WebUser;
}

/** Whether a user must give a TOTP code: operators always, a merchant's users when its config says so or they enrolled. */
export function totpRequired(user: WebUser, config: TsunagiConfig): boolean {
  if (user.role === 'operator' || user.totp_secret) return true;
  const partner = config.partners.find((p) => p.id === user.partner_id);
  return partner?.web?.totp === 'required';
}

export interface NewAccount {
  username: string;
  password: string;
  totpSecret: string | null;
}

export class UsersRepository {
  constructor(private readonly ledger: Ledger) {}

  async get(username: string): Promise<WebUser | undefined> {
    return normalise(await this.ledger.db('web_users').where({ username }).first());
  }

  async list(partnerId?: string): Promise<WebUser[]> {
    const q = this.ledger.db('web_users').orderBy('username');
    if (partnerId) q.where({ partner_id: partnerId });
    return (await q).map((r: Record<string, unknown>) => normalise(r)!);
  }

  /** Adds an account with a generated password (and TOTP secret when wanted); returns them once. */
  async add(config: TsunagiConfig, o: { username: string; partnerId?: string; operator?: boolean; totp?: boolean; password?: string }): Promise<NewAccount> {
    if (!USERNAME.test(o.username)) throw new UserError(`user name '${o.username}': letters, digits, . _ @ -, at most 64`);
    const role: Role = o.operator ? 'operator' : 'merchant';
    if (role === 'merchant') {
      const partner = config.partners.find((p) => p.id === o.partnerId);
      if (!partner) throw new UserError(`--partner '${o.partnerId ?? ''}': no partner with that id in ${config.file}`);
      if (partner.role !== 'merchant') throw new UserError(`partner '${partner.id}' is a ${partner.role}; portal users belong to merchants`);
    } else if (o.partnerId) throw new UserError('an operator belongs to no partner');
    if (await this.get(o.username)) throw new UserError(`user '${o.username}' exists already (use reset)`);
    const password = o.password ?? generatePassword();
    const partnerTotp = config.partners.find((p) => p.id === o.partnerId)?.web?.totp === 'required';
    const totpSecret = role === 'operator' || o.totp || partnerTotp ? generateTotpSecret() : null;
    const now = Date.now();
    await this.ledger.db('web_users').insert({
      username: o.username, partner_id: role === 'merchant' ? o.partnerId : null, role, password_hash: await hashPassword(password),
      totp_secret: totpSecret, totp_last_step: null, disabled: false, failed_logins: 0, locked_until: null, last_login_at: null, created_at: now, updated_at: now,
    });
    return { username: o.username, password, totpSecret };
  }

  async setDisabled(username: string, disabled: boolean): Promise<void> {
    const n = await this.ledger.db('web_users').where({ username }).update({ disabled, updated_at: Date.now() });
    if (n !== 1) throw new UserError(`no user '${username}'`);
    if (disabled) await this.ledger.db('web_sessions').where({ username }).delete();
  }

  /** A new password (and a new TOTP secret when asked); unlocks the account and ends its sessions. */
  async reset(username: string, o: { totp?: boolean; password?: string } = {}): Promise<NewAccount> {
    const user = await this.get(username);
    if (!user) throw new UserError(`no user '${username}'`);
    const password = o.password ?? generatePassword();
    const totpSecret = o.totp || user.role === 'operator' ? generateTotpSecret() : user.totp_secret;
    await this.ledger.db('web_users').where({ username }).update({
      password_hash: await hashPassword(password), totp_secret: totpSecret, totp_last_step: o.totp || user.role === 'operator' ? null : user.totp_last_step,
      failed_logins: 0, locked_until: null, disabled: false, updated_at: Date.now(),
    });
    await this.ledger.db('web_sessions').where({ username }).delete();
    return { username, password, totpSecret: totpSecret !== user.totp_secret ? totpSecret : null };
  }

  /** A failed password or code: counts it and locks the account at the limit. Returns whether it is locked now. */
  async recordFailure(username: string, limits: { maxFailures: number; minutes: number }, now = Date.now()): Promise<boolean> {
    const user = await this.get(username);
    if (!user) return false;
    const failed = user.failed_logins + 1;
    const lock = failed >= limits.maxFailures;
    await this.ledger.db('web_users').where({ username }).update({ failed_logins: lock ? 0 : failed, locked_until: lock ? now + limits.minutes * 60_000 : user.locked_until, updated_at: now });
    return lock;
  }

  async recordSuccess(username: string, totpStep: number | null, now = Date.now()): Promise<void> {
    const changes: Record<string, unknown> = { failed_logins: 0, locked_until: null, last_login_at: now, updated_at: now };
    if (totpStep !== null) changes.totp_last_step = totpStep;
    await this.ledger.db('web_users').where({ username }).update(changes);
  }
}
