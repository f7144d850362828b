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
import { createRequire } from 'node:module';
import { constants as cryptoConstants } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

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
  proto.setupServer = function (this: PassiveLike): Promise<net.Server> {
    if (!this.connection.secure) return original.call(this);
    this.closeServer();
    return this.server.getNextPasvPort().then((port) => {
      this.dataSocket = null;
      let context = contexts.get(this.server);
      if (!context) {
        // Data connections speak TLS 1.2 without session tickets: a TLS 1.3 server sends tickets
        // after the handshake, an uploading client (lftp) never reads them, and closing a socket
        // with unread bytes sends RST instead of FIN: the upload then ends in ECONNRESET (and is
        // rightly aborted). With nothing sent after the handshake, the close is clean.
        context = tls.createSecureContext({ ...this.server.options.tls, maxVersion: 'TLSv1.2', secureOptions: cryptoConstants.SSL_OP_NO_TICKET });
        contexts.set(this.server, context);
      }
      let idle: NodeJS.Timeout | undefined;

      const dataServer = net.createServer({ pauseOnConnect: true }, (raw) => {
        if (raw.remoteAddress !== this.connection.commandSocket.remoteAddress) {
          raw.destroy();
          void this.connection.reply(550, 'Remote addresses do not match').then(() => this.connection.close());
          return;
        }
        clearTimeout(idle);
        const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context }) as tls.TLSSocket & { connected?: boolean };
        secure.on('error', (err) => this.server?.emit('client-error', { connection: this.connection, context: 'dataSocket', error: err }));
        secure.once('close', () => this.closeServer());
        secure.pause();
        secure.connected = true;
        this.dataSocket = secure;
      });
      dataServer.maxConnections = 1;
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
