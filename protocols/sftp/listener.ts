// Our SFTP server for partners (ssh2). Public-key authentication with a verified signature
// (passwords only for accounts that allow them), a per-partner session limit, an idle timeout,
// only the sftp subsystem, and every login, upload and download in the ledger's audit trail.
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { AuthContext, Connection } from 'ssh2';
import { createAuditTrail } from '../audit-trail.ts';
import type { ListenerContext, ProtocolListener } from '../contract.ts';
import { readSecret } from '../secrets.ts';
import { AdmissionGate, type Ticket } from '../admission.ts';
import { acceptableSignature, findKey, fingerprintOf, parseAuthorizedKey, passwordMatches, signatureVerifies, type AuthorizedKey } from './authorized-keys.ts';
import { LoginFailures, sleep } from '../login-failures.ts';
import { normaliseAddress } from '../admission.ts';
import type { PartnerSftpAccount, SftpListenerSettings } from './config.ts';
import { SftpSession } from './session.ts';

// OpenSSH clients prefer chacha20-poly1305, which ssh2 runs far slower than AES-GCM (done by
// OpenSSL with AES-NI): offer AES only, GCM first. Both are what OpenSSH itself recommends.
// Channels one connection may open: each SFTP channel has its own session bounds, so this bounds
// what one connection can hold. Clients use one.
const MAX_CHANNELS_PER_CONNECTION = 4;
/** Failed passwords or signatures one connection may try before we hang up. */
const FAILURES_PER_CONNECTION = 3;

const FAST_CIPHERS: ssh2.CipherAlgorithm[] = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'];

interface Account {
  partnerId: string;
  user: string;
  keys: AuthorizedKey[];
  password?: Buffer;
}

function loadAccounts(accounts: PartnerSftpAccount[]): Map<string, Account> {
  const byUser = new Map<string, Account>();
  for (const a of accounts) {
    const user = a.user ?? a.partnerId;
    if (byUser.has(user)) throw new Error(`sftp: two partners use the login '${user}'`);
    byUser.set(user, {
      partnerId: a.partnerId,
      user,
      keys: a.publicKeys.map((line, i) => {
        try {
          return parseAuthorizedKey(line);
        } catch (err) {
          throw new Error(`sftp account ${a.partnerId}: publicKeys[${i}]: ${(err as Error).message}`);
        }
      }),
      password: a.allowPassword && a.password ? readSecret(a.password, `sftp account ${a.partnerId} password`) : undefined,
    });
  }
  return byUser;
}

