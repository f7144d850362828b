// Sending with HULFT (配信, §2) and asking a partner to send (送信要求, §3). tsunagi does not speak
// HULFT's protocol: it runs the licensed HULFT's own commands on this host, as an argv, and reads
// their exit statuses. The attempt id travels in -msg0 to both sides' jobs and logs.
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Ledger } from '../../spool/ledger/index.ts';
import { publishFile, temporaryPathFor } from '../../spool/atomic.ts';
import { PushDeferredError, PushOutcomeUnknownError, PushRefusedError, type ProtocolClient, type PushAttempt, type PushOptions, type RemoteFile, type TransferResult } from '../contract.ts';
import { hulftSendingLeaseMs, type HulftCentreSettings, type HulftPartnerSettings, type HulftSendDef } from './config.ts';
import type { ResumeOutcome } from '../staged-push.ts';
import { classifyRc, runHulftCommand, type CommandResult, type HulftCommand } from './commands.ts';
import { checkTextTransfer } from './charset.ts';
import { insertTransfer, normaliseTransfer, updateTransfer, type HulftTransferRow } from './ledger.ts';

export interface HulftPartner {
  id: string;
  hulft: HulftPartnerSettings;
  formats: Partial<Record<string, { layout?: string; encoding: string; framing: string } | undefined>>;
}

export interface HulftClientOptions {
  settings: HulftCentreSettings;
  /** dynparam: where each attempt's hard link goes (same file system as the spool). */
  sendDir: string;
  partner: HulftPartner;
  ledger: Ledger;
  log: Logger;
}

/** msg0 is `TSG<attemptId>`: how the post-send job finds the attempt. */
export const MSG0_PREFIX = 'TSG';
const KILL_GRACE_MS = 60_000;

export function msg0For(attemptId: string): string {
  return `${MSG0_PREFIX}${attemptId}`;
}

/** The file type of an outbound file from its name (T32_...), when the caller did not say. */
function fileTypeOfName(name: string): string | undefined {
  return /^T(\d{2})_/.exec(name)?.[1];
}

export class HulftClient implements ProtocolClient {
  constructor(private readonly o: HulftClientOptions) {}

  private get host(): string {
    return this.o.partner.hulft.host;
  }

  private run(command: HulftCommand, args: string[], killAfterMs = (this.o.settings.syncTimeoutSeconds * 1000) + KILL_GRACE_MS): Promise<CommandResult> {
    this.o.log.debug({ command, args }, 'running HULFT command');
    return runHulftCommand(this.o.settings, command, args, killAfterMs);
  }

  /** utlalivecheck: only 0 (the partner's HULFT answered on that port) is relied on. */
  private async alive(port: number): Promise<CommandResult> {
    const w = this.o.settings.aliveCheckSeconds;
    return this.run('utlalivecheck', ['-h', this.host, '-p', String(port), '-w', String(w)], (w + 30) * 1000);
  }

  sendDefFor(fileType: string | null | undefined, remoteName: string): HulftSendDef {
    const type = fileType ?? fileTypeOfName(remoteName);
    const def = this.o.partner.hulft.send.find((d) => type !== undefined && d.fileTypes.includes(type));
    if (!def) throw new PushRefusedError(`partner ${this.o.partner.id}: no HULFT send definition for file type ${type ?? '?'} (${remoteName})`);
    return def;
  }

