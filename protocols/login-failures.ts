// Failed logins, counted per login name and per source address on every listener (PCI DSS 8.3.4):
// each failure makes the next answer wait longer (doubling up to a cap), and after at most 10
// failures the name (or the address) is locked out for at least 30 minutes, with an alert. A
// locked name gets the same answer as a wrong password, after the same delay, so a lockout does
// not tell a guesser anything; the operator learns of it from the alert. A success resets the
// name's count (not the address's: one partner's success must not clear a guesser's count).
import { z } from 'zod';

export const loginFailureFields = {
  /** Failures (per login name, and per address) before a lockout; PCI DSS allows at most 10. */
  maxLoginFailures: z.number().int().min(1).max(10).default(10),
  /** How long a lockout lasts; PCI DSS asks for at least 30 minutes. */
  lockoutMinutes: z.number().min(30).max(24 * 60).default(30),
  /** The delay after the first failure; it doubles with each one, up to 8 s. */
  failureDelayMs: z.number().int().min(0).max(10_000).default(500),
};

export interface LoginFailureSettings {
  maxLoginFailures: number;
  lockoutMinutes: number;
  failureDelayMs: number;
}

interface Log {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

interface Count {
  failures: number;
  lastAt: number;
  lockedUntil: number;
}

const MAX_DELAY_MS = 8000;
const MAX_TRACKED = 100_000;

export interface LoginVerdict {
  /** Wait this long before answering (success or not). */
  delayMs: number;
  /** Refuse whatever the credentials. */
  locked: boolean;
}

export class LoginFailures {
  private readonly counts = new Map<string, Count>();

  constructor(
    private readonly settings: LoginFailureSettings,
    private readonly log: Log,
    private readonly protocol: string,
    private readonly now: () => number = Date.now,
  ) {}

  private get windowMs(): number {
    return this.settings.lockoutMinutes * 60_000;
  }

  private get(key: string): Count | undefined {
    const c = this.counts.get(key);
    if (!c) return undefined;
    const now = this.now();
    // Failures older than the lockout window are forgotten, as is a lockout that ran out.
    if (c.lockedUntil <= now && now - c.lastAt > this.windowMs) {
      this.counts.delete(key);
      return undefined;
    }
    return c;
  }

  /** Before checking a login's credentials. */
  check(name: string, address: string): LoginVerdict {
    const now = this.now();
    const a = this.get(`name:${name}`);
    const b = this.get(`addr:${address}`);
    const locked = (a?.lockedUntil ?? 0) > now || (b?.lockedUntil ?? 0) > now;
    const failures = Math.max(a?.failures ?? 0, b?.failures ?? 0);
    const delayMs = failures === 0 ? 0 : Math.min(MAX_DELAY_MS, this.settings.failureDelayMs * 2 ** (failures - 1));
    return { delayMs, locked };
  }

  /** A failed login; returns whether it locked the name or the address. */
  failed(name: string, address: string, partnerId: string | null): boolean {
    let lockedNow = false;
    const now = this.now();
    for (const key of [`name:${name}`, `addr:${address}`]) {
      const c = this.get(key) ?? { failures: 0, lastAt: now, lockedUntil: 0 };
      c.failures++;
      c.lastAt = now;
      if (c.failures >= this.settings.maxLoginFailures && c.lockedUntil <= now) {
        c.lockedUntil = now + this.windowMs;
        lockedNow = true;
        this.log.error(
          { alert: 'login-lockout', protocol: this.protocol, locked: key.startsWith('name:') ? 'login name' : 'address', user: name, partnerId, remote: address, failures: c.failures, minutes: this.settings.lockoutMinutes },
          'login locked out after repeated failures',
        );
      }
      this.counts.set(key, c);
    }
    if (this.counts.size > MAX_TRACKED) this.forgetOldest();
    return lockedNow;
  }

  succeeded(name: string): void {
    const c = this.get(`name:${name}`);
    if (c && c.lockedUntil <= this.now()) this.counts.delete(`name:${name}`);
  }

  /** Bounded memory under a flood of names: the oldest unlocked entries go first. */
  private forgetOldest(): void {
    const now = this.now();
    for (const [k, c] of this.counts) {
      if (this.counts.size <= MAX_TRACKED * 0.9) break;
      if (c.lockedUntil <= now) this.counts.delete(k);
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
