// `tsunagi serve` as a child process for the security tests: a real centre whose death (out of
// memory, an uncaught error) the test can see, with its log lines collected.
import { spawn, type ChildProcess } from 'node:child_process';
import { TSUNAGI_BIN } from './crash.ts';

export interface ServeProcess {
  child: ChildProcess;
  /** Resolves when serve logged 'tsunagi serving'. */
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

export function startServe(configFile: string, options: { env?: Record<string, string>; nodeArgs?: string[] } = {}): ServeProcess {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), TSUNAGI_BIN, 'serve', '--config', configFile], {
    env: { ...process.env, TSUNAGI_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 400_000) out = out.slice(-200_000);
    if (out.includes('"tsunagi serving"')) resolveReady();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void exited.then(({ code, signal }) => rejectReady(new Error(`serve exited (${code ?? signal}) before it was ready:\n${out.slice(-3000)}`)));
  ready.catch(() => undefined);
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    ready,
    exited,
    output: () => out,
    alive,
    async stop() {
      if (alive()) child.kill('SIGTERM');
      const timer = setTimeout(() => alive() && child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
