// The small contracts every protocol implements. A protocol never knows about queues or jobs:
// a client moves bytes to and from a partner; a listener lands what partners send in the spool.
import type { Logger } from 'pino';
import type { SpoolTree } from '../spool/tree.ts';
import type { Ledger } from '../spool/ledger/db.ts';
import type { PushJournal, PushPhase, ResumeOutcome } from './staged-push.ts';
import type { LandingLimits } from '../spool/landing.ts';

export interface RemoteFile {
  name: string;
  size: number;
  modifiedAt?: number;
}

export interface TransferResult {
  remoteName: string;
  bytes: number;
  /** sha256 of what the partner holds, when the protocol could check it. */
  verifiedSha256?: string;
  /** What was seen after the commit (e.g. 'taken by the partner at once'), for the ledger. */
  note?: string;
}

export interface PushOptions {
  /** Told the temporary name and each step before it happens; see protocols/staged-push.ts. */
  journal?: PushJournal;
  /** The temporary name to use (the caller may have recorded it already); default a fresh one. */
  tempName?: string;
  /** Which delivery attempt this is (HULFT carries its id in msg0). */
  attempt?: PushAttempt;
}

/** A push that a kill interrupted, as its journal recorded it. */
export interface InterruptedPush {
  phase: PushPhase;
  tempName: string;
}

/** Our side calling a partner (card company centre, merchant host). One operation at a time. */
export interface ProtocolClient {
  /**
   * Sends a local file so that it appears at the partner under `remoteName`, whole or not at all
   * (temporary name then rename where the protocol allows), and verifies the size afterwards.
   * Pushing the same file twice to the same name must leave one copy (idempotent retry).
   */
  push(localPath: string, remoteName: string, options?: PushOptions): Promise<TransferResult>;
  /**
   * Finishes an interrupted push instead of repeating it, looking at the partner's side first
   * (see resumeStagedPush): delivered, or nothing of it at the partner any more (push again).
   * A client without it cannot tell, and an interrupted push of its protocol is pushed again.
   */
  resume?(localPath: string, remoteName: string, interrupted: InterruptedPush): Promise<ResumeOutcome>;
  /** Fetches `remoteName` into `localPath` (written whole, then renamed by the caller's landing). */
  pull(remoteName: string, localPath: string): Promise<TransferResult>;
  /** Files the partner offers us. */
  list(): Promise<RemoteFile[]>;
  /**
   * Asks the partner to send what it offers (HULFT 送信要求); the files arrive through our own
   * receiving side, not through pull. Optional: only protocols that work this way have it.
   */
  requestFiles?(): Promise<void>;
  close(): Promise<void>;
}

/** What a listener needs from the centre: where to land files, whom to audit, how to log. */
export interface ListenerContext {
  spool: SpoolTree;
  ledger: Ledger;
  log: Logger;
  /** Called after a file was committed to a partner's inbound folder (the caller may enqueue ingest). */
  onLanded?(partnerId: string, finalPath: string): void | Promise<void>;
  /** Called after a partner downloaded a file from its outbound folder (the caller records the pickup). */
  onPickedUp?(partnerId: string, fileName: string, bytes: number): void | Promise<void>;
  /** Size limit and free-space reserve for this partner's uploads (default: none). */
  limitsFor?(partnerId: string): LandingLimits;
}

/** Our server that partners call (SFTP, FTP, 全銀 secondary, ...). */
export interface ProtocolListener {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The bound port, once started (tests bind to port 0). */
  readonly port: number;
  /** Connections open now (metrics). */
  connections?(): number;
}

/** Which delivery attempt a push is (a protocol that tags its transfers, like HULFT's msg0, uses it). */
export interface PushAttempt {
  fileId: string;
  attempt: number;
  deliveryId?: number;
  fileType?: string | null;
}

/** The push could not start (the partner is not answering): the file stays ready, no attempt is counted. */
export class PushDeferredError extends Error {}
/** The partner or our own side refuses for a reason a retry cannot fix (a config error): fail now, alert. */
export class PushRefusedError extends Error {}
/** Nobody knows whether the transfer happened (a timeout; it may still complete): no automatic resend. */
export class PushOutcomeUnknownError extends Error {}
