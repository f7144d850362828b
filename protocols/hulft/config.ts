// Config for the HULFT bridge (spec hulft.md §1). tsunagi never speaks HULFT's protocol: these
// settings mirror the 管理情報 the operator registers in the licensed HULFT beside tsunagi, and
// say where HULFT's commands are. Defaults are HULFT's own defaults, so an omitted key means
// what HULFT means by it; check-config then warns where tsunagi recommends otherwise.
import { z } from 'zod';
import { familyForFileType, familyOfLayoutName, type Family } from '../../formats/index.ts';

const FILE_TYPE = z.string().regex(/^[0-9]{2}$/, 'a two-digit file type (32, 33, ...)');
const port = z.number().int().min(1).max(65535);
const bytes = (max: number, what: string) => z.string().min(1).refine((s) => Buffer.byteLength(s) <= max, `${what}: at most ${max} bytes`);
/** IDs: checked by version in checkHulftConfig, so that the message can say which rule applies. */
const hulftId = z.string();

export const HULFT_CENTRE_DEFAULTS = { dynparam: false, syncTimeoutSeconds: 3600, aliveCheckSeconds: 20, jobCommand: 'tsunagi' };

/** Centre-wide: where HULFT is on this host and how tsunagi calls it. */
export const hulftCentreSchema = z
  .object({
    /** HULEXEP: the folder of utlsend, utlrecv, utlalivecheck. */
    binDir: z.string().min(1),
    /** HULPATH: HULFT's etc folder; exported with HULEXEP to every HULFT command we run. */
    etcDir: z.string().min(1),
    /** 動的パラメータ指定 is on in HULFT: utlsend may name the file (-file) and the host (-h). */
    dynparam: z.boolean().default(false),
    /** utlsend/utlrecv -sync -w N; the command is killed at N + 60 s. */
    syncTimeoutSeconds: z.number().int().min(1).max(86400).default(3600),
    /** utlalivecheck -w N [D4]. */
    aliveCheckSeconds: z.number().int().min(10).max(259200).default(20),
    /** dynparam: where each attempt's hard link lives (same file system as the spool); default <spoolRoot>/hulft/send. */
    sendDir: z.string().min(1).optional(),
    /** How HULFT's job lines call tsunagi (an absolute path in production); hulft-job-line prints it. */
    jobCommand: z.string().min(1).default('tsunagi'),
  })
  .strict();
export type HulftCentreSettings = z.infer<typeof hulftCentreSchema>;

const jobsSchema = z
  .object({
    /** JOBID: 正常時ジョブ. */
    success: hulftId.optional(),
    /** EJOBID: 異常時ジョブ. */
    failure: hulftId.optional(),
  })
  .strict();

/** 配信管理情報: one file ID we send to this partner. */
export const hulftSendSchema = z
  .object({
    fileId: hulftId,
    /** [T] the file types sent under this ID. */
    fileTypes: z.array(FILE_TYPE).min(1),
    /** FILENAME: without dynparam the file is copied here before utlsend. */
    fileName: bytes(200, 'FILENAME'),
    transferType: z.enum(['text', 'binary', 'format', 'multiformat']).default('text'),
    codeConversion: z.enum(['sender', 'receiver', 'none']).default('sender'),
    compression: z.enum(['none', 'horizontal', 'vertical-horizontal', 'deflate']).default('none'),
    clear: z.enum(['keep', 'clear', 'delete', 'lock']).default('keep'),
    jobs: jobsSchema.default({}),
    /** GRPID: without dynparam, a 転送グループ that holds only this partner's host. */
    group: hulftId.optional(),
    /** FMTID: the フォーマット情報 of a format or multiformat transfer. */
    formatId: hulftId.optional(),
    /** SHIFTTRANSACT: SO/SI from ASCII add (Y) or not (N); from EBCDIC cut (C) or space (S). */
    shiftCode: z.enum(['Y', 'N', 'C', 'S']).optional(),
  })
  .strict();
export type HulftSendDef = z.infer<typeof hulftSendSchema>;

/** 集信管理情報: one file ID this partner sends us. */
export const hulftReceiveSchema = z
  .object({
    fileId: hulftId,
    fileTypes: z.array(FILE_TYPE).min(1),
    /** FILENAME: where our HULFT writes the file ($FILENM, with a generation suffix under GENCTL). */
    fileName: bytes(200, 'FILENAME'),
    mode: z.enum(['new', 'replace', 'append']).default('new'),
    /** GENCTL Y with GENMNGNO 2..9999; 0 = GENCTL N. */
    generations: z.number().int().min(0).max(9999).default(0),
    onError: z.enum(['delete', 'keep', 'restore']).default('delete'),
    /** JOBWAIT: job = the sender's success waits for our 集信後ジョブ; receipt = for the data only. */
    notify: z.enum(['job', 'receipt']).default('receipt'),
    codeSet: z.string().regex(/^[0A-IV-X]$/, 'CODESET: 0, A..I or V..X').default('0'),
    jobs: jobsSchema.default({}),
  })
  .strict();
