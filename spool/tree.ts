// The spool tree: where every file lives between arrival and archive.
//   <root>/partners/<id>/inbound    files a partner sent us (protocol listeners land them here)
//   <root>/partners/<id>/outbound   files for a partner (pushed by deliver, or pulled by the partner)
//   <root>/work                     files claimed by a job
//   <root>/archive/YYYY/MM/DD       everything, once done with
//   <root>/error                    files that could not even be read
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';

/** Mode of every spool folder. */
export const PRIVATE_DIR = 0o700;

const PARTNER_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function assertPartnerId(id: string): void {
  if (!PARTNER_ID.test(id)) throw new Error(`invalid partner id '${id}': letters, digits, '_' and '-', at most 64`);
}

/** A name that is still being written: uploads use one of these, then rename. */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') || name.endsWith('.part') || name.endsWith('.tmp');
}

export class SpoolTree {
  constructor(readonly root: string) {}

  partnerDir(partnerId: string): string {
    assertPartnerId(partnerId);
    return path.join(this.root, 'partners', partnerId);
  }
  inbound(partnerId: string): string {
    return path.join(this.partnerDir(partnerId), 'inbound');
  }
  outbound(partnerId: string): string {
    return path.join(this.partnerDir(partnerId), 'outbound');
  }
  get work(): string {
    return path.join(this.root, 'work');
  }
  get error(): string {
    return path.join(this.root, 'error');
  }
  archiveDir(at: Date): string {
    // Archive days follow the centre's calendar (Asia/Tokyo), not the machine's.
    const ymd = tokyoDate(at);
    return path.join(this.root, 'archive', ymd.slice(0, 4), ymd.slice(4, 6), ymd.slice(6, 8));
  }
  get archiveRoot(): string {
    return path.join(this.root, 'archive');
  }

  /**
   * Creates the tree; every folder of it is owner-only (0700), also one made earlier with a
   * wider mode (PCI DSS 3.4, 7: only the centre's own user reads card data).
   */
  async ensure(partnerIds: string[]): Promise<void> {
    const dirs = [this.root, this.work, this.error, this.archiveRoot, path.join(this.root, 'partners')];
    for (const id of partnerIds) dirs.push(this.partnerDir(id), this.inbound(id), this.outbound(id));
    for (const d of dirs) {
      await mkdir(d, { recursive: true, mode: PRIVATE_DIR });
      await chmod(d, PRIVATE_DIR);
    }
  }
}

/** YYYYMMDD in Asia/Tokyo (UTC+9, no daylight saving). */
export function tokyoDate(at: Date): string {
  return new Date(at.getTime() + 9 * 3600_000).toISOString().slice(0, 10).replaceAll('-', '');
}

/** HHMMSS in Asia/Tokyo. */
export function tokyoTime(at: Date): string {
  return new Date(at.getTime() + 9 * 3600_000).toISOString().slice(11, 19).replaceAll(':', '');
}
