// The one delivery rule every folder-like push protocol shares (local, SFTP, FTP):
//
//   1. the bytes go to a temporary name the partner's pickup skips (NAME.<unique>.part);
//   2. the temporary's size is checked at the partner;
//   3. the temporary is renamed to the final name. Once that rename has succeeded the file is
//      DELIVERED, whatever we see afterwards: a partner that polls its folder may take the file
//      the instant it appears, so a final name that is gone after the rename means "taken", never
//      "failed" (a retry would hand the partner a second copy).
//
// Before each step the push tells its journal (the ledger's deliveries row) what it is about to
// do, with the temporary name, so that a push cut off by a kill is finished, not repeated: see
// resumeStagedPush. 全銀TCP/IP is not folder-like; it follows the same rule through its own
// protocol (終了回答 0x00 is the rename; 再送要求 and the partner's duplicate answer 0x16 the
// look at the partner's side), in protocols/zengin/client.ts.
import type { TransferResult } from './contract.ts';

/** The few operations a staged push needs from a partner's folder. Names are the folder's own. */
export interface RemoteFolder {
  /** Size of `name`, or undefined when it is not there. */
  size(name: string): Promise<number | undefined>;
  /** Writes the local file to `name` (which is a temporary name). */
  upload(localPath: string, name: string): Promise<void>;
  /** Renames `from` to `to`, replacing an earlier `to` (a resend under the same name). */
  rename(from: string, to: string): Promise<void>;
  /** Removes `name`; nothing there is not an error. */
  remove(name: string): Promise<void>;
}

/**
 * Where a push stands, as its journal records it:
 * - `staging`: the temporary may exist (whole or not); the final name is not ours yet;
 * - `committing`: the temporary was whole at the partner and the rename is being issued.
 */
export type PushPhase = 'staging' | 'committing';

export interface PushJournal {
  /**
   * Must be durable when it resolves: a recovery decides from what it recorded. An empty
   * `tempName` says no temporary of this push is left at the partner.
   */
  record(phase: PushPhase, tempName: string): Promise<void>;
}

export interface StagedPushOptions {
  /** The temporary name to use (the caller records it; default a fresh one). */
  tempName: string;
  journal?: PushJournal;
  /** For error messages: 'sftp', 'ftp', 'local'. */
  protocol: string;
}

/** The temporary at the partner is not what we sent: not delivered. */
export class PushVerifyError extends Error {}

/**
 * The rename was issued but neither its answer nor the temporary could be seen (the connection
 * died): the push may or may not have been delivered. The caller must resume it (resumeStagedPush
 * on a new connection) before anything is pushed again.
 */
export class PushInDoubtError extends Error {
  constructor(
    message: string,
    readonly tempName: string,
  ) {
    super(message);
  }
}

/** Runs the rule above. Throws only when the file is not delivered (or the partner holds a wrong copy). */
export async function stagedPush(folder: RemoteFolder, localPath: string, size: number, remoteName: string, options: StagedPushOptions): Promise<TransferResult> {
  const { tempName, journal, protocol } = options;
  await journal?.record('staging', tempName);
  try {
    await folder.upload(localPath, tempName);
    const staged = await folder.size(tempName);
    if (staged !== size) throw new PushVerifyError(`${protocol} push ${remoteName}: ${staged ?? 'no'} bytes at the partner, ${size} sent`);
  } catch (err) {
    await discard(folder, tempName, journal);
    throw err;
  }
  await journal?.record('committing', tempName);
  try {
    await folder.rename(tempName, remoteName);
  } catch (err) {
    // The rename may have happened even though we got no answer (a dropped connection). The
    // temporary tells: still there means it did not; gone means it did.
    const left = await folder.size(tempName).catch(() => 'unknown' as const);
    if (left === undefined) return afterRename(folder, remoteName, size, protocol);
    // Not delivered: say so in the journal before the temporary goes, so a kill in between is
    // not read as "renamed".
    if (left === 'unknown') throw new PushInDoubtError(`${protocol} push ${remoteName}: rename in doubt: ${(err as Error).message}`, tempName);
    await journal?.record('staging', tempName);
    await discard(folder, tempName, journal);
    throw err;
  }
  return afterRename(folder, remoteName, size, protocol);
}

/** Removes a temporary; once it is surely gone the journal forgets its name (an empty name). */
async function discard(folder: RemoteFolder, tempName: string, journal: PushJournal | undefined): Promise<void> {
  try {
    await folder.remove(tempName);
  } catch {
    return; // left for the next attempt to remove: the journal still names it
  }
  await journal?.record('staging', '').catch(() => undefined);
}

/** After a successful rename: the final name is ours with the right size, or the partner took it. */
async function afterRename(folder: RemoteFolder, remoteName: string, size: number, protocol: string): Promise<TransferResult> {
  const landed = await folder.size(remoteName).catch(() => undefined);
  if (landed !== undefined && landed !== size) {
    // Something else sits under our name (a partner's own file, a concurrent writer): the rename
    // succeeded, so ours was delivered; the partner holds a different file now. Not a retry case.
    return { remoteName, bytes: size, note: `${protocol}: ${landed} bytes under ${remoteName} after the rename (ours was ${size}); taken or replaced by the partner` };
  }
  return { remoteName, bytes: size, note: landed === undefined ? 'taken by the partner at once' : undefined };
}

export type ResumeOutcome =
  /** The push had completed (renamed; perhaps taken since): record it as sent. */
  | { delivered: true; how: 'renamed' | 'finished'; result: TransferResult }
  /** Nothing of it reached the final name; any temporary was removed: push again. */
  | { delivered: false; how: 'abandoned' };

/**
 * Finishes a push that a kill interrupted, from what its journal recorded, by looking at the
 * partner's side first:
 * - `staging`: the rename was never issued, so the final name cannot hold this push; the
 *   temporary (whole or torn) is removed and the file is pushed again.
 * - `committing`: the temporary was whole. Still there: the rename did not happen; do it now.
 *   Gone: the rename happened (the final name holds it, or the partner took it already).
 */
export async function resumeStagedPush(folder: RemoteFolder, remoteName: string, size: number, phase: PushPhase, tempName: string, protocol: string): Promise<ResumeOutcome> {
  if (!tempName) {
    // Nothing of it left at the partner that we know of; a commit always has a name.
    if (phase === 'staging') return { delivered: false, how: 'abandoned' };
    throw new Error(`${protocol} resume ${remoteName}: a commit without a temporary name`);
  }
  const left = await folder.size(tempName);
  if (phase === 'staging' || (left !== undefined && left !== size)) {
    if (left !== undefined) await folder.remove(tempName);
    return { delivered: false, how: 'abandoned' };
  }
  if (left === undefined) return { delivered: true, how: 'renamed', result: await afterRename(folder, remoteName, size, protocol) };
  await folder.rename(tempName, remoteName);
  return { delivered: true, how: 'finished', result: await afterRename(folder, remoteName, size, protocol) };
}