export type HulftReceiveDef = z.infer<typeof hulftReceiveSchema>;

/** A partner's HULFT: its 詳細ホスト情報 and the definitions by file ID. */
export const hulftPartnerSchema = z
  .object({
    /** 詳細ホスト情報 host name, ≤68 bytes [D1]. */
    host: bytes(68, 'host name').refine((s) => /^[\x21-\x7e]+$/.test(s), 'host name: printable ASCII, no spaces'),
    ports: z.object({ rcv: port.default(30000), obs: port.default(31000) }).strict().default({ rcv: 30000, obs: 31000 }),
    /** The partner's HULFT version: below 8, IDs are ≤8 bytes, no DEFLATE, no -msgl [D15]. */
    version: z.number().min(1).max(99).default(8),
    /** fresh: every attempt is a new utlsend; checkpoint: a retry tries utlsend -r first (fresh on rc 1). */
    resend: z.enum(['fresh', 'checkpoint']).default('fresh'),
    send: z.array(hulftSendSchema).default([]),
    receive: z.array(hulftReceiveSchema).default([]),
  })
  .strict();
export type HulftPartnerSettings = z.infer<typeof hulftPartnerSchema>;

/** `delivery: { protocol: hulft }`: the definitions are in the partner's `hulft:` section. */
export const hulftEndpointSchema = z.object({ protocol: z.literal('hulft') }).strict();

/** `delivery: hulft` is accepted as a short form of `delivery: { protocol: hulft }`. */
export function expandDeliveryShorthand(value: unknown): unknown {
  return value === 'hulft' ? { protocol: 'hulft' } : value;
}

// ---- check-config rules (§1) ---------------------------------------------------------------

interface Issue {
  path: (string | number)[];
  message: string;
}

/** The shapes the rules need; jobs/config.ts passes the parsed config. */
export interface HulftConfigView {
  hulft?: HulftCentreSettings;
  file?: string;
  partners: {
    id: string;
    send: string[];
    receive: string[];
    delivery: { protocol: string };
    formats: Partial<Record<string, { layout?: string; encoding: string; framing: string } | undefined>>;
    hulft?: HulftPartnerSettings;
  }[];
}

const ID_CHARS = /^[A-Z0-9_]+$/;

/** Why `id` is not a valid HULFT ID for a partner on `version`, or null. */
export function hulftIdProblem(id: string, version: number, what = 'file ID'): string | null {
  if (id.length === 0 || Buffer.byteLength(id) > 50) return `${what} '${id}': 1 to 50 bytes`;
  if (!ID_CHARS.test(id)) return `${what} '${id}': only A-Z, 0-9 and _`;
  if (version < 8) {
    if (id.length > 8) return `${what} '${id}': at most 8 bytes for HULFT version ${version} (< 8)`;
    if (!/^[A-Z]/.test(id)) return `${what} '${id}': must start with a letter for HULFT version ${version} (< 8)`;
    if (id.includes('_')) return `${what} '${id}': no '_' for HULFT version ${version} (< 8)`;
  }
  return null;
}

function otherIdProblem(id: string, what: string): string | null {
  if (id.length === 0 || Buffer.byteLength(id) > 50) return `${what} '${id}': 1 to 50 bytes`;
  if (!ID_CHARS.test(id)) return `${what} '${id}': only A-Z, 0-9 and _`;
  return null;
}

/** The ジョブ起動情報 lines tsunagi needs in HULFT (§4, §2.5). */
export function hulftJobLines(jobCommand: string, configFile?: string): { received: string; failed: string; sent: string } {
  const cfg = configFile ? ` --config ${configFile}` : '';
  const received = `${jobCommand} hulft-received --file-id $FILEID --file $FILENM --host $HOST --status $STATUS --detail $DETAIL --msg0=$MSG0`;
  return {
    received: `${received}${cfg}`,
    failed: `${received} --failed${cfg}`,
    sent: `${jobCommand} hulft-sent --file-id $FILEID --host $HOST --file $FILENM --status $STATUS --detail $DETAIL --msg0=$MSG0${cfg}`,
  };
}