export function createSftpListener(settings: SftpListenerSettings, accounts: PartnerSftpAccount[], ctx: ListenerContext): ProtocolListener {
  const byUser = loadAccounts(accounts);
  const log = ctx.log.child({ protocol: 'sftp' });
  const sessionsByPartner = new Map<string, number>();
  const connections = new Set<Connection>();
  const endings = new Set<Promise<void>>();
  const idleMs = settings.idleTimeoutSeconds * 1000;
  let server: InstanceType<typeof ssh2.Server> | undefined;
  let boundPort = 0;
  const gate = new AdmissionGate(settings, log, 'sftp');
  let tickets = new WeakMap<Socket, Ticket>();

  const failures = new LoginFailures(settings, log, 'sftp');
  // Every account is offered the same methods, so the answer does not tell whether a name exists.
  const offeredMethods: Array<'publickey' | 'password'> = [...byUser.values()].some((a) => a.password) ? ['publickey', 'password'] : ['publickey'];
  const dummyPassword = Buffer.alloc(32, 0x20);
  const trail = createAuditTrail(ctx.ledger, log, 'sftp');
  const audit = trail.note;

  const onConnection = (client: Connection, info: { ip: string; port: number }) => {
    const remote = `${info.ip}:${info.port}`;
    let account: Account | undefined;
    let counted = false;
    let refusedQueries = 0;
    let sessions: SftpSession[] = [];
    connections.add(client);
    const ticket = tickets.get((client as unknown as { _sock: Socket })._sock);

    const idle = setTimeout(() => {
      log.info({ remote, partnerId: account?.partnerId }, 'sftp idle timeout');
      if (counted) audit(account!.partnerId, 'session_end', remote, 'idle timeout');
      client.end();
    }, idleMs);
    // Every request re-arms the idle timer (refresh is cheap: it runs for each 32 KiB write).
    const touch = () => void idle.refresh();

    const address = normaliseAddress(info.ip);
    let failedHere = 0;
    const refuse = (auth: AuthContext, partnerId: string | null, detail: string, counts = true) => {
      audit(partnerId, 'login_refused', remote, `${auth.username}: ${detail}`);
      if (counts) {
        failures.failed(auth.username, address, partnerId);
        failedHere++;
      }
      auth.reject(offeredMethods);
      if (failedHere >= FAILURES_PER_CONNECTION) client.end(); // a guesser needs a new connection
    };
    const admit = (auth: AuthContext, acc: Account, how: string) => {
      const active = sessionsByPartner.get(acc.partnerId) ?? 0;
      if (active >= settings.maxSessionsPerPartner) {
        return refuse(auth, acc.partnerId, `too many sessions (${active} of ${settings.maxSessionsPerPartner})`, false);
      }
      failures.succeeded(auth.username);
      sessionsByPartner.set(acc.partnerId, active + 1);
      counted = true;
      account = acc;
      ticket?.loggedIn();
      audit(acc.partnerId, 'login_ok', remote, how);
      auth.accept();
    };

    client.on('authentication', (auth) => {
      touch();
      void authenticate(auth).catch((err: Error) => {
        log.error({ remote, err: err.message }, 'sftp authentication failed');
        auth.reject();
      });
    });
    const authenticate = async (auth: AuthContext) => {
      const acc = byUser.get(auth.username);
      if (failedHere >= FAILURES_PER_CONNECTION) return auth.reject();
      if (auth.method === 'none') return auth.reject(offeredMethods);
      if (auth.method === 'publickey') {
        if (!acceptableSignature(auth.key.algo, auth.hashAlgo)) {
          return refuse(auth, acc?.partnerId ?? null, `key or signature algorithm refused (${auth.key.algo}${auth.hashAlgo ? `/${auth.hashAlgo}` : ''})`, Boolean(auth.signature));
        }
        const key = acc ? findKey(acc.keys, auth.key.data) : undefined;
        if (!key) {
          // Clients try each key they hold; only a connection that never gets in is audited.
          refusedQueries++;
          return auth.reject(offeredMethods);
        }
        if (!auth.signature) return auth.accept(); // "would this key do?": yes, now prove it
        const verdict = failures.check(auth.username, address);
        if (verdict.delayMs) await sleep(verdict.delayMs);
        if (verdict.locked) return refuse(auth, acc!.partnerId, 'locked out after repeated failures');
        if (!signatureVerifies(key, auth)) return refuse(auth, acc!.partnerId, `bad signature for key ${key.fingerprint}`);
        return admit(auth, acc!, `publickey ${key.fingerprint}`);
      }
      if (auth.method === 'password') {
        const verdict = failures.check(auth.username, address);
        if (verdict.delayMs) await sleep(verdict.delayMs);
        // The same comparison whether or not the name exists or allows passwords.
        const matches = passwordMatches(acc?.password ?? dummyPassword, auth.password);
        if (verdict.locked) return refuse(auth, acc?.partnerId ?? null, 'locked out after repeated failures');
        if (!acc) return refuse(auth, null, 'unknown user (password)');
        if (!acc.password) return refuse(auth, acc.partnerId, 'password not allowed for this account');
        if (!matches) return refuse(auth, acc.partnerId, 'wrong password');
        return admit(auth, acc, 'password');
      }
      auth.reject(offeredMethods);
    };

    client.on('ready', () => {
      touch();
      const acc = account!;
      let channels = 0;
      client.on('session', (acceptSession, rejectSession) => {
        if (++channels > MAX_CHANNELS_PER_CONNECTION) {
          log.warn({ remote, partnerId: acc.partnerId }, 'sftp channel refused: too many on one connection');
          return rejectSession();
        }
        const session = acceptSession();
        session.on('close', () => channels--);
        session.on('sftp', (acceptSftp) => {
          const sftp = acceptSftp();
          sessions.push(
            new SftpSession(sftp, {
              partnerId: acc.partnerId,
              dirs: { inbound: ctx.spool.inbound(acc.partnerId), outbound: ctx.spool.outbound(acc.partnerId) },
              log,
              touch,
              landingLimits: ctx.limitsFor?.(acc.partnerId),
              audit: (event, detail) => audit(acc.partnerId, event, remote, detail),
              recordUpload: (detail) => trail.durable(acc.partnerId, 'upload', remote, detail),
              landed: (finalPath) => void Promise.resolve(ctx.onLanded?.(acc.partnerId, finalPath)).catch((err: Error) => log.error({ err: err.message }, 'onLanded failed')),
              pickedUp: (name, bytes) =>
                void Promise.resolve(ctx.onPickedUp?.(acc.partnerId, name, bytes)).catch((err: Error) => log.error({ err: err.message }, 'onPickedUp failed')),
            }),
          );
        });
        // No shell, exec, pty or forwarding: without handlers ssh2 refuses those requests.
      });
    });

    client.on('error', (err) => log.debug({ remote, err: err.message }, 'sftp connection error'));
    client.on('close', () => {
      clearTimeout(idle);
      connections.delete(client);
      const ending = Promise.allSettled(sessions.map((s) => s.end())).then(() => undefined);
      endings.add(ending);
      void ending.finally(() => endings.delete(ending));
      sessions = [];
      if (counted) {
        sessionsByPartner.set(account!.partnerId, (sessionsByPartner.get(account!.partnerId) ?? 1) - 1);
        audit(account!.partnerId, 'session_end', remote, 'closed');
      } else if (refusedQueries > 0) {
        audit(null, 'login_refused', remote, `no accepted key among ${refusedQueries} offered`);
      }
    });
  };

  return {
    connections: () => connections.size,
    get port() {
      return boundPort;
    },
    async start() {
      const hostKey = readSecret(settings.hostKey, 'sftp listener host key');
      server = new ssh2.Server({ hostKeys: [hostKey], ident: 'tsunagi', algorithms: { cipher: FAST_CIPHERS } }, onConnection);
      // ssh2 announces a connection only once the client sent its version line: gate the TCP accept.
      tickets = gate.guard((server as unknown as { _srv: NetServer })._srv);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(settings.port, settings.host, () => {
          server!.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err: Error) => log.error({ err: err.message }, 'sftp server error'));
      boundPort = (server.address() as AddressInfo).port;
      log.info({ host: settings.host, port: boundPort, hostKey: hostKeyFingerprint(hostKey) }, 'sftp listening');
    },
    async stop() {
      if (!server) return;
      const closing = new Promise<void>((resolve) => server!.close(() => resolve()));
      for (const c of connections) c.end();
      await closing;
      server = undefined;
      // 'close' of each connection (which audits session_end) can trail the server's close.
      const until = Date.now() + 5000;
      while (connections.size && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      // Let sessions abort their uploads and the audit trail catch up before we report stopped.
      while (endings.size) await Promise.allSettled([...endings]);
      await trail.settled();
    },
  };
}

function hostKeyFingerprint(privateKey: Buffer): string {
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`sftp listener host key: ${parsed.message}`);
  return fingerprintOf((Array.isArray(parsed) ? parsed[0]! : parsed).getPublicSSH());
}
