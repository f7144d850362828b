// A private PostgreSQL server for tests that stop and start it (never the machine's server on
// 5432): initdb in a temp folder, pg_ctl on a port of our own, trust auth on 127.0.0.1 only.
// initdb refuses to run as root, so as root the server runs as the `postgres` account (runuser).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';

export interface PrivatePostgres {
  port: number;
  /** A connection URL for database `name` on it. */
  url(name: string): string;
  createDatabase(name: string): Promise<void>;
  start(): Promise<void>;
  /** pg_ctl stop: 'immediate' is a crash as far as clients can tell (no goodbye, recovery at the next start). */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  dispose(): Promise<void>;
}

/** The folder of the newest installed PostgreSQL's binaries, or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : undefined;
}

function run(argv: string[], asPostgres: boolean): Promise<string> {
  const [cmd, ...args] = asPostgres ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (out += d));
    child.once('error', reject);
    // 'close', not 'exit': the output may still be arriving when the process has exited
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${argv.join(' ')} exited ${code}: ${out.slice(-1500)}`))));
  });
}

export async function startPrivatePostgres(port: number): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql');
  const asPostgres = userInfo().uid === 0;
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-private-pg-'));
  if (asPostgres) {
    const { uid, gid } = await idOf('postgres');
    await chown(dir, uid, gid);
  }
  const data = path.join(dir, 'data');
  await run([path.join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], asPostgres);
  // The socket in our folder (not /var/run/postgresql, which the machine's server uses); fsync off:
  // the test stops the server, it does not pull the power.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  const pgCtl = (...args: string[]) => run([path.join(bin, 'pg_ctl'), '-D', data, '-l', path.join(dir, 'server.log'), ...args], asPostgres);
  const server: PrivatePostgres = {
    port,
    url: (name) => `postgres://postgres@127.0.0.1:${port}/${name}`,
    async createDatabase(name) {
      await run([path.join(bin, 'createdb'), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', name], false);
    },
    async start() {
      await pgCtl('-w', '-t', '60', '-o', options, 'start');
    },
    async stop(mode) {
      await pgCtl('-w', '-t', '60', '-m', mode, 'stop');
    },
    async dispose() {
      await pgCtl('-w', '-m', 'immediate', 'stop').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

async function idOf(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run(['id', '-u', user], false), run(['id', '-g', user], false)]);
  if (!/^\d+$/.test(uid.trim()) || !/^\d+$/.test(gid.trim())) throw new Error(`no uid/gid for ${user}: '${uid}' '${gid}'`);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}