export const JOB_LINE_MAX_BYTES = 200;

/** A ジョブ起動情報 line is at most 200 bytes [D14]: the lines tsunagi prints must fit, --config included. */
export function hulftJobLineIssues(settings: Pick<HulftCentreSettings, 'jobCommand'>, configFile?: string): Issue[] {
  const out: Issue[] = [];
  for (const [kind, line] of Object.entries(hulftJobLines(settings.jobCommand, configFile))) {
    const n = Buffer.byteLength(line);
    if (n > JOB_LINE_MAX_BYTES) out.push({ path: ['hulft', 'jobCommand'], message: `the ${kind} job line is ${n} bytes; HULFT takes at most ${JOB_LINE_MAX_BYTES} (shorten jobCommand or the config file's path)` });
  }
  return out;
}

/** Errors (check-config exits 2). */
export function hulftConfigIssues(config: HulftConfigView): Issue[] {
  const issues: Issue[] = [];
  const add = (path: (string | number)[], message: string) => issues.push({ path, message });
  const seen = { send: new Map<string, string>(), receive: new Map<string, string>() };
  const anyHulft = config.partners.some((p) => p.hulft || p.delivery.protocol === 'hulft');
  if (anyHulft && !config.hulft) add(['hulft'], 'partners use HULFT: set hulft.binDir and hulft.etcDir (where HULFT is installed on this host)');
  if (config.hulft) issues.push(...hulftJobLineIssues(config.hulft, config.file));
  config.partners.forEach((p, i) => {
    const at = (...rest: (string | number)[]) => ['partners', i, ...rest];
    if (p.delivery.protocol === 'hulft' && !p.hulft) {
      add(at('hulft'), 'delivery by hulft needs a hulft section (host, send definitions)');
      return;
    }
    const h = p.hulft;
    if (!h) return;
    const sendTypes = new Map<string, number>();
    h.send.forEach((d, j) => {
      const where = (...rest: (string | number)[]) => at('hulft', 'send', j, ...rest);
      const idProblem = hulftIdProblem(d.fileId, h.version);
      if (idProblem) add(where('fileId'), idProblem);
      const first = seen.send.get(d.fileId);
      if (first) add(where('fileId'), `send file ID '${d.fileId}' is already used by ${first}`);
      else seen.send.set(d.fileId, `partners[${i}].hulft.send[${j}]`);
      if (d.clear !== 'keep') add(where('clear'), `clear must be keep: the spool owns the file (HULFT ${d.clear} would ${d.clear === 'lock' ? 'lock' : 'empty or delete'} it)`);
      if (d.compression === 'deflate' && h.version < 8) add(where('compression'), `deflate needs HULFT version 8 or later (partner runs ${h.version})`);
      for (const [k, v] of [['jobs.success', d.jobs.success], ['jobs.failure', d.jobs.failure], ['group', d.group], ['formatId', d.formatId]] as const) {
        if (v === undefined) continue;
        const problem = otherIdProblem(v, k === 'group' ? 'GRPID' : k === 'formatId' ? 'FMTID' : 'job ID');
        if (problem) add(where(...k.split('.')), problem);
      }
      d.fileTypes.forEach((t, k) => {
        if (!p.receive.includes(t)) add(where('fileTypes', k), `partner ${p.id} does not receive file type ${t} (its receive list)`);
        if (sendTypes.has(t)) add(where('fileTypes', k), `file type ${t} is already sent under partners[${i}].hulft.send[${sendTypes.get(t)}]`);
        else sendTypes.set(t, j);
      });
      if ((d.transferType === 'format' || d.transferType === 'multiformat') && !d.formatId) add(where('formatId'), `${d.transferType} transfer needs formatId (the フォーマット情報 registered in HULFT; see tsunagi hulft-format LAYOUT)`);
      if (d.transferType === 'text') {
        d.fileTypes.forEach((t) => {
          const f = p.formats[t];
          if (f && f.encoding !== 'sjis') add(where('transferType'), `text transfer: tsunagi writes Shift_JIS for HULFT to convert, but formats.${t} is ${f.encoding}`);
          if (f && f.framing !== 'crlf') add(where('transferType'), `text transfer: HULFT cuts records at CR LF, but formats.${t} has framing ${f.framing}`);
          const binary = binaryFieldOf(f?.layout, t);
          if (binary) add(where('transferType'), `text transfer: ${binary} cannot go through HULFT's text conversion; use binary`);
        });
      }
    });
    if (p.delivery.protocol === 'hulft') {
      p.receive.forEach((t) => {
        if (!sendTypes.has(t)) add(at('hulft', 'send'), `no send definition for file type ${t} (the partner receives it)`);
      });
    }
    h.receive.forEach((d, j) => {
      const where = (...rest: (string | number)[]) => at('hulft', 'receive', j, ...rest);
      const idProblem = hulftIdProblem(d.fileId, h.version);
      if (idProblem) add(where('fileId'), idProblem);
      const first = seen.receive.get(d.fileId);
      if (first) add(where('fileId'), `receive file ID '${d.fileId}' is already used by ${first}`);
      else seen.receive.set(d.fileId, `partners[${i}].hulft.receive[${j}]`);
      if (d.generations === 1) add(where('generations'), 'generations: 0 (GENCTL N) or 2 to 9999 (GENMNGNO)');
      if (d.generations > 0 && Buffer.byteLength(d.fileName) > 190) add(where('fileName'), `FILENAME: at most 190 bytes with generations (is ${Buffer.byteLength(d.fileName)})`);
      for (const [k, v] of [['success', d.jobs.success], ['failure', d.jobs.failure]] as const) {
        const problem = v === undefined ? null : otherIdProblem(v, 'job ID');
        if (problem) add(where('jobs', k), problem);
      }
      d.fileTypes.forEach((t, k) => {
        if (!p.send.includes(t)) add(where('fileTypes', k), `partner ${p.id} does not send file type ${t} (its send list)`);
      });
    });
  });
  return issues;
}

