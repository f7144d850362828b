// Login (password, then TOTP where required), logout, and the CSRF and role guards every other
// route uses. Every login, refused or not, is an audit row.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hashPassword, verifyPassword } from '../auth/password.ts';
import { verifyTotp } from '../auth/totp.ts';
import { html, label } from '../html.ts';
import { PRELOGIN_COOKIE, SESSION_COOKIE, sendPage, type WebContext } from '../context.ts';
import { randomToken, sameToken } from '../sessions.ts';
import { totpRequired } from '../users.ts';
import { LoginFailures, sleep } from '../../protocols/login-failures.ts';
import { normaliseAddress } from '../../protocols/admission.ts';

type Body = Record<string, string | undefined>;

export function cookieOptions(web: WebContext, maxAgeSeconds?: number) {
  return { path: '/', httpOnly: true, secure: web.secure, sameSite: 'strict' as const, ...(maxAgeSeconds ? { maxAge: maxAgeSeconds } : {}) };
}

/** onRequest: finds the session behind the cookie (if any) and the merchant it belongs to. */
export function sessionHook(web: WebContext) {
  return async (req: FastifyRequest) => {
    const token = req.cookies[SESSION_COOKIE];
    if (!token) return;
    const session = await web.sessions.get(token);
    if (!session) return;
    const user = await web.users.get(session.username);
    if (!user || user.disabled) return;
    const partner = user.partner_id ? web.centre.config.partners.find((p) => p.id === user.partner_id) : undefined;
    if (user.role === 'merchant' && !partner) return; // its partner left the config
    req.auth = { user, session, partner };
    await web.sessions.touch(session);
  };
}

/** preHandler for a role's pages: a full session (second factor done) of that role, else the login page. */
export function requireRole(role: 'merchant' | 'operator') {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const a = req.auth;
    if (!a || !a.session.second_factor_ok) return reply.redirect(`/login?next=${encodeURIComponent(req.url)}`, 303);
    if (a.user.role !== role) return reply.code(403).type('text/plain; charset=utf-8').send('forbidden');
  };
}

/** preHandler for form posts: the session's CSRF token must come back in the form. */
export async function requireCsrf(req: FastifyRequest, reply: FastifyReply) {
  const token = (req.body as Body | undefined)?._csrf;
  if (!req.auth || !sameToken(token, req.auth.session.csrf)) return reply.code(403).type('text/plain; charset=utf-8').send('CSRF token missing or wrong');
}

function safeNext(next: string | undefined, role: string): string {
  if (next && /^\/(portal|ops)(\/|$|\?)/.test(next) && next.startsWith(role === 'operator' ? '/ops' : '/portal')) return next;
  return role === 'operator' ? '/ops' : '/portal';
}

function loginPage(csrf: string, next: string, message?: string) {
  return html`${message ? html`<p class="error">${message}</p>` : ''}
<form method="post" action="/login" class="card">
<input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="next" value="${next}">
<label>${label('ユーザーID', 'User')}<br><input name="username" autocomplete="username" required></label>
<label>${label('パスワード', 'Password')}<br><input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">${label('ログイン', 'Log in')}</button></form>`;
}

function totpPage(csrf: string, next: string, message?: string) {
  return html`${message ? html`<p class="error">${message}</p>` : ''}
<form method="post" action="/login/totp" class="card">
<input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="next" value="${next}">
<label>${label('確認コード (6桁)', 'Authenticator code')}<br><input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required autofocus></label>
<button type="submit">${label('確認', 'Verify')}</button></form>`;
}

/** Checked against for unknown users, so that a refusal takes as long whether the user exists or not. */
let dummyHash: Promise<string> | undefined;

const REFUSED = 'ユーザーIDまたはパスワードが違います。 (Wrong user or password.)';

