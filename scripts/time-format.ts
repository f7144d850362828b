import { UsageError } from './cli-kit.ts';

/** Epoch-ms bounds of one Asia/Tokyo calendar day. */
export function tokyoDayRange(yyyymmdd: string): { from: number; to: number } {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(yyyymmdd);
  const from = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - 9 * 3600_000 : NaN;
  if (!m || Number.isNaN(from) || new Date(from + 9 * 3600_000).getUTCDate() !== Number(m[3])) throw new UsageError(`date '${yyyymmdd}': expected a real YYYYMMDD`);
  return { from, to: from + 86400_000 };
}

/** 2026-11-26 15:04:05 JST */
export function formatTokyo(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  return new Date(ms + 9 * 3600_000).toISOString().slice(0, 19).replace('T', ' ');
}