/** Warnings: legal in HULFT, but not what tsunagi recommends (§1, §4, §5). */
export function hulftConfigWarnings(config: HulftConfigView): Issue[] {
  const out: Issue[] = [];
  config.partners.forEach((p, i) => {
    const h = p.hulft;
    if (!h) return;
    h.send.forEach((d, j) => {
      const where = ['partners', i, 'hulft', 'send', j];
      if (d.transferType !== 'binary' || d.codeConversion !== 'none')
        out.push({ path: [...where, 'transferType'], message: `HULFT converts (${d.transferType}, codeConversion ${d.codeConversion}); tsunagi recommends binary with codeConversion none and converts strictly itself` });
      if (!config.hulft?.dynparam && !d.group) out.push({ path: [...where, 'group'], message: 'without dynparam utlsend cannot name the host: register a 転送グループ (GRPID) holding only this host and set group' });
    });
    h.receive.forEach((d, j) => {
      const where = ['partners', i, 'hulft', 'receive', j];
      if (d.mode !== 'new') out.push({ path: [...where, 'mode'], message: `TRANSMODE ${d.mode} can ${d.mode === 'replace' ? 'overwrite a file before tsunagi took it' : 'mix two transfers in one file'}; tsunagi recommends new` });
      if (d.notify !== 'job') out.push({ path: [...where, 'notify'], message: "JOBWAIT receipt: the sender's success does not mean the file is in tsunagi's spool; tsunagi recommends job" });
      if (d.generations === 0) out.push({ path: [...where, 'generations'], message: 'no generations: every receive of this ID uses one name; tsunagi recommends generations (e.g. 9999)' });
      if (!d.jobs.success || !d.jobs.failure) out.push({ path: [...where, 'jobs'], message: 'set jobs.success and jobs.failure: tsunagi lands files only through its 集信後ジョブ (tsunagi hulft-job-line)' });
    });
  });
  return out;
}

/** How long a HULFT push may hold a file in 'sending': utlsend -sync -w N is killed at N + 60 s. */
export function hulftSendingLeaseMs(settings: Pick<HulftCentreSettings, 'syncTimeoutSeconds' | 'aliveCheckSeconds'> | undefined): number {
  const s = settings ?? HULFT_CENTRE_DEFAULTS;
  return (s.syncTimeoutSeconds + 60 + s.aliveCheckSeconds + 90) * 1000;
}

/** A packed or signed-zoned field in the layout of a file type: binary bytes text conversion would break. */
function binaryFieldOf(layout: string | undefined, fileType: string): string | null {
  let family: Family | undefined;
  try {
    family = layout ? familyOfLayoutName(layout) : familyForFileType(fileType);
  } catch {
    return null; // an unknown layout is reported where it is used
  }
  for (const l of family ? [family.header, family.data, family.trailer, family.end] : []) {
    const f = l.fields.find((x) => x.type === 'P' || x.type === 'Z');
    if (f) return `layout ${l.name} field ${f.name} (type ${f.type})`;
  }
  return null;
}
