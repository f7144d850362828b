// What `serve` (and every job after it) will need from the machine, checked before anything
// starts: every secret ({ env } set, { file } readable), every file and folder the config names,
// and the expiry of every certificate in them. `check-config` prints these; `serve` refuses to
// start on any error. The config is walked generically, so a section added later is covered too.
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { formatPath, type TsunagiConfig } from './config.ts';

export interface PreflightProblem {
  level: 'error' | 'warning';
  /** where in the config: partners[2].delivery.privateKey */
  where: string;
  message: string;
}

const WARN_DAYS = 30;
/** String values that name a file to read. */
const FILE_KEYS = new Set(['knownHosts', 'ca']);

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

function checkCertificates(text: string, file: string, where: string, now: Date, out: PreflightProblem[]): void {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  for (const block of blocks) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      out.push({ level: 'error', where, message: `${file}: a certificate that cannot be read (${(err as Error).message})` });
      continue;
    }
    const subject = cert.subject.replace(/\n/g, ', ');
    const to = new Date(cert.validTo);
    const from = new Date(cert.validFrom);
    if (to.getTime() <= now.getTime()) out.push({ level: 'error', where, message: `${file}: certificate ${subject} expired on ${to.toISOString().slice(0, 10)}; renew it` });
    else if (from.getTime() > now.getTime()) out.push({ level: 'error', where, message: `${file}: certificate ${subject} is not valid before ${from.toISOString().slice(0, 10)}` });
    else if (to.getTime() - now.getTime() < WARN_DAYS * 86_400_000) out.push({ level: 'warning', where, message: `${file}: certificate ${subject} expires on ${to.toISOString().slice(0, 10)}, in under ${WARN_DAYS} days; renew it` });
  }
}

function checkFile(file: string, where: string, now: Date, out: PreflightProblem[], what = 'file'): void {
  let text: Buffer;
  try {
    if (statSync(file).isDirectory()) {
      out.push({ level: 'error', where, message: `${what} ${file} is a folder, not a file` });
      return;
    }
    text = readFileSync(file);
  } catch (err) {
    out.push({ level: 'error', where, message: `cannot read ${what} ${file}: ${errno(err)}; create it or fix the path` });
    return;
  }
  if (text.length === 0) out.push({ level: 'error', where, message: `${what} ${file} is empty` });
  if (text.includes('-----BEGIN CERTIFICATE-----')) checkCertificates(text.toString('latin1'), file, where, now, out);
}

function checkFolder(dir: string, where: string, out: PreflightProblem[], create = false): void {
  try {
    if (!statSync(dir).isDirectory()) {
      out.push({ level: 'error', where, message: `${dir} is not a folder` });
      return;
    }
    accessSync(dir, constants.W_OK | constants.R_OK);
  } catch (err) {
    const code = errno(err);
    if (code === 'ENOENT' && create) return checkFolder(path.dirname(dir), where, out);
    out.push({ level: 'error', where, message: code === 'ENOENT' ? `folder ${dir} does not exist; create it or fix the path` : `folder ${dir} is not readable and writable by this user (${code})` });
  }
}

function walk(value: unknown, at: (string | number)[], now: Date, out: PreflightProblem[]): void {
  if (Array.isArray(value)) return value.forEach((v, i) => walk(v, [...at, i], now, out));
  if (!value || typeof value !== 'object') {
    const key = at.at(-1);
    if (typeof value === 'string' && typeof key === 'string' && FILE_KEYS.has(key)) checkFile(value, formatPath(at), now, out);
    return;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  const where = formatPath(at);
  if (entries.length === 1 && entries[0]![0] === 'env' && typeof entries[0]![1] === 'string') {
    const name = entries[0]![1];
    if (!process.env[name]) out.push({ level: 'error', where, message: `environment variable ${name} is not set; set it for the service (systemd: Environment= or EnvironmentFile=)` });
    return;
  }
  if (entries.length === 1 && entries[0]![0] === 'file' && typeof entries[0]![1] === 'string') return checkFile(entries[0]![1], where, now, out, 'secret file');
  const obj = value as Record<string, unknown>;
  if (obj.protocol === 'local') {
    for (const k of ['path', 'pullPath']) if (typeof obj[k] === 'string') checkFolder(obj[k] as string, formatPath([...at, k]), out);
  }
  for (const [k, v] of entries) walk(v, [...at, k], now, out);
}

export function preflight(config: TsunagiConfig, now: Date = new Date()): PreflightProblem[] {
  const out: PreflightProblem[] = [];
  checkFolder(path.resolve(config.baseDir, config.spoolRoot), 'spoolRoot', out, true);
  if (config.ledger.startsWith('sqlite:')) {
    const file = path.resolve(config.baseDir, config.ledger.slice('sqlite:'.length));
    checkFolder(path.dirname(file), 'ledger', out, true);
  }
  const { spoolRoot: _s, ledger: _l, file: _f, baseDir: _b, ...rest } = config;
  walk(rest, [], now, out);
  return out;
}

export function formatProblem(file: string, p: PreflightProblem): string {
  return `${file}: ${p.where}: ${p.level === 'warning' ? 'warning: ' : ''}${p.message}`;
}
