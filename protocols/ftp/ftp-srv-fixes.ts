// Two fixes for ftp-srv 4.6.3 under explicit TLS, applied to its prototypes once per process.
//
// 1. AUTH TLS: ftp-srv replies 234 and only later wraps the control socket in TLS. A client's
//    ClientHello that arrives in between is read as an FTP command (seen with curl and lftp:
//    "502 Command not allowed: \u0016\u0003..." and a failed handshake). We stop reading the socket
//    before the 234 goes out, so the TLS socket gets the ClientHello.
//
// 2. Passive data connections (upstream issues #192, #333): ftp-srv listens with tls.createServer and only counts the data connection once the TLS
// handshake is done; clients such as lftp start that handshake only after our 150 reply, which
// ftp-srv sends only once the connection counts: both sides wait and the transfer fails with 425.
// Here the data connection counts as soon as TCP connects; the TLS socket wraps it at once and
// completes the handshake whenever the client starts it (writes before then are buffered).
// A data connection from any address but the control connection's is dropped, and the port keeps
// waiting for the partner's own (ftp-srv closed the partner's session instead: anyone who could
// reach the passive port range could cut every transfer). Plain and TLS alike.
import { createRequire } from 'node:module';
import { constants as cryptoConstants } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { normaliseAddress } from '../admission.ts';

const require = createRequire(import.meta.url);
const Passive = require('ftp-srv/src/connector/passive.js') as { prototype: PassiveLike & { setupServer(): Promise<net.Server> } };

const CONNECT_TIMEOUT_MS = 30_000;
const contexts = new WeakMap<object, tls.SecureContext>();

interface PassiveLike {
  connection: { secure: boolean; commandSocket: net.Socket; reply(code: number, msg: string): Promise<unknown>; close(): unknown };
  server: { options: { tls: tls.SecureContextOptions }; url: { hostname: string }; getNextPasvPort(): Promise<number>; emit(e: string, v: unknown): void };
  dataServer: net.Server | null;
  dataSocket: (net.Socket & { connected?: boolean }) | null;
  log: { debug(...a: unknown[]): void; error(...a: unknown[]): void };
  closeServer(): void;
  end(): void;
}

const PATCHED = Symbol.for('tsunagi.ftp-srv.tls-fixes');
const proto = Passive.prototype as PassiveLike & { setupServer(): Promise<net.Server>; [PATCHED]?: boolean };

if (!proto[PATCHED]) {
  proto[PATCHED] = true;
  const original = proto.setupServer;
  void original;
  proto.setupServer = function (this: PassiveLike): Promise<net.Server> {
    const secureData = this.connection.secure;
    this.closeServer();
    return this.server.getNextPasvPort().then((port) => {
      this.dataSocket = null;
      let context = contexts.get(this.server);
      if (secureData && !context) {
        // Data connections speak TLS 1.2 without session tickets: a TLS 1.3 server sends tickets
        // after the handshake, an uploading client (lftp) never reads them, and closing a socket
        // with unread bytes sends RST instead of FIN: the upload then ends in ECONNRESET (and is
        // rightly aborted). With nothing sent after the handshake, the close is clean.
        context = tls.createSecureContext({ ...this.server.options.tls, maxVersion: 'TLSv1.2', secureOptions: cryptoConstants.SSL_OP_NO_TICKET });
        contexts.set(this.server, context);
      }
      let idle: NodeJS.Timeout | undefined;

      const dataServer = net.createServer({ pauseOnConnect: true }, (raw) => {
        if (normaliseAddress(raw.remoteAddress) !== normaliseAddress(this.connection.commandSocket.remoteAddress)) {
          this.log.error({ dataFrom: raw.remoteAddress, controlFrom: this.connection.commandSocket.remoteAddress }, 'passive data connection from another address dropped');
          raw.destroy();
          return;
        }
        if (this.dataSocket) return void raw.destroy(); // one data connection per transfer
        clearTimeout(idle);
        if (!secureData) {
          const plain = raw as net.Socket & { connected?: boolean };
          plain.on('error', (err) => this.server?.emit('client-error', { connection: this.connection, context: 'dataSocket', error: err }));
          plain.once('close', () => this.closeServer());
          plain.connected = true;
          this.dataSocket = plain;
          return;
        }
        const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context! }) as tls.TLSSocket & { connected?: boolean };
        secure.on('error', (err) => this.server?.emit('client-error', { connection: this.connection, context: 'dataSocket', error: err }));
        secure.once('close', () => this.closeServer());
        secure.pause();
        secure.connected = true;
        this.dataSocket = secure;
      });
      // Not maxConnections = 1: a stranger's connection would take the one place until dropped.
      dataServer.on('error', (err) => this.server?.emit('client-error', { connection: this.connection, context: 'dataServer', error: err }));
      dataServer.once('close', () => {
        clearTimeout(idle);
        this.end();
      });
      this.dataServer = dataServer;
      return new Promise<net.Server>((resolve, reject) => {
        dataServer.once('error', reject);
        dataServer.listen(port, this.server.url.hostname, () => {
          dataServer.off('error', reject);
          idle = setTimeout(() => this.closeServer(), CONNECT_TIMEOUT_MS).unref();
          resolve(dataServer);
        });
      });
    });
  };
}

