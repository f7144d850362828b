// Where the route job hands utility work over: 21 and 23 files from utilities, the utilities'
// records in card companies' 33 and 42 files, and the invalid-card lists (51, 52).
import type { FileRow } from '../../spool/ledger/index.ts';
import type { PartnerConfig } from '../config.ts';
import type { JobContext } from '../context.ts';
import { routeBilling } from './billing.ts';
import { routeRegistration } from './registration.ts';
import { answerBillingResults, type UtilityAnswers } from './results.ts';
import { applyValidityResponses, recordInvalidCards } from './validity.ts';
import { utilities } from './common.ts';

export async function routeUtilityFile(ctx: JobContext, file: FileRow, sender: PartnerConfig, skip: Set<number>): Promise<string[]> {
  if (sender.role !== 'utility') throw new Error(`file type ${file.file_type} comes only from utilities, not from ${sender.id}`);
  return file.file_type === '21' ? routeRegistration(ctx, file, sender, skip) : routeBilling(ctx, file, sender, skip);
}

/** 33 from a card company: the 24 lines of the utilities' bills in it. */
export async function utilityAnswersFor(ctx: JobContext, file: FileRow, sender: PartnerConfig, skip: Set<number>): Promise<UtilityAnswers | undefined> {
  if (file.file_type !== '33' || utilities(ctx).length === 0) return undefined;
  return answerBillingResults(ctx, file, sender, skip);
}

/** 42: vault updates and 22 events; 51/52: the invalid-card list. Returns outbound file ids. */
export async function utilityEffectsOf(ctx: JobContext, file: FileRow, sender: PartnerConfig, skip: Set<number>): Promise<string[]> {
  if (utilities(ctx).length === 0) return [];
  if (file.file_type === '42') return applyValidityResponses(ctx, file, sender, skip);
  if (file.file_type === '51' || file.file_type === '52') await recordInvalidCards(ctx, file, sender, skip);
  return [];
}
