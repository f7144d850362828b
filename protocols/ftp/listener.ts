// Our FTP server for partners (ftp-srv): explicit FTPS (AUTH TLS) required unless the partner's
// account is marked plain, passive mode only within the configured port range, the partner's
// virtual root (see landing-fs.ts), a per-partner session limit, and an audit trail.
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import ftpSrv from 'ftp-srv';
import type { FtpConnection } from 'ftp-srv';
import { isTemporaryName } from '../../spool/tree.ts';
import { createAuditTrail } from '../audit-trail.ts';
import type { ListenerContext, ProtocolListener } from '../contract.ts';
import { readSecret } from '../secrets.ts';
import { AdmissionGate, type Ticket } from '../admission.ts';
import { passwordMatches } from '../sftp/authorized-keys.ts';
import type { FtpListenerSettings, PartnerFtpAccount } from './config.ts';
import { FtpFsError, LandingFileSystem } from './landing-fs.ts';
import { setUserCheck } from './ftp-srv-fixes.ts';
import { LoginFailures, sleep } from '../login-failures.ts';
import { normaliseAddress } from '../admission.ts';

// Active mode makes us connect out to an address the client names (FTP bounce): passive only.
// No folders, deletions, appends or SITE commands in a partner's tree.
const REFUSED_COMMANDS = ['PORT', 'EPRT', 'APPE', 'STOU', 'MKD', 'RMD', 'DELE', 'SITE', 'ALLO'];
/** Wrong passwords one control connection may send before we close it. */
const FAILURES_PER_CONNECTION = 3;
const TLS_REQUIRED = 'TLS required: use AUTH TLS before USER';

interface Account {
  partnerId: string;
  password: Buffer;
  plain: boolean;
}

