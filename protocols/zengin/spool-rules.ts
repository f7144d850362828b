// The listener's two spool rules, kept in one place so they are easy to read and to change:
// - duplicate transfer (0x16): the same partner already uploaded the same 全銀 file name with the
//   same sha256 (one cycle of a file = its name + its bytes; new bytes under the same name are a
//   new cycle). Decided from the audit trail's 'upload' rows, so no extra table is needed.
// - 照会: the partner gets the newest file in its outbound folder whose header says the mapped
//   file type and that it has not picked up yet (no 'download' audit row names it).
import { readdir, stat } from 'node:fs/promises';
import { openSpoolFile } from '../../spool/encrypted-file.ts';
import path from 'node:path';
import type { Ledger } from '../../spool/ledger/db.ts';
import { isTemporaryName } from '../../spool/tree.ts';

export function uploadDetail(f: { fileName: string; accessKey: string; fileType: string; sha256: string; bytes: number; records: number; landed: string }): string {
  return `file=${f.fileName} key=${f.accessKey} type=${f.fileType} sha256=${f.sha256} bytes=${f.bytes} records=${f.records} landed=${f.landed}`;
}

export function downloadDetail(f: { fileName: string; served: string; bytes: number }): string {
  return `file=${f.fileName} served=${f.served} bytes=${f.bytes}`;
}

export async function isDuplicateUpload(ledger: Ledger, partnerId: string, fileName: string, sha256: string): Promise<boolean> {
  const row = await ledger
    .db('audit')
    .where({ partner_id: partnerId, protocol: 'zengin', event: 'upload' })
    .where('detail', 'like', `file=${fileName} %sha256=${sha256} %`)
    .first('id');
  return row !== undefined;
}

async function pickedUp(ledger: Ledger, partnerId: string): Promise<Set<string>> {
  const rows: { detail: string | null }[] = await ledger.db('audit').where({ partner_id: partnerId, protocol: 'zengin', event: 'download' }).select('detail');
  const names = new Set<string>();
  for (const r of rows) {
    const m = / served=(\S+) /.exec(r.detail ?? '');
    if (m) names.add(m[1]!);
  }
  return names;
}

/** The file type in a header record: '1' + two digits, in ASCII/Shift_JIS or EBCDIC. */
export function sniffFileType(head: Buffer): string | null {
  if (head.length < 3) return null;
  if (head[0] === 0x31 && isDigit(head[1]!, 0x30) && isDigit(head[2]!, 0x30)) return String.fromCharCode(head[1]!, head[2]!);
  if (head[0] === 0xf1 && isDigit(head[1]!, 0xf0) && isDigit(head[2]!, 0xf0)) return String.fromCharCode(head[1]! - 0xc0, head[2]! - 0xc0);
  return null;
}

function isDigit(b: number, zero: number): boolean {
  return b >= zero && b <= zero + 9;
}

export interface OutboundFile {
  name: string;
  path: string;
  size: number;
}

export async function pickOutbound(ledger: Ledger, dir: string, partnerId: string, fileType: string): Promise<OutboundFile | null> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const taken = await pickedUp(ledger, partnerId);
  const candidates: (OutboundFile & { mtime: number })[] = [];
  for (const e of entries) {
    if (!e.isFile() || isTemporaryName(e.name) || taken.has(e.name)) continue;
    const p = path.join(dir, e.name);
    const fh = await openSpoolFile(p).catch(() => null);
    if (!fh) continue;
    try {
      const head = Buffer.alloc(3);
      await fh.read(head, 0, 3, 0);
      if (sniffFileType(head) !== fileType) continue;
      const s = await stat(p);
      candidates.push({ name: e.name, path: p, size: fh.size, mtime: s.mtimeMs });
    } finally {
      await fh.close();
    }
  }
  candidates.sort((a, b) => b.mtime - a.mtime || b.name.localeCompare(a.name));
  const best = candidates[0];
  return best ? { name: best.name, path: best.path, size: best.size } : null;
}
