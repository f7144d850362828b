// The one YAML config file, validated with zod. Errors name the file, the path in it
// (partners[3].delivery.host), its line, and what was expected. Secrets are references to files or
// environment variables; the YAML never holds one.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { knownKeysAt, lineOf, nearestKey } from './config-lines.ts';
import { z } from 'zod';
import { cronProblem } from './cron.ts';
import { localEndpointSchema } from '../protocols/local/client.ts';
import { sftpAccountSchema, sftpEndpointSchema, sftpListenerSchema } from '../protocols/sftp/config.ts';
import { ftpAccountSchema, ftpEndpointSchema, ftpListenerSchema } from '../protocols/ftp/config.ts';
import { zenginAccountSchema, zenginEndpointSchema, zenginListenerSchema } from '../protocols/zengin/config.ts';
import { mailAccountSchema, mailListenerSchema, mailSettingsSchema, partnerNoticeSchema } from '../protocols/mail/config.ts';
import { partnerWebSchema, webListenerSchema } from './web-config.ts';
import { as2AccountSchema, as2EndpointSchema, as2ListenerSchema } from '../protocols/as2/config.ts';
import { expandDeliveryShorthand, hulftCentreSchema, hulftConfigIssues, hulftEndpointSchema, hulftPartnerSchema } from '../protocols/hulft/config.ts';
import { checkUtilityConfig, utilityPartnerSchema, vaultSchema } from './utility/config.ts';
import { encryptionSchema } from './at-rest.ts';
import { byteSize, resolveUrlSecret, uploadsSchema, auditSchema, urlOrSecret } from './security-config.ts';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid config\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

export const FILE_TYPES = ['21', '22', '23', '24', '31', '32', '33', '41', '42', '51', '52', '61', '71', '81', '91'] as const;
export type FileType = (typeof FILE_TYPES)[number];

const fileType = z.enum(FILE_TYPES);
const digits = (n: number) => z.string().regex(new RegExp(`^\\d{${n}}$`), `${n} digits`);
const cron = z.string().superRefine((pattern, ctx) => {
  const problem = cronProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: `cron '${pattern}': ${problem}` });
});

export const ENCODINGS = ['sjis', 'jis8', 'ebcdic-kana', 'ebcdic'] as const;
export const FRAMINGS = ['none', 'crlf', 'lf'] as const;

const fileFormat = z
  .object({
    layout: z.string().min(1).optional(),
    encoding: z.enum(ENCODINGS).default('sjis'),
    framing: z.enum(FRAMINGS).default('crlf'),
    /** Merchants that send CSV instead of fixed width. */
    csv: z.boolean().default(false),
  })
  .strict();

const pullDelivery = z.object({ protocol: z.literal('pull') }).strict();

/** Protocols add their endpoint schema here as they land. */
export const deliverySchema = z.discriminatedUnion('protocol', [localEndpointSchema.strict(), sftpEndpointSchema, ftpEndpointSchema, zenginEndpointSchema, as2EndpointSchema, hulftEndpointSchema, pullDelivery]);

const LEDGER_URL = z.string().regex(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, 'sqlite:PATH or a postgres:// URL');
const QUEUE_URL = z.string().regex(/^(embedded|rediss?:\/\/.+)$/, "'embedded' or a redis:// URL");

export const PARTNER_ROLES = ['merchant', 'card-company', 'online-centre', 'utility'] as const;

const partnerSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'letters, digits, _ and -, at most 64'),
    name: z.string().min(1).max(40),
    role: z.enum(PARTNER_ROLES),
    /** The code this partner puts in a header's senderCode, and that we put in receiverCode. */
    code: digits(10),
    /** Merchant numbers that belong to this merchant (E302 for others). */
    merchantNos: z.array(z.string().min(1).max(15)).default([]),
    /** Card-company (or gift issuer) codes this card company handles: routing keys. */
    cardCompanyCodes: z.array(digits(3)).default([]),
    /** Merchants: the card companies they deal with (51/52 fan-out); default every card company. */
    dealsWith: z.array(digits(3)).optional(),
    send: z.array(fileType).default([]),
    receive: z.array(fileType).default([]),
    formats: z.partialRecord(fileType, fileFormat).default({}),
    rejectPolicy: z.enum(['record', 'file']).default('record'),
    delivery: z.preprocess(expandDeliveryShorthand, deliverySchema).default({ protocol: 'pull' }),
    /** Fetch files from this partner's endpoint (its pull folder) on the collect schedule. */
    collect: z.boolean().default(false),
    /** When deliveries to this partner go out; default: as soon as they are ready. */
    schedule: cron.optional(),
    retentionDays: z.number().int().min(1).max(3650).optional(),
    /** This partner's account on our SFTP server (public keys; a password only where allowed). */
    sftp: sftpAccountSchema.optional(),
    /** This partner's account on our FTP server (FTPS unless `plain`). */
    ftp: ftpAccountSchema.optional(),
    /** This partner's 全銀TCP/IP account on our secondary station: centre codes, password, file names. */
    zengin: zenginAccountSchema.optional(),
    /** Merchant portal settings (TOTP policy); users are added with `tsunagi users add`. */
    web: partnerWebSchema.optional(),
    /** This merchant's account on our SMTP listener (Web-JTRANS mail channel). */
    mail: mailAccountSchema.optional(),
    /** Notice mails (a link to the portal, never the file) when its results are ready. */
    notices: partnerNoticeSchema.optional(),
    /** This partner's AS2 partnership: AS2 ids, our keys, its certificates, what it must do. */
    as2: as2AccountSchema.optional(),
    /** This partner's HULFT host and the send/receive definitions mirrored from our HULFT. */
    hulft: hulftPartnerSchema.optional(),
    /** Head offices: the Jmanager return cycles they get. */
    jmanagerCycles: z.array(z.enum(['D', 'F', 'H', 'M'])).default([]),
    /** Hours after sending by which a card company must return results (reconciliation). */
    resultDeadlineHours: z.number().int().min(1).max(24 * 31).default(48),
    /** Utilities (role: utility): merchant number per card company, validity schedule. */
    utility: utilityPartnerSchema.optional(),
    /** Largest upload from this partner (default: uploads.maxBytes). */
    maxUploadBytes: byteSize.optional(),
  })
  .strict();

export type PartnerConfig = z.infer<typeof partnerSchema>;

