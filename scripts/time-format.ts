import { UsageError } from './cli-kit.ts';
import { parseYmd } from '../jobs/jmanager/periods.ts';

/** Epoch-ms bounds of one Asia/Tokyo calendar day. */
export function tokyoDayRange(yyyymmdd: string): { from: number; to: number } {
  let from: number;
  try {
    from = parseYmd(yyyymmdd) - 9 * 3600_000;
  } catch {
    throw new UsageError(`date '${yyyymmdd}': expected a real YYYYMMDD`);
  }
  return { from, to: from + 86400_000 };
}

/** 2026-11-26 15:04:05 JST */
export function formatTokyo(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  return new Date(ms + 9 * 3600_000).toISOString().slice(0, 19).replace('T', ' ');
}
