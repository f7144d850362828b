// The 全銀TCP/IP secondary: a plain TCP listener and/or an implicit-TLS (1.2+) listener on its own
// port, each connection served by secondary.ts. Secrets are read at start, so a missing password
// or key fails the start and not the first login.
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import type { ListenerContext, ProtocolListener } from '../contract.ts';
import { readSecret, readSecretString } from '../secrets.ts';
import { zenginAccountSchema, zenginListenerSchema, type ZenginAccountInput, type ZenginListenerInput } from './config.ts';
import { codeBytes, passwordBytes } from './messages.ts';
import { RestartStore, partialsRoot } from './restart-store.ts';
import { serveConnection, type ResolvedAccount } from './secondary.ts';
import { createAuditTrail } from '../audit-trail.ts';
import { AdmissionGate, type Ticket } from '../admission.ts';
import { LoginFailures } from '../login-failures.ts';

export interface ZenginListener extends ProtocolListener {
  /** The bound TLS port, once started (0 when there is no TLS listener). */
  readonly tlsPort: number;
}

/** `accounts` is keyed by partner id. */
export function createZenginListener(settingsInput: ZenginListenerInput, accountsInput: Record<string, ZenginAccountInput>, ctx: ListenerContext): ZenginListener {
  const settings = zenginListenerSchema.parse(settingsInput);
  const accounts = Object.entries(accountsInput).map(([partnerId, a]) => ({ partnerId, account: zenginAccountSchema.parse(a) }));
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const sessions = new Set<Promise<void>>();
  let plainPort = 0;
  let tlsPort = 0;
  const gate = new AdmissionGate(settings, ctx.log, 'zengin');
  const tickets: Array<WeakMap<net.Socket, Ticket>> = [];

  const serve = (socket: net.Socket, deps: Parameters<typeof serveConnection>[1]) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    // A TLS socket's ticket is its TCP socket's (the gate runs before the handshake).
    const raw = (socket as net.Socket & { _parent?: net.Socket })._parent ?? socket;
    const ticket = tickets.map((t) => t.get(raw)).find(Boolean);
    const done = serveConnection(socket, { ...deps, onLoggedIn: () => ticket?.loggedIn() })
      .catch((err) => ctx.log.error({ err }, 'zengin session crashed'))
      .finally(() => {
        sockets.delete(socket);
        sessions.delete(done);
      });
    sessions.add(done);
  };

  const listen = (server: net.Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, settings.host, () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });

  return {
    connections: () => sockets.size,
    get port() {
      return plainPort || tlsPort;
    },
    get tlsPort() {
      return tlsPort;
    },
    async start() {
      const byCode = new Map<string, ResolvedAccount>();
      for (const { partnerId, account } of accounts) {
        const code = codeBytes(account.partnerCode);
        if (byCode.has(code.toString('hex'))) throw new Error(`zengin: centre code ${account.partnerCode} is configured for two partners`);
        const password = passwordBytes(readSecretString(account.password, `zengin password of ${partnerId}`), account.passwordEncoding);
        byCode.set(code.toString('hex'), { partnerId, account, code, password });
      }
      const deps = {
        ctx,
        trail: createAuditTrail(ctx.ledger, ctx.log.child({ protocol: 'zengin' }), 'zengin'),
        ownCode: codeBytes(settings.ownCode),
        accounts: byCode,
        partials: new RestartStore(partialsRoot(ctx.spool.work)),
        inactivityMs: settings.inactivitySeconds * 1000,
        failures: new LoginFailures(settings, ctx.log, 'zengin'),
      };
      if (settings.port !== null) {
        const server = net.createServer((socket) => serve(socket, deps));
        server.maxConnections = settings.maxSessions + settings.maxUnauthenticated;
        tickets.push(gate.guard(server));
        servers.push(server);
        plainPort = await listen(server, settings.port);
      }
      if (settings.tlsPort !== undefined && settings.tls) {
        const t = settings.tls;
        const server = tls.createServer(
          {
            cert: readSecret(t.cert, 'zengin TLS certificate'),
            key: readSecret(t.key, 'zengin TLS key'),
            ca: t.ca ? readSecret(t.ca, 'zengin TLS CA') : undefined,
            minVersion: 'TLSv1.2',
            requestCert: t.requireClientCert || t.ca !== undefined,
            rejectUnauthorized: t.requireClientCert,
            handshakeTimeout: settings.inactivitySeconds * 1000,
          },
          (socket) => serve(socket, deps),
        );
        server.maxConnections = settings.maxSessions + settings.maxUnauthenticated;
        tickets.push(gate.guard(server));
        server.on('tlsClientError', (err, socket) => {
          ctx.log.warn({ protocol: 'zengin', remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message }, 'TLS handshake refused');
        });
        servers.push(server);
        tlsPort = await listen(server, settings.tlsPort);
      }
      ctx.log.info({ protocol: 'zengin', port: plainPort || undefined, tlsPort: tlsPort || undefined }, 'zengin listener started');
    },
    async stop() {
      const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      for (const s of sockets) s.destroy();
      await Promise.all([...closed, ...sessions]);
      servers.length = 0;
    },
  };
}