export const configSchema = z
  .object({
    centre: z.object({ code: digits(10), name: z.string().min(1).max(40).regex(/^[\x20-\x7e]*$/, 'half-width ASCII') }).strict(),
    spoolRoot: z.string().min(1).default('./spool'),
    ledger: urlOrSecret(LEDGER_URL).default('sqlite:./tsunagi.db'),
    queue: urlOrSecret(QUEUE_URL).default('embedded'),
    /** A file with no temporary name is picked up once it has not changed for this long. */
    quietPeriodSeconds: z.number().int().min(0).max(3600).default(5),
    retentionDays: z.number().int().min(1).max(3650).default(90),
    /** How long a one-off command (cycle, reconcile, ...) waits for a Redis queue before giving up. */
    queueWaitSeconds: z.number().min(0).max(3600).default(30),
    /** Errors listed in one 91 notice; the rest are counted in its closing record. */
    maxErrorsPerFile: z.number().int().min(1).max(100_000).default(1000),
    deliver: z
      .object({
        maxAttempts: z.number().int().min(1).max(100).default(5),
        backoffSeconds: z.number().min(0).max(86400).default(30),
      })
      .strict()
      .default({ maxAttempts: 5, backoffSeconds: 30 }),
    schedules: z
      .object({
        cycle: cron.default('0 2 * * *'),
        collect: cron.default('*/15 * * * *'),
        ingest: cron.default('* * * * *'),
        sweep: cron.default('*/5 * * * *'),
        purge: cron.default('30 4 * * *'),
        jmanager: cron.default('0 5 * * *'),
        reconcile: cron.default('0 6 * * *'),
      })
      .strict()
      .default({
        cycle: '0 2 * * *',
        collect: '*/15 * * * *',
        ingest: '* * * * *',
        sweep: '*/5 * * * *',
        purge: '30 4 * * *',
        jmanager: '0 5 * * *',
        reconcile: '0 6 * * *',
      }),
    /** Our servers for partners; each starts with `tsunagi serve` when configured. */
    listeners: z
      .object({
        sftp: sftpListenerSchema.optional(),
        ftp: ftpListenerSchema.optional(),
        zengin: zenginListenerSchema.optional(),
        web: webListenerSchema.optional(),
        mail: mailListenerSchema.optional(),
        as2: as2ListenerSchema.optional(),
      })
      .strict()
      .default({}),
    /** Outgoing notice mails through a smarthost. */
    mail: mailSettingsSchema.optional(),
    workers: z
      .object({
        concurrency: z.number().int().min(1).max(64).default(2),
        /** Embedded runner: worker threads for validation and conversion (0: all on the main thread). */
        threads: z.number().int().min(0).max(64).default(2),
      })
      .strict()
      .default({ concurrency: 2, threads: 2 }),
    /** HULFT on this host (binDir, etcDir, dynparam, timeouts), for partners on HULFT. */
    hulft: hulftCentreSchema.optional(),
    partners: z.array(partnerSchema).default([]),
    /** Encryption at rest of every spool file (and the card vault's keys): jobs/at-rest.ts. */
    encryption: encryptionSchema.optional(),
    /** The card vault's own key-encryption key (older configs; `encryption` supersedes it). */
    vault: vaultSchema.optional(),
    uploads: uploadsSchema.prefault({}),
    /** The audit trail's retention (its rows form a hash chain; see spool/ledger/audit.ts). */
    audit: auditSchema.prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Map<string, string>();
    const claim = (kind: string, value: string, where: (string | number)[]) => {
      const key = `${kind}:${value}`;
      const first = seen.get(key);
      if (first) ctx.addIssue({ code: 'custom', path: where, message: `${kind} '${value}' is already used by ${first}` });
      else seen.set(key, where.slice(0, 2).join('.'));
    };
    config.partners.forEach((p, i) => {
      claim('partner id', p.id, ['partners', i, 'id']);
      claim('partner code', p.code, ['partners', i, 'code']);
      p.merchantNos.forEach((m, j) => claim('merchant number', m, ['partners', i, 'merchantNos', j]));
      p.cardCompanyCodes.forEach((c, j) => claim('card-company code', c, ['partners', i, 'cardCompanyCodes', j]));
      if (p.role === 'merchant' && p.merchantNos.length === 0 && p.send.length > 0)
        ctx.addIssue({ code: 'custom', path: ['partners', i, 'merchantNos'], message: 'a merchant that sends files needs at least one merchant number' });
      if (p.delivery.protocol === 'as2' && !p.as2) ctx.addIssue({ code: 'custom', path: ['partners', i, 'as2'], message: 'delivery as2 needs an as2 section (ids, keys, certificates)' });
      if (p.role === 'card-company' && p.cardCompanyCodes.length === 0)
        ctx.addIssue({ code: 'custom', path: ['partners', i, 'cardCompanyCodes'], message: 'a card company needs at least one card-company code' });
    });
    for (const issue of hulftConfigIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
    checkUtilityConfig(config, (where, message) => ctx.addIssue({ code: 'custom', path: where, message }));
  });

export type TsunagiConfig = Omit<z.infer<typeof configSchema>, 'ledger' | 'queue'> & {
  /** The ledger and queue URLs, read from their secret when the YAML names one. */
  ledger: string;
  queue: string;
  /** Absolute path of the file it came from; relative paths in it are relative to its folder. */
  file: string;
  baseDir: string;
};

export function resolveConfigPath(explicit?: string): string {
  return path.resolve(explicit ?? process.env.TSUNAGI_CONFIG ?? 'tsunagi.yaml');
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') return `expected ${issue.expected}`;
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  if (issue.code === 'invalid_value') return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  if (issue.code === 'invalid_union' && 'options' in issue && Array.isArray(issue.options))
    return `expected one of ${issue.options.map((v) => JSON.stringify(v)).join(', ')}`;
  return issue.message;
}

export function formatPath(segments: PropertyKey[]): string {
  let out = '';
  // A key that is not a plain name (a typo like ':' or a key with spaces) is quoted, so that the
  // path still reads as a path.
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : /^[A-Za-z_$][\w$-]*$/.test(String(s)) ? `${out ? '.' : ''}${String(s)}` : `[${JSON.stringify(String(s))}]`;
  return out || '(top)';
}

/**
 * The document as plain values. yaml refuses an alias to an anchor not yet set, and an alias bomb
 * (a few lines that expand to millions of nodes), with a ReferenceError: a config problem too.
 */
function yamlValue(doc: ReturnType<typeof parseDocument>, file: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: 1000 }) ?? {};
  } catch (err) {
    if (err instanceof ReferenceError) throw new ConfigError(file, [`YAML aliases: ${err.message}`]);
    throw err;
  }
}

