// The spool tree: where every file lives between arrival and archive.
//   <root>/partners/<id>/inbound    files a partner sent us (protocol listeners land them here)
//   <root>/partners/<id>/outbound   files for a partner (pushed by deliver, or pulled by the partner)
//   <root>/work                     files claimed by a job
//   <root>/archive/YYYY/MM/DD       everything, once done with
//   <root>/error                    files that could not even be read
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

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

  async ensure(partnerIds: string[]): Promise<void> {
    await Promise.all([this.work, this.error, this.archiveRoot].map((d) => mkdir(d, { recursive: true })));
    for (const id of partnerIds) {
      await mkdir(this.inbound(id), { recursive: true });
      await mkdir(this.outbound(id), { recursive: true });
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