  async push(localPath: string, remoteName: string, options?: PushOptions): Promise<TransferResult> {
    const { settings, partner, ledger, log } = this.o;
    const attempt: PushAttempt | undefined = options?.attempt;
    const def = this.sendDefFor(attempt?.fileType, remoteName);
    const type = attempt?.fileType ?? fileTypeOfName(remoteName);
    const { size } = await stat(localPath);
    if (def.transferType === 'text') {
      const p = await checkTextTransfer(localPath, (type && partner.formats[type]) || {});
      if (p) throw new PushRefusedError(`HULFT text transfer refused before sending ${def.fileId}: record ${p.recordNo} byte ${p.bytePos}${p.field ? ` (field ${p.field})` : ''}: ${p.reason}`);
    }
    const alive = await this.alive(partner.hulft.ports.rcv);
    if (alive.rc !== 0) throw new PushDeferredError(`HULFT host ${this.host} did not answer on port ${partner.hulft.ports.rcv} (utlalivecheck rc ${alive.rc ?? 'killed'})`);

    const attemptId = attempt?.deliveryId !== undefined ? String(attempt.deliveryId) : randomBytes(6).toString('hex');
    const w = String(settings.syncTimeoutSeconds);
    const rowId = await insertTransfer(ledger.db, {
      direction: 'send',
      partner_id: partner.id,
      hulft_file_id: def.fileId,
      host: this.host,
      file_id: attempt?.fileId ?? null,
      delivery_id: attempt?.deliveryId ?? null,
      attempt_id: attemptId,
      msg0: msg0For(attemptId),
      size,
      outcome: 'running',
      started_at: Date.now(),
    });

    // Checkpoint resend: a retry first asks HULFT to resend the queued failed transfer.
    if (partner.hulft.resend === 'checkpoint' && attempt && attempt.attempt > 1) {
      const previous = await this.lastFailedSend(attempt.fileId, rowId);
      if (previous) {
        const file = settings.dynparam && previous.hulft_file_name ? ['-file', previous.hulft_file_name] : [];
        await updateTransfer(ledger.db, rowId, { msg0: previous.msg0, hulft_file_name: previous.hulft_file_name });
        const r = await this.run('utlsend', ['-r', this.host, '-f', def.fileId, ...file, '-sync', '-w', w]);
        if (r.rc !== 1) return this.settle(rowId, r, remoteName, def, size, attempt?.fileId);
        log.info({ partner: partner.id, fileId: def.fileId }, 'nothing in the HULFT resend queue; sending afresh');
        await updateTransfer(ledger.db, rowId, { msg0: msg0For(attemptId), hulft_file_name: null });
      }
    }

    if (settings.dynparam) {
      // One name per attempt: a late transfer of an earlier attempt never reads this one's file.
      await mkdir(this.o.sendDir, { recursive: true });
      const linkPath = path.join(this.o.sendDir, `${def.fileId}.${attemptId}`);
      await rm(linkPath, { force: true });
      await link(localPath, linkPath).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EXDEV') throw err;
        await copyFile(localPath, linkPath); // another file system: a copy does the same job
      });
      await updateTransfer(ledger.db, rowId, { hulft_file_name: linkPath });
      const r = await this.run('utlsend', ['-f', def.fileId, '-file', linkPath, '-h', this.host, '-msg0', msg0For(attemptId), '-sync', '-w', w]);
      return this.settle(rowId, r, remoteName, def, size, attempt?.fileId);
    }
    // No dynparam: HULFT sends FILENAME to the hosts of GRPID; the copy there is ours while we hold the lock.
    const release = await this.lock(def.fileName);
    try {
      const temp = temporaryPathFor(def.fileName);
      try {
        await copyFile(localPath, temp);
        await publishFile(temp, def.fileName);
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
      await updateTransfer(ledger.db, rowId, { hulft_file_name: def.fileName });
      const r = await this.run('utlsend', ['-f', def.fileId, '-msg0', msg0For(attemptId), '-sync', '-w', w]);
      return await this.settle(rowId, r, remoteName, def, size, attempt?.fileId);
    } finally {
      await release();
    }
  }

  private async lastFailedSend(fileId: string, exceptId: number): Promise<HulftTransferRow | undefined> {
    const row = await this.o.ledger
      .db('hulft_transfers')
      .where({ direction: 'send', file_id: fileId, partner_id: this.o.partner.id })
      .whereNot('id', exceptId)
      .whereIn('outcome', ['error'])
      .orderBy('id', 'desc')
      .first();
    return row ? normaliseTransfer(row) : undefined;
  }

  /** Maps utlsend's exit status (§2.4) onto a result or one of the contract's errors. */
  private async settle(rowId: number, r: CommandResult, remoteName: string, def: HulftSendDef, size: number, fileId?: string): Promise<TransferResult> {
    const { ledger, log, partner } = this.o;
    const { kind, meaning } = classifyRc(r.rc);
    const finish = (outcome: string) => updateTransfer(ledger.db, rowId, { rc: r.rc, outcome, finished_at: Date.now() });
    const what = `utlsend ${def.fileId} to ${this.host}: rc ${r.rc ?? 'killed'} (${meaning})`;
    if (kind === 'ok') {
      await finish('ok');
      if (fileId) await this.removeLinks(fileId);
      return { remoteName: `${def.fileId}@${this.host}`, bytes: size };
    }
    if (kind === 'unknown') {
      // The post-send job may have settled it already (it runs when the transfer ends).
      const row = normaliseTransfer(await ledger.db('hulft_transfers').where({ id: rowId }).first());
      if (row.status === '0') {
        await finish('ok');
        if (fileId) await this.removeLinks(fileId);
        return { remoteName: `${def.fileId}@${this.host}`, bytes: size };
      }
      if (row.status !== null) {
        await finish('error');
        throw new Error(`${what}; the post-send job reported ${row.status}-${row.detail ?? ''}`);
      }
      await finish('unknown');
      throw new PushOutcomeUnknownError(`${what}; not resent automatically: tsunagi hulft-sent settles it when HULFT's 配信後ジョブ runs`);
    }
    await finish('error');
    if (kind === 'refused' || kind === 'config') {
      if (fileId) await this.removeLinks(fileId);
      throw new PushRefusedError(kind === 'config' ? `${what}: fix the HULFT definitions or tsunagi's config (partners.${partner.id}.hulft)` : what);
    }
    if (kind === 'failed') log.error({ alert: 'hulft-unexpected-rc', partner: partner.id, fileId: def.fileId, rc: r.rc, stderr: r.stderr.slice(-500) }, 'utlsend exited with a status tsunagi does not know');
    throw new Error(what);
  }

  private async removeLinks(fileId: string): Promise<void> {
    const rows = await this.o.ledger.db('hulft_transfers').where({ direction: 'send', file_id: fileId }).select('hulft_file_name');
    for (const r of rows as { hulft_file_name: string | null }[]) {
      if (r.hulft_file_name && path.dirname(r.hulft_file_name) === path.resolve(this.o.sendDir)) await rm(r.hulft_file_name, { force: true });
    }
  }

  /** A lock file beside FILENAME, so two attempts never share the one name HULFT sends from. */
  private async lock(fileName: string): Promise<() => Promise<void>> {
    const lockPath = `${fileName}.tsunagi-lock`;
    const until = Date.now() + (this.o.settings.syncTimeoutSeconds + 120) * 1000;
    await mkdir(path.dirname(lockPath), { recursive: true });
    for (;;) {
      try {
        const fh = await open(lockPath, 'wx');
        await fh.writeFile(String(process.pid));
        await fh.close();
        return () => rm(lockPath, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (holder && !processAlive(holder)) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() > until) throw new Error(`${lockPath}: held by process ${holder || '?'} for too long`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /**
   * A push whose worker was killed during utlsend: HULFT's post-send job tells how it ended. 0
   * recorded: delivered. Another code: not delivered, push again. Nothing yet: wait for the job
   * (the caller looks again later) until utlsend's own deadline has long passed, then push again.
   */
  async resume(localPath: string, remoteName: string): Promise<ResumeOutcome> {
    const { ledger, partner, settings } = this.o;
    const file = await ledger.db('files').where({ path: localPath, direction: 'out', partner_id: partner.id }).first('id');
    const row = file ? await ledger.db('hulft_transfers').where({ direction: 'send', file_id: file.id }).orderBy('id', 'desc').first() : undefined;
    if (!row) return { delivered: false, how: 'abandoned' };
    const t = normaliseTransfer(row);
    if (t.status === '0') {
      await updateTransfer(ledger.db, t.id, { outcome: 'ok', finished_at: Date.now() });
      return { delivered: true, how: 'finished', result: { remoteName: `${t.hulft_file_id}@${this.host}`, bytes: t.size ?? (await stat(localPath)).size, note: `HULFT post-send job reported 0 (${t.msg0})` } };
    }
    if (t.status !== null || Date.now() - (t.started_at ?? 0) > hulftSendingLeaseMs(settings)) {
      await updateTransfer(ledger.db, t.id, { outcome: 'error', finished_at: Date.now() });
      return { delivered: false, how: 'abandoned' };
    }
    throw new Error(`${remoteName}: the interrupted utlsend ${t.msg0} has not been reported by HULFT's post-send job yet`);
  }

  async pull(remoteName: string): Promise<TransferResult> {
    throw new Error(`HULFT files are not pulled (${remoteName}): they arrive through tsunagi hulft-received, run by HULFT's 集信後ジョブ`);
  }

  /** Nothing to list: what a HULFT partner offers arrives through the post-receive job. */
  async list(): Promise<RemoteFile[]> {
    return [];
  }

  /** 送信要求 (§3): utlrecv for each receive definition; our HULFT receives, hulft-received lands. */
  async requestFiles(): Promise<void> {
    const { settings, partner, ledger, log } = this.o;
    await this.checkEarlierRequests();
    if (partner.hulft.receive.length === 0) return;
    const alive = await this.alive(partner.hulft.ports.obs);
    if (alive.rc !== 0) {
      log.warn({ partner: partner.id, host: this.host, port: partner.hulft.ports.obs, rc: alive.rc }, 'HULFT host did not answer on its 要求受付 port; no 送信要求 this time');
      return;
    }
    for (const def of partner.hulft.receive) {
      const requestId = randomBytes(6).toString('hex');
      const started = Date.now();
      const rowId = await insertTransfer(ledger.db, { direction: 'receive', partner_id: partner.id, hulft_file_id: def.fileId, host: this.host, attempt_id: requestId, msg0: msg0For(requestId), outcome: 'requested', started_at: started });
      const r = await this.run('utlrecv', ['-f', def.fileId, '-h', this.host, '-msg0', msg0For(requestId), '-sync', '-w', String(settings.syncTimeoutSeconds)]);
      const { kind, meaning } = classifyRc(r.rc);
      await updateTransfer(ledger.db, rowId, { rc: r.rc, finished_at: Date.now(), outcome: kind === 'ok' ? 'requested' : kind === 'unknown' ? 'unknown' : 'error' });
      if (kind === 'ok') {
        if (await this.landedSince(def.fileId, started)) await updateTransfer(ledger.db, rowId, { outcome: 'landed' });
        log.info({ partner: partner.id, fileId: def.fileId, host: this.host }, 'HULFT 送信要求 done');
      } else if (kind === 'config' || kind === 'refused') {
        log.error({ alert: 'hulft-request-refused', partner: partner.id, fileId: def.fileId, rc: r.rc, meaning }, 'utlrecv refused: check the HULFT definitions');
      } else {
        log.warn({ partner: partner.id, fileId: def.fileId, rc: r.rc, meaning }, 'utlrecv did not complete; asking again next collect');
      }
    }
  }

  private async landedSince(hulftFileId: string, since: number): Promise<boolean> {
    const row = await this.o.ledger
      .db('hulft_transfers')
      .where({ direction: 'receive', partner_id: this.o.partner.id, hulft_file_id: hulftFileId, outcome: 'landed' })
      .whereNotNull('receive_key')
      .where('created_at', '>=', since)
      .first('id');
    return row !== undefined;
  }

  /** Requests that ended 0 but brought nothing within syncTimeoutSeconds: warning hulft.pull.nolanding. */
  private async checkEarlierRequests(): Promise<void> {
    const { ledger, log, partner, settings } = this.o;
    const due = Date.now() - settings.syncTimeoutSeconds * 1000;
    const rows = (await ledger.db('hulft_transfers').where({ direction: 'receive', partner_id: partner.id, outcome: 'requested', rc: 0 }).where('started_at', '<', due)).map(normaliseTransfer);
    for (const row of rows) {
      if (await this.landedSince(row.hulft_file_id, row.started_at ?? 0)) {
        await updateTransfer(ledger.db, row.id, { outcome: 'landed' });
        continue;
      }
      await updateTransfer(ledger.db, row.id, { outcome: 'nolanding' });
      log.warn({ code: 'hulft.pull.nolanding', partner: partner.id, fileId: row.hulft_file_id, msg0: row.msg0 }, `hulft.pull.nolanding: utlrecv ${row.hulft_file_id} ended 0 but nothing landed within ${settings.syncTimeoutSeconds} s`);
    }
  }

  async close(): Promise<void> {}
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
