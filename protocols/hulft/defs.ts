// What the operator registers in HULFT (§1, §4): tsunagi's config printed as a utliupdt-style
// parameter file (項目=設定値, one item per line, END after each definition), and the
// フォーマット情報 items of a layout for partners that insist on HULFT's format transfer (§5).
import { familyOfLayoutName, getLayout, type Layout } from '../../formats/index.ts';
import { hulftJobLines, type HulftCentreSettings, type HulftPartnerSettings } from './config.ts';

const TRANSTYPE = { text: 'T', binary: 'B', format: 'F', multiformat: 'M' } as const;
const KJCHNGE = { sender: 'S', receiver: 'R', none: 'N' } as const;
const CLEAR = { keep: 'K', clear: 'C', delete: 'D', lock: 'L' } as const;
const COMP = { none: '0', horizontal: '1', 'vertical-horizontal': '2', deflate: '3' } as const;
const TRANSMODE = { new: 'N', replace: 'R', append: 'M' } as const;
const ABNORMAL = { delete: 'D', keep: 'K', restore: 'R' } as const;
const JOBWAIT = { job: 'J', receipt: 'T' } as const;

export function hulftParameterFile(partnerId: string, h: HulftPartnerSettings, settings: Pick<HulftCentreSettings, 'dynparam' | 'jobCommand'>, configFile?: string): string {
  const out: string[] = [];
  const block = (title: string, items: [string, string | number | undefined][], extra: string[] = []) => {
    out.push(`# ${title}`);
    for (const [k, v] of items) if (v !== undefined && v !== '') out.push(`${k}=${v}`);
    out.push(...extra, 'END', '');
  };
  out.push(
    `# HULFT definitions for tsunagi partner ${partnerId} (tsunagi hulft-defs ${partnerId})`,
    '# Register in the HULFT on the tsunagi host, e.g. utliupdt -f THIS_FILE -r, or through HULFT\'s console.',
    '# tsunagi does not speak HULFT\'s protocol: a licensed HULFT moves the files; tsunagi runs its commands.',
    `# dynparam (動的パラメータ指定) is ${settings.dynparam ? 'on: utlsend names the file and host (-file, -h)' : 'off: utlsend sends FILENAME to the hosts of GRPID'}.`,
    '',
  );
  block(`詳細ホスト情報: the partner's HULFT (its 集信 port ${h.ports.rcv}, 要求受付 port ${h.ports.obs}, HULFT version ${h.version})`, [
    ['HOST', h.host],
    ['PORTNO', h.ports.rcv],
    ['REQPORTNO', h.ports.obs],
  ]);
  const groups = new Set<string>();
  for (const d of h.send) {
    if (d.group) groups.add(d.group);
    block(`配信管理情報: file types ${d.fileTypes.join(', ')} to ${partnerId}`, [
      ['SNDFILE', d.fileId],
      ['FILENAME', d.fileName],
      ['TRANSTYPE', TRANSTYPE[d.transferType]],
      ['KJCHNGE', KJCHNGE[d.codeConversion]],
      ['COMP', COMP[d.compression]],
      ['CLEAR', CLEAR[d.clear]],
      ['GRPID', d.group],
      ['FMTID', d.formatId],
      ['SHIFTTRANSACT', d.shiftCode],
      ['JOBID', d.jobs.success],
      ['EJOBID', d.jobs.failure],
    ]);
  }
  for (const g of groups) block(`転送グループ情報: only ${h.host}`, [['GRPID', g], ['SERVER', h.host]]);
  for (const d of h.receive) {
    block(`集信管理情報: file types ${d.fileTypes.join(', ')} from ${partnerId}`, [
      ['RCVFILE', d.fileId],
      ['FILENAME', d.fileName],
      ['TRANSMODE', TRANSMODE[d.mode]],
      ['ABNORMAL', ABNORMAL[d.onError]],
      ['GENCTL', d.generations > 0 ? 'Y' : 'N'],
      ['GENMNGNO', d.generations > 0 ? d.generations : undefined],
      ['JOBWAIT', JOBWAIT[d.notify]],
      ['CODESET', d.codeSet],
      ['JOBID', d.jobs.success],
      ['EJOBID', d.jobs.failure],
    ]);
  }
  const lines = hulftJobLines(settings.jobCommand, configFile);
  const jobs = new Map<string, string>();
  for (const d of h.receive) {
    if (d.jobs.success) jobs.set(d.jobs.success, lines.received);
    if (d.jobs.failure && d.jobs.failure !== d.jobs.success) jobs.set(d.jobs.failure, lines.failed);
  }
  for (const d of h.send) for (const j of [d.jobs.success, d.jobs.failure]) if (j && !jobs.has(j)) jobs.set(j, lines.sent);
  for (const [id, line] of jobs) block(`ジョブ起動情報: ${line.includes('hulft-sent') ? 'post-send (配信後ジョブ)' : line.includes('--failed') ? 'post-receive failure (集信異常時ジョブ)' : 'post-receive (集信後ジョブ)'}`, [['JOB', id]], [line]);
  return out.join('\n');
}

export interface FormatItem {
  recordType: string;
  layout: string;
  field: string;
  offset: number;
  length: number;
  ourType: string;
  hulftType: string;
}

/** §5: C→X, K→N (M when SO/SI framed, as in EBCDIC), N→9, P→P, Z→S. */
export function hulftItemType(type: string, soSiFramed: boolean): string {
  switch (type) {
    case 'C':
      return 'X';
    case 'K':
      return soSiFramed ? 'M' : 'N';
    case 'N':
      return '9';
    case 'P':
      return 'P';
    case 'Z':
      return 'S';
    default:
      return '?';
  }
}

/** The フォーマット情報 items of a layout, or of every record layout of a family (multiformat). */
export function hulftFormatItems(name: string, encoding?: string): FormatItem[] {
  let layouts: Layout[];
  try {
    layouts = [getLayout(name)];
  } catch {
    const f = familyOfLayoutName(name);
    layouts = [f.header, f.data, f.trailer, f.end];
  }
  const items: FormatItem[] = [];
  for (const l of layouts) {
    const enc = encoding ?? l.encoding;
    const soSi = enc === 'ebcdic' || enc === 'ebcdic-kana';
    for (const f of l.fields) items.push({ recordType: l.recordType, layout: l.name, field: f.name, offset: f.offset, length: f.length, ourType: f.type, hulftType: hulftItemType(f.type, soSi) });
  }
  return items;
}
