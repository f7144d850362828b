export { openLedger, parseLedgerUrl, writeTransaction, writeStatement, sharedCommit, flushLedger, type Ledger, type Dialect, type WriteOptions, type SharedCommitOptions } from './db.ts';
export { migrateToLatest } from './migrations.ts';
export { FilesRepository, StateConflictError, type AlongsideWrite, isUniqueViolation, FILE_STATES, ACTOR, type FileRow, type FileState, type TransitionRow, type Direction, type NewFile } from './files.ts';
export { recordAudit, appendAudit, listAudit, verifyAuditChain, pruneAudit, AuditChainBroken, type AuditEntry, type AuditEvent, type AuditRow, type VerifyResult } from './audit.ts';
export { reserveSequence, reserveSequenceOnce, reserveInboundNumbers, reserveInboundNumbersIn } from './sequences.ts';
export { SELF, formatHolder, parseHolder, holderState, isSelf, processStartedAt, type Holder } from './holder.ts';
