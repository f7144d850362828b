// Loading 81 terminal-transaction files for Jmanager and reconciliation (issue 5).
import type { FileRow } from '../spool/ledger/index.ts';
import type { JobContext } from './context.ts';

export async function loadTerminalFile(ctx: JobContext, file: FileRow): Promise<number> {
  ctx.centre.log.warn({ fileId: file.id }, 'terminal transactions are not loaded yet');
  return 0;
}
