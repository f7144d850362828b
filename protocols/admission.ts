// Who may hold a connection to one of our listeners before logging in. A stranger must not be able
// to fill a listener with silent or trickling connections (and the process with file
// descriptors): every listener caps connections that have not logged in, over all addresses and
// per source address, gives each a login grace time that bytes do not extend (the idle timeout
// only starts after login), and may admit only an allow-list of partner addresses.
// The gate sits on the TCP accept, before any TLS handshake or protocol greeting.
import net from 'node:net';
import { z } from 'zod';
import { loginFailureFields } from './login-failures.ts';

/** An IPv4 or IPv6 address, or a CIDR block (10.0.0.0/8, 2001:db8::/32). */
const addressOrBlock = z.string().refine((s) => parseBlock(s) !== undefined, { message: 'an IP address or CIDR block' });

/** Fields every listener's config carries (spread into its schema). */
export const admissionFields = {
  /** Connections not yet logged in, over all addresses. */
  maxUnauthenticated: z.number().int().min(1).max(100_000).default(32),
  /** Connections not yet logged in, from one address. */
  maxUnauthenticatedPerAddress: z.number().int().min(1).max(100_000).default(4),
  /** A connection must have logged in this long after it connected (bytes do not extend it). */
  loginGraceSeconds: z.number().positive().max(600).default(20),
  /** Only these addresses or blocks may connect at all (default: any). */
  allowFrom: z.array(addressOrBlock).optional(),
  ...loginFailureFields,
};

export interface AdmissionSettings {
  maxUnauthenticated: number;
  maxUnauthenticatedPerAddress: number;
  loginGraceSeconds: number;
  allowFrom?: string[];
}

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A connection let in: tell the gate when it logged in; it leaves by itself when the socket closes. */
export interface Ticket {
  readonly address: string;
  loggedIn(): void;
}

function parseBlock(s: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address, prefixText, extra] = s.split('/');
  if (extra !== undefined || !address) return undefined;
  const version = net.isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText !== undefined && !/^\d+$/.test(prefixText))) return undefined;
  return { address, prefix, family };
}

/** An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d: count and match it as a.b.c.d. */
export function normaliseAddress(address: string | undefined): string {
  if (!address) return '?';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

export class AdmissionGate {
  private readonly allow: net.BlockList | undefined;
  private readonly perAddress = new Map<string, number>();
  private unauthenticated = 0;
  private readonly refusedSince = new Map<string, number>();
  private lastRefusalLog = 0;

  constructor(
    private readonly settings: AdmissionSettings,
    private readonly log: Log,
    private readonly protocol: string,
  ) {
    if (settings.allowFrom) {
      this.allow = new net.BlockList();
      for (const entry of settings.allowFrom) {
        const b = parseBlock(entry);
        if (!b) throw new Error(`${protocol}: allowFrom: '${entry}' is not an IP address or CIDR block`);
        this.allow.addSubnet(b.address, b.prefix, b.family);
      }
    }
  }

  /** Connections currently let in and not logged in (for tests and metrics). */
  get waiting(): number {
    return this.unauthenticated;
  }

  allowed(address: string): boolean {
    if (!this.allow) return true;
    const family = net.isIP(address) === 6 ? 'ipv6' : 'ipv4';
    return net.isIP(address) !== 0 && this.allow.check(address, family);
  }

  /** A new TCP connection: a ticket, or undefined when it was refused (and destroyed). */
  admit(socket: net.Socket): Ticket | undefined {
    const address = normaliseAddress(socket.remoteAddress);
    const refuse = (why: string) => {
      this.noteRefusal(why, address);
      socket.destroy();
      return undefined;
    };
    if (!this.allowed(address)) return refuse('address not in allowFrom');
    if (this.unauthenticated >= this.settings.maxUnauthenticated) return refuse(`more than ${this.settings.maxUnauthenticated} connections not logged in`);
    const fromHere = this.perAddress.get(address) ?? 0;
    if (fromHere >= this.settings.maxUnauthenticatedPerAddress) {
      return refuse(`more than ${this.settings.maxUnauthenticatedPerAddress} connections not logged in from one address`);
    }
    this.unauthenticated++;
    this.perAddress.set(address, fromHere + 1);
    let waiting = true;
    const leave = () => {
      if (!waiting) return;
      waiting = false;
      clearTimeout(grace);
      this.unauthenticated--;
      const n = (this.perAddress.get(address) ?? 1) - 1;
      if (n > 0) this.perAddress.set(address, n);
      else this.perAddress.delete(address);
    };
    const grace = setTimeout(() => {
      if (!waiting) return;
      this.log.info({ protocol: this.protocol, remote: `${address}:${socket.remotePort}`, loginGraceSeconds: this.settings.loginGraceSeconds }, 'login grace time over: connection closed');
      leave();
      socket.destroy();
    }, this.settings.loginGraceSeconds * 1000);
    grace.unref();
    socket.once('close', leave);
    return { address, loggedIn: leave };
  }

  /**
   * Puts the gate in front of a server's existing 'connection' handlers (the protocol library's),
   * so a refused socket never reaches the library. Returns the tickets by socket.
   */
  guard(server: net.Server): WeakMap<net.Socket, Ticket> {
    const tickets = new WeakMap<net.Socket, Ticket>();
    const handlers = server.listeners('connection') as Array<(socket: net.Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: net.Socket) => {
      const ticket = this.admit(socket);
      if (!ticket) return;
      tickets.set(socket, ticket);
      for (const h of handlers) h.call(server, socket);
    });
    return tickets;
  }

  // A flood would write one line per refused connection: log a count at most every 10 s.
  private noteRefusal(why: string, address: string): void {
    this.refusedSince.set(why, (this.refusedSince.get(why) ?? 0) + 1);
    const now = Date.now();
    if (now - this.lastRefusalLog < 10_000) return;
    this.lastRefusalLog = now;
    for (const [reason, count] of this.refusedSince) {
      this.log.warn({ protocol: this.protocol, lastRemote: address, count, reason }, 'connections refused before login');
    }
    this.refusedSince.clear();
  }
}
