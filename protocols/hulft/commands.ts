// Runs HULFT's own commands (utlsend, utlrecv, utlalivecheck) as an argv, never through a shell,
// with HULPATH and HULEXEP exported, and kills one that outlives its deadline.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { HulftCentreSettings } from './config.ts';

export interface CommandResult {
  /** Exit status; null when the command was killed or died of a signal. */
  rc: number | null;
  killed: boolean;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  tookMs: number;
}

export type HulftCommand = 'utlsend' | 'utlrecv' | 'utlalivecheck';

export async function runHulftCommand(settings: Pick<HulftCentreSettings, 'binDir' | 'etcDir'>, command: HulftCommand, args: string[], killAfterMs: number): Promise<CommandResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(settings.binDir, command), args, {
      env: { ...process.env, HULPATH: settings.etcDir, HULEXEP: settings.binDir },
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-4000)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, killAfterMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command} from ${settings.binDir}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ rc: killed ? null : code, killed, signal, stdout, stderr, tookMs: Date.now() - started });
    });
  });
}

/** What utlsend / utlrecv exit statuses mean to tsunagi (spec §2.4). */
export type RcClass = 'ok' | 'nothing-queued' | 'refused' | 'unknown' | 'retry' | 'config' | 'failed';

export function classifyRc(rc: number | null): { kind: RcClass; meaning: string } {
  switch (rc) {
    case null:
      return { kind: 'unknown', meaning: 'killed after the -w deadline; the transfer may still complete' };
    case 0:
      return { kind: 'ok', meaning: 'transfer done' };
    case 1:
      return { kind: 'nothing-queued', meaning: 'nothing matching in 再配信待ち (the resend queue)' };
    case 2:
      return { kind: 'refused', meaning: 'request not issued (check parameters)' };
    case 4:
      return { kind: 'unknown', meaning: 'timeout (utlwait or -w); the transfer may still succeed' };
    case 5:
      return { kind: 'retry', meaning: 'memory error' };
    case 6:
      return { kind: 'config', meaning: '同報 (broadcast) with CLEAR C/D/L' };
    case 7:
      return { kind: 'retry', meaning: 'interrupted by a signal' };
    case 8:
      return { kind: 'retry', meaning: 'status file error' };
    case 9:
      return { kind: 'retry', meaning: '配信デーモン (send daemon) not running' };
    case 10:
      return { kind: 'retry', meaning: 'cannot write under HULPATH' };
    case 11:
      return { kind: 'config', meaning: 'file ID not in 配信管理情報' };
    case 21:
      return { kind: 'retry', meaning: 'every transfer failed (codes in 配信履歴)' };
    default:
      return { kind: 'failed', meaning: `unexpected exit status ${rc}` };
  }
}