export function createFtpListener(settings: FtpListenerSettings, accounts: PartnerFtpAccount[], ctx: ListenerContext): ProtocolListener {
  const log = ctx.log.child({ protocol: 'ftp' });
  const byUser = new Map<string, Account>();
  for (const a of accounts) {
    const user = a.user ?? a.partnerId;
    if (byUser.has(user)) throw new Error(`ftp: two partners use the login '${user}'`);
    byUser.set(user, { partnerId: a.partnerId, password: readSecret(a.password, `ftp account ${a.partnerId} password`), plain: a.plain });
  }
  if (!settings.tls && [...byUser.values()].some((a) => !a.plain)) {
    throw new Error('ftp listener: tls (cert and key) is required unless every account is plain');
  }
  const idleMs = settings.idleTimeoutSeconds * 1000;
  const sessionsByPartner = new Map<string, number>();
  const partnerOf = new Map<FtpConnection, string>();
  let server: InstanceType<typeof ftpSrv.FtpSrv> | undefined;
  let boundPort = 0;
  const gate = new AdmissionGate(settings, log, 'ftp');
  let tickets = new WeakMap<Socket, Ticket>();
  const ticketOf = new WeakMap<FtpConnection, Ticket>();

  const failures = new LoginFailures(settings, log, 'ftp');
  const failuresOn = new WeakMap<FtpConnection, number>();
  // An unknown name gets what a known one would: the same password comparison and answers.
  const dummyPassword = Buffer.alloc(32, 0x20);
  const trail = createAuditTrail(ctx.ledger, log, 'ftp');
  const audit = trail.note;
  const remoteOf = (c: FtpConnection) => {
    const s = (c as unknown as { commandSocket?: { remoteAddress?: string; remotePort?: number } }).commandSocket;
    return `${s?.remoteAddress ?? '?'}:${s?.remotePort ?? '?'}`;
  };
  const safely = (what: string, fn: () => void | Promise<void>) =>
    void Promise.resolve()
      .then(fn)
      .catch((err: Error) => log.error({ err: err.message }, `${what} failed`));

  type LoginData = { connection: FtpConnection; username: string; password: string };
  const onLogin = ({ connection, username, password }: LoginData, resolve: (r: { fs: LandingFileSystem }) => void, reject: (e: Error) => void) => {
    void checkLogin({ connection, username, password }, resolve, reject).catch((err: Error) => reject(err));
  };
  const checkLogin = async ({ connection, username, password }: LoginData, resolve: (r: { fs: LandingFileSystem }) => void, reject: (e: Error) => void) => {
    const remote = remoteOf(connection);
    const address = normaliseAddress(remote.slice(0, remote.lastIndexOf(':')));
    const acc = byUser.get(username);
    const verdict = failures.check(username, address);
    if (verdict.delayMs) await sleep(verdict.delayMs);
    const refuse = (partnerId: string | null, detail: string) => {
      audit(partnerId, 'login_refused', remote, `${username}: ${detail}`);
      failures.failed(username, address, partnerId);
      const n = (failuresOn.get(connection) ?? 0) + 1;
      failuresOn.set(connection, n);
      reject(new FtpFsError('Authentication failed', 530));
      // Let the 530 go out, then hang up: a guesser needs a new connection (and a new grace time).
      if (n >= FAILURES_PER_CONNECTION) setTimeout(() => void (connection as unknown as { close(): Promise<unknown> }).close(), 50).unref();
    };
    const matches = passwordMatches(acc?.password ?? dummyPassword, password);
    if (verdict.locked) return refuse(acc?.partnerId ?? null, 'locked out after repeated failures');
    if (!acc) return refuse(null, 'unknown user');
    if (!acc.plain && !(connection as unknown as { secure: boolean }).secure) return refuse(acc.partnerId, 'plain FTP refused (explicit FTPS required)');
    if (!matches) return refuse(acc.partnerId, 'wrong password');
    failures.succeeded(username);
    const active = sessionsByPartner.get(acc.partnerId) ?? 0;
    if (active >= settings.maxSessionsPerPartner) return refuse(acc.partnerId, `too many sessions (${active} of ${settings.maxSessionsPerPartner})`);
    sessionsByPartner.set(acc.partnerId, active + 1);
    partnerOf.set(connection, acc.partnerId);
    ticketOf.get(connection)?.loggedIn();
    const partnerId = acc.partnerId;
    audit(partnerId, 'login_ok', remote, (connection as unknown as { secure: boolean }).secure ? 'ftps' : 'plain ftp');

    let download: { name: string; size: number } | undefined;
    let lastTouch = 0;
    const fs = new LandingFileSystem(connection, {
      dirs: { inbound: ctx.spool.inbound(partnerId), outbound: ctx.spool.outbound(partnerId) },
      landingLimits: ctx.limitsFor?.(partnerId),
      refused: (detail) => audit(partnerId, 'refused', remote, detail),
      recordUpload: (name, bytes) => trail.durable(partnerId, 'upload', remote, `${name} ${bytes} bytes`),
      uploaded: (name, finalPath, bytes) => {
        log.info({ partnerId, fileName: name, bytes }, 'ftp upload landed');
        // A client's own temporary (NAME.part, renamed later) is not a delivery yet.
        if (!isTemporaryName(name)) safely('onLanded', () => ctx.onLanded?.(partnerId, finalPath));
      },
      uploadAborted: (name, why) => {
        audit(partnerId, 'refused', remote, `upload of ${name} aborted: ${why}`);
        log.warn({ partnerId, fileName: name, why }, 'ftp upload aborted');
      },
      downloadStarted: (name, size) => void (download = { name, size }),
      touch: () => {
        const now = Date.now();
        if (now - lastTouch < 1000) return;
        lastTouch = now;
        (connection as unknown as { commandSocket: { setTimeout(ms: number): void } }).commandSocket.setTimeout(idleMs);
      },
    });
    connection.on('RETR', (err: Error | null) => {
      const d = download;
      download = undefined;
      if (!d) return;
      if (err) return audit(partnerId, 'download', remote, `${d.name} failed: ${err.message}`);
      audit(partnerId, 'download', remote, `${d.name} ${d.size} bytes`);
      safely('onPickedUp', () => ctx.onPickedUp?.(partnerId, d.name, d.size));
    });
    resolve({ fs });
  };

  const onDisconnect = ({ connection }: { connection: FtpConnection }) => {
    const partnerId = partnerOf.get(connection);
    if (!partnerId) return;
    partnerOf.delete(connection);
    sessionsByPartner.set(partnerId, (sessionsByPartner.get(partnerId) ?? 1) - 1);
    audit(partnerId, 'session_end', remoteOf(connection), 'closed');
  };

  return {
    connections: () => server ? Object.keys((server as unknown as { connections: object }).connections ?? {}).length : 0,
    get port() {
      return boundPort;
    },
    async start() {
      const tls = settings.tls
        ? { cert: readSecret(settings.tls.cert, 'ftp listener certificate'), key: readSecret(settings.tls.key, 'ftp listener TLS key'), minVersion: 'TLSv1.2' as const }
        : false;
      const signalListeners = (['SIGTERM', 'SIGINT', 'SIGQUIT'] as const).map((s) => [s, process.listeners(s)] as const);
      server = new ftpSrv.FtpSrv({
        url: `ftp://${settings.host}:${settings.port}`,
        pasv_url: settings.pasvHost ?? settings.host,
        pasv_min: settings.pasvMin,
        pasv_max: settings.pasvMax,
        tls: tls as never,
        anonymous: false,
        greeting: ['tsunagi'],
        blacklist: REFUSED_COMMANDS,
        // Not ftp-srv's own timeout option: it also arms a timer of that length on every disconnect,
        // which holds the process at shutdown. The idle timeout is set on each socket below.
        timeout: 0,
        // ftp-srv logs every refused command as an error with a stack: keep it for debugging only.
        log: log.child({ component: 'ftp-srv' }, { level: log.isLevelEnabled('debug') ? log.level : 'fatal' }) as never,
      });
      // ftp-srv installs signal handlers that exit the process; the service owns its shutdown.
      for (const [sig, before] of signalListeners) {
        for (const l of process.listeners(sig)) if (!before.includes(l)) process.off(sig, l);
      }
      tickets = gate.guard((server as unknown as { server: NetServer }).server);
      server.on('login', onLogin as never);
      // On a connection without TLS, only a plain account's name gets a 331: every other name,
      // known or not, is refused at USER with the same answer, before any password crosses in clear.
      setUserCheck(server, (connection, username) => {
        if ((connection as { secure?: boolean }).secure) return undefined;
        const acc = byUser.get(username);
        if (acc?.plain) return undefined;
        audit(acc?.partnerId ?? null, 'login_refused', remoteOf(connection as FtpConnection), `${username}: plain FTP refused at USER (explicit FTPS required)`);
        return TLS_REQUIRED;
      });
      server.on('disconnect', onDisconnect as never);
      // ftp-srv closes a connection whose command socket times out.
      server.on('connect' as never, (({ connection }: { connection: FtpConnection & { commandSocket: Socket } }) => {
        const ticket = tickets.get(connection.commandSocket);
        if (ticket) ticketOf.set(connection, ticket);
        connection.commandSocket.setTimeout(idleMs);
      }) as never);
      server.on('client-error', ({ error }: { error: Error }) => log.debug({ err: error.message }, 'ftp client error'));
      await server.listen();
      boundPort = ((server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
      log.info({ host: settings.host, port: boundPort, pasv: [settings.pasvMin, settings.pasvMax], tls: Boolean(tls) }, 'ftp listening');
    },
    async stop() {
      if (!server) return;
      await server.close();
      server = undefined;
      // 'disconnect' of each connection (which audits session_end) can trail the close.
      const until = Date.now() + 5000;
      while (partnerOf.size && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      await trail.settled();
    },
  };
}