interface AuthConnection {
  server: { options: { tls: tls.SecureContextOptions | false } };
  secure: boolean;
  commandSocket: net.Socket;
  reply(code: number, msg?: string): Promise<unknown>;
}
const authCommand = require('ftp-srv/src/commands/registration/auth.js') as {
  handler: (this: AuthConnection, args: { command: { arg: string | null } }) => unknown;
  [PATCHED]?: boolean;
};

if (!authCommand[PATCHED]) {
  authCommand[PATCHED] = true;
  authCommand.handler = function (this: AuthConnection, { command }) {
    if ((command.arg ?? '').toUpperCase() !== 'TLS') return this.reply(504);
    if (!this.server.options.tls) return this.reply(502);
    if (this.secure) return this.reply(202);
    const plain = this.commandSocket;
    plain.pause(); // nothing more is read as plain text: the next bytes are the ClientHello
    return this.reply(234).then(() => {
      // ftp-srv's command parser listens for 'data' on the plain socket. Wrapping drains any bytes
      // already buffered there with read(), which would also emit them as 'data' (a ClientHello
      // parsed as a command): move the parser to the TLS socket before wrapping.
      const parsers = plain.listeners('data') as Array<(chunk: Buffer) => void>;
      plain.removeAllListeners('data');
      const secureSocket = new tls.TLSSocket(plain, {
        isServer: true,
        secureContext: tls.createSecureContext(this.server.options.tls as tls.SecureContextOptions),
      });
      for (const parse of parsers) secureSocket.on('data', parse);
      // The idle timeout set on the plain socket moves with it (its activity is now the TLS socket's).
      if (plain.timeout) {
        secureSocket.setTimeout(plain.timeout);
        plain.setTimeout(0);
      }
      // ftp-srv's connection watches the plain socket for these: forward them from the TLS socket.
      for (const event of ['timeout', 'end', 'close', 'drain', 'error']) {
        secureSocket.on(event, (...args: unknown[]) => plain.emit(event, ...args));
      }
      this.commandSocket = secureSocket;
      this.secure = true;
    });
  };
}

// 3. USER: a server may refuse a login name before the password is sent (a TLS account on a plain
//    connection: its password must never cross in clear). The check is registered per server.
type UserCheck = (connection: unknown, username: string) => string | undefined;
const userChecks = new WeakMap<object, UserCheck>();

/** Registers the USER check of one FtpSrv: it returns the 530 text to refuse with, or undefined. */
export function setUserCheck(server: object, check: UserCheck): void {
  userChecks.set(server, check);
}

const userCommand = require('ftp-srv/src/commands/registration/user.js') as {
  handler: (this: { server: object; username?: string; reply(code: number, msg?: string): Promise<unknown> }, args: { command: { arg: string | null } }) => unknown;
  [PATCHED]?: boolean;
};
if (!userCommand[PATCHED]) {
  userCommand[PATCHED] = true;
  const original = userCommand.handler;
  userCommand.handler = function (this, args) {
    const check = userChecks.get(this.server);
    const refusal = check && args.command.arg ? check(this, args.command.arg) : undefined;
    if (refusal) return this.reply(530, refusal);
    return original.call(this, args);
  };
}
