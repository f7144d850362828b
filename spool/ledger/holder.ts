// Who holds a piece of work: a process, named by host, pid and start time, so that a process that
// died (or a pid reused by another one) is told apart from one still at work. On this host we can
// look; for another host we go by the holder's heartbeat.
import os from 'node:os';
import { readFileSync } from 'node:fs';

export interface Holder {
  host: string;
  pid: number;
  /** Process start time (ms since epoch, from /proc where there is one). */
  startedAt: number;
}

let bootMs: number | undefined;
function bootTimeMs(): number | undefined {
  if (bootMs !== undefined) return bootMs;
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('btime '));
    bootMs = line ? Number(line.slice(6)) * 1000 : undefined;
  } catch {
    bootMs = undefined;
  }
  return bootMs;
}

/** Start time of a process on this host, or undefined when there is none (or no /proc). */
export function processStartedAt(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, clock ticks after boot); fields after the ')' of the command start at 3.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const boot = bootTimeMs();
    return boot === undefined || !Number.isFinite(ticks) ? undefined : boot + ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

export const SELF: Holder = {
  host: os.hostname(),
  pid: process.pid,
  // Worker threads share the process's pid and /proc entry, so they name the same holder.
  startedAt: processStartedAt(process.pid) ?? Math.round(Date.now() - process.uptime() * 1000),
};

export function formatHolder(h: Holder): string {
  return `${h.host}:${h.pid}:${h.startedAt}`;
}

/** host:pid:startedAt (host:pid, the older form, has startedAt 0: unknown). */
export function parseHolder(s: string | null | undefined): Holder | undefined {
  if (!s) return undefined;
  const m = /^(.+?):(\d+)(?::(\d+))?$/.exec(s);
  return m ? { host: m[1]!, pid: Number(m[2]), startedAt: Number(m[3] ?? 0) } : undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * 'alive', 'gone', or 'unknown' (another host: the caller decides by heartbeat). On this host a
 * holder is gone when its pid is not running, or runs a process that started at another time.
 */
export function holderState(holder: Holder | undefined): 'alive' | 'gone' | 'unknown' {
  if (!holder) return 'gone';
  if (holder.host !== SELF.host) return 'unknown';
  if (holder.pid === SELF.pid) return holder.startedAt === 0 || holder.startedAt === SELF.startedAt ? 'alive' : 'gone';
  if (!pidAlive(holder.pid)) return 'gone';
  if (holder.startedAt === 0) return 'alive';
  const started = processStartedAt(holder.pid);
  return started === undefined || started === holder.startedAt ? 'alive' : 'gone';
}

export function isSelf(holder: Holder | undefined): boolean {
  return !!holder && holder.host === SELF.host && holder.pid === SELF.pid && (holder.startedAt === 0 || holder.startedAt === SELF.startedAt);
}
