// The partner's view of our servers (SFTP and FTP alike): a virtual root holding only
//   /inbound   writable: maps to spool inbound(partner)
//   /outbound  readable: maps to spool outbound(partner)
// Every client path is resolved here, and anything that could escape is refused outright rather
// than clamped, so an attempt shows up in the audit trail.
import path from 'node:path';
import { assertSafeFileName, UnsafeNameError } from '../../spool/landing.ts';

export type Area = 'inbound' | 'outbound';
export const AREAS: readonly Area[] = ['inbound', 'outbound'];

export type VirtualPath =
  | { kind: 'root'; clientPath: '/' }
  | { kind: 'dir'; area: Area; dir: string; clientPath: string }
  | { kind: 'file'; area: Area; dir: string; name: string; real: string; clientPath: string };

/** An attempt to leave the partner's folders (audited). */
export class EscapeRefused extends Error {}
/** A path that simply does not exist in the virtual tree. */
export class NotInTree extends Error {}

export interface PartnerDirs {
  inbound: string;
  outbound: string;
}

export function resolveVirtualPath(dirs: PartnerDirs, cwd: string, clientPath: string): VirtualPath {
  if (clientPath.includes('\0')) throw new EscapeRefused('NUL byte in path');
  if (clientPath.includes('\\')) throw new EscapeRefused('backslash in path');
  const joined = clientPath.startsWith('/') ? clientPath : `${cwd}/${clientPath}`;
  const parts = joined.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new EscapeRefused(`'..' in path ${JSON.stringify(clientPath)}`);
  if (parts.length === 0) return { kind: 'root', clientPath: '/' };
  const area = parts[0] as Area;
  if (!AREAS.includes(area)) throw new NotInTree(`no such folder /${parts[0]}`);
  const dir = dirs[area];
  if (parts.length === 1) return { kind: 'dir', area, dir, clientPath: `/${area}` };
  if (parts.length > 2) throw new NotInTree(`no sub-folders under /${area}`);
  const name = parts[1]!;
  try {
    assertSafeFileName(name);
  } catch (err) {
    if (err instanceof UnsafeNameError) throw new NotInTree(err.message);
    throw err;
  }
  return { kind: 'file', area, dir, name, real: path.join(dir, name), clientPath: `/${area}/${name}` };
}