/** Parses and validates config text; `file` is used in messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): TsunagiConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `line ${lineCounter.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`),
    );
  }
  const raw = yamlValue(doc, file);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => {
      // An unknown key: its own line, and the known key it was probably meant to be.
      if (issue.code === 'unrecognized_keys') {
        const known = knownKeysAt(configSchema, issue.path, raw);
        return issue.keys.map((key) => {
          const line = lineOf(doc, lineCounter, [...issue.path, key]);
          const near = nearestKey(key, known);
          return `${formatPath([...issue.path, key])}${line ? ` (line ${line})` : ''}: unknown key '${key}'${near ? `; did you mean '${near}'?` : ''}`;
        });
      }
      const line = lineOf(doc, lineCounter, issue.path);
      const missing = issue.code === 'invalid_type' && doc.getIn(issue.path as unknown[]) === undefined;
      return [`${formatPath(issue.path)}${line ? ` (line ${line})` : ''}: ${missing ? 'missing, ' : ''}${describeIssue(issue)}`];
    });
    throw new ConfigError(file, problems);
  }
  const absolute = path.resolve(file);
  const baseDir = path.dirname(absolute);
  const data = resolveRelativePaths(result.data, baseDir) as typeof result.data;
  const ledger = resolveUrlSecret(data.ledger, LEDGER_URL, 'ledger');
  const queue = resolveUrlSecret(data.queue, QUEUE_URL, 'queue');
  const urlProblems = [ledger, queue].flatMap((r) => ('problem' in r ? [r.problem] : []));
  if (urlProblems.length) throw new ConfigError(file, urlProblems);
  return { ...data, ledger: (ledger as { url: string }).url, queue: (queue as { url: string }).url, file: absolute, baseDir };
}

export function loadConfig(explicit?: string): TsunagiConfig {
  const file = resolveConfigPath(explicit);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parseConfig(text, file);
}

/** Keys whose string values are file paths; with secret refs ({ file }) they resolve against the config's folder. */
const PATH_KEYS = new Set(['knownHosts', 'ca', 'spoolRoot', 'binDir', 'etcDir', 'sendDir']);

function resolveRelativePaths(value: unknown, baseDir: string, key = ''): unknown {
  if (typeof value === 'string') return PATH_KEYS.has(key) ? path.resolve(baseDir, value) : value;
  if (Array.isArray(value)) return value.map((v) => resolveRelativePaths(v, baseDir));
  if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    const isSecretFile = entries.length === 1 && entries[0]![0] === 'file';
    const isLocalDelivery = (value as { protocol?: unknown }).protocol === 'local';
    return Object.fromEntries(
      entries.map(([k, v]) => [k, isSecretFile || (isLocalDelivery && (k === 'path' || k === 'pullPath')) ? path.resolve(baseDir, String(v)) : resolveRelativePaths(v, baseDir, k)]),
    );
  }
  return value;
}

/** A path from the config, made absolute against the config file's folder. */
export function configPath(config: TsunagiConfig, p: string): string {
  return path.resolve(config.baseDir, p);
}