export function authRoutes(app: FastifyInstance, web: WebContext): void {
  // The user row keeps the account's lock (it survives a restart; `tsunagi users` shows and clears
  // it); LoginFailures adds what every listener has: the growing delay, the count per address,
  // and the login-lockout alert.
  const limits = { maxFailures: web.settings.maxLoginFailures, minutes: web.settings.lockoutMinutes };
  const failures = new LoginFailures(web.settings, web.centre.log, 'web');
  const addressOf = (req: FastifyRequest) => normaliseAddress(req.ip);
  const lifetimeSeconds = web.settings.sessionMinutes * 60;

  const showLogin = (req: FastifyRequest, reply: FastifyReply, message?: string, status = 200) => {
    // Login CSRF: a random token in a cookie and in the form (double submit), before any session exists.
    const csrf = randomToken();
    reply.setCookie(PRELOGIN_COOKIE, csrf, cookieOptions(web, 600));
    const next = (req.query as Body).next ?? (req.body as Body | undefined)?.next ?? '';
    return sendPage(req, reply, label('ログイン', 'Log in'), loginPage(csrf, next, message), status);
  };

  app.get('/', async (req, reply) => {
    if (req.auth?.session.second_factor_ok) return reply.redirect(req.auth.user.role === 'operator' ? '/ops' : '/portal', 303);
    return reply.redirect('/login', 303);
  });

  app.get('/login', async (req, reply) => showLogin(req, reply));

  app.post('/login', async (req, reply) => {
    const body = (req.body ?? {}) as Body;
    if (!sameToken(body._csrf, req.cookies[PRELOGIN_COOKIE])) return showLogin(req, reply, 'もう一度お試しください。 (The form expired; try again.)', 403);
    const username = String(body.username ?? '').slice(0, 64);
    const verdict = failures.check(username, addressOf(req));
    if (verdict.delayMs) await sleep(verdict.delayMs);
    const user = await web.users.get(username);
    const now = Date.now();
    const refuse = async (why: string, message = REFUSED, counts = true) => {
      await web.audit(req, 'login_refused', `${username}: ${why}`, user?.partner_id ?? null);
      if (counts) failures.failed(username, addressOf(req), user?.partner_id ?? null);
      return showLogin(req, reply, message, 401);
    };
    const LOCKED = 'ロックされています。しばらくしてからお試しください。 (Locked after repeated failures; try later.)';
    if (!user) {
      dummyHash ??= hashPassword('not a password of anyone');
      await verifyPassword(String(body.password ?? ''), await dummyHash);
      return refuse('no such user');
    }
    if (user.disabled) return refuse('account disabled');
    if (user.locked_until && user.locked_until > now) return refuse('account locked', LOCKED, false);
    if (verdict.locked) return refuse('locked out after repeated failures (this name or address)', LOCKED, false);
    if (!(await verifyPassword(String(body.password ?? ''), user.password_hash))) {
      const locked = await web.users.recordFailure(username, limits, now);
      return refuse(locked ? `wrong password; locked for ${limits.minutes} minutes` : 'wrong password');
    }
    failures.succeeded(username);
    const needsTotp = totpRequired(user, web.centre.config);
    if (needsTotp && !user.totp_secret) return refuse('TOTP required but not enrolled (tsunagi users reset --totp)', 'この利用者には確認コードの登録が必要です。 (A second factor must be enrolled first.)');
    const token = await web.sessions.create(username, !needsTotp);
    reply.setCookie(SESSION_COOKIE, token, cookieOptions(web, lifetimeSeconds));
    reply.clearCookie(PRELOGIN_COOKIE, { path: '/' });
    const next = safeNext(body.next, user.role);
    if (needsTotp) {
      await web.audit(req, 'action', `${username}: password ok, waiting for TOTP`, user.partner_id);
      return reply.redirect(`/login/totp?next=${encodeURIComponent(next)}`, 303);
    }
    await web.users.recordSuccess(username, null, now);
    await web.audit(req, 'login_ok', `${username}: password`, user.partner_id);
    return reply.redirect(next, 303);
  });

  const pendingSecondFactor = (req: FastifyRequest) => (req.auth && !req.auth.session.second_factor_ok ? req.auth : undefined);

  app.get('/login/totp', async (req, reply) => {
    const a = pendingSecondFactor(req);
    if (!a) return reply.redirect('/login', 303);
    return sendPage(req, reply, label('確認コード', 'Second factor'), totpPage(a.session.csrf, (req.query as Body).next ?? ''));
  });

  app.post('/login/totp', async (req, reply) => {
    const a = pendingSecondFactor(req);
    if (!a) return reply.redirect('/login', 303);
    const body = (req.body ?? {}) as Body;
    if (!sameToken(body._csrf, a.session.csrf)) return reply.code(403).type('text/plain; charset=utf-8').send('CSRF token missing or wrong');
    const { user } = a;
    const now = Date.now();
    if (user.locked_until && user.locked_until > now) {
      await web.audit(req, 'login_refused', `${user.username}: account locked (TOTP step)`);
      await web.sessions.end(req.cookies[SESSION_COOKIE]);
      return reply.redirect('/login', 303);
    }
    const step = user.totp_secret ? verifyTotp(user.totp_secret, String(body.code ?? '').trim(), now, user.totp_last_step) : null;
    if (step === null) {
      const locked = await web.users.recordFailure(user.username, limits, now);
      failures.failed(user.username, addressOf(req), user.partner_id);
      await web.audit(req, 'login_refused', `${user.username}: wrong or reused TOTP code${locked ? `; locked for ${limits.minutes} minutes` : ''}`);
      if (locked) {
        await web.sessions.end(req.cookies[SESSION_COOKIE]);
        return reply.redirect('/login', 303);
      }
      return sendPage(req, reply, label('確認コード', 'Second factor'), totpPage(a.session.csrf, body.next ?? '', 'コードが違います。 (Wrong code.)'), 401);
    }
    await web.users.recordSuccess(user.username, step, now);
    const token = await web.sessions.promote(a.session);
    reply.setCookie(SESSION_COOKIE, token, cookieOptions(web, lifetimeSeconds));
    await web.audit(req, 'login_ok', `${user.username}: password + TOTP`);
    return reply.redirect(safeNext(body.next, user.role), 303);
  });

  app.post('/logout', { preHandler: requireCsrf }, async (req, reply) => {
    await web.audit(req, 'session_end', `${req.auth!.user.username}: logout`);
    await web.sessions.end(req.cookies[SESSION_COOKIE]);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect('/login', 303);
  });
}
