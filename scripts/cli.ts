// Entry point of the `tsunagi` CLI: dispatches to one module per command.
import { EXIT_USAGE, UsageError, type Command } from './cli-kit.ts';
import { ConfigError } from '../jobs/config.ts';
import { redact } from '../jobs/log.ts';
import { BusinessDateError } from '../jobs/business-day.ts';
import { endQuietlyOnClosedPipe } from './lib/whole-output.ts';
import { packageVersion } from './lib/supervision.ts';
import { StartupError } from './lib/startup.ts';
import { QueueUnavailableError } from '../jobs/queue-wait.ts';
import { KeyError } from '../spool/keys.ts';

const commands: Record<string, () => Promise<{ command: Command }>> = {
  init: () => import('./commands/init.ts'),
  'check-config': () => import('./commands/check-config.ts'),
  files: () => import('./commands/files.ts'),
  show: () => import('./commands/show.ts'),
  resend: () => import('./commands/resend.ts'),
  purge: () => import('./commands/purge.ts'),
  audit: () => import('./commands/audit.ts'),
  validate: () => import('./commands/validate.ts'),
  convert: () => import('./commands/convert.ts'),
  gen: () => import('./commands/gen.ts'),
  serve: () => import('./commands/serve.ts'),
  worker: () => import('./commands/worker.ts'),
  cycle: () => import('./commands/cycle.ts'),
  demo: () => import('./commands/demo.ts'),
  jmanager: () => import('./commands/jmanager.ts'),
  reconcile: () => import('./commands/reconcile.ts'),
  users: () => import('./commands/users.ts'),
  'hulft-received': () => import('./commands/hulft-received.ts'),
  'hulft-sent': () => import('./commands/hulft-sent.ts'),
  'hulft-defs': () => import('./commands/hulft-defs.ts'),
  'hulft-job-line': () => import('./commands/hulft-job-line.ts'),
  'hulft-format': () => import('./commands/hulft-format.ts'),
  utility: () => import('./commands/utility.ts'),
  keys: () => import('./commands/keys.ts'),
  export: () => import('./commands/export.ts'),
};

async function help(): Promise<string> {
  const lines = ['tsunagi: batch file transfer and reconciliation for card-payment data', '', 'usage: tsunagi COMMAND [options]', '', 'commands:'];
  for (const [name, load] of Object.entries(commands)) {
    const { command } = await load();
    lines.push(`  ${name.padEnd(14)} ${command.summary}`);
  }
  lines.push('', 'global: --config FILE (or TSUNAGI_CONFIG; default ./tsunagi.yaml); tsunagi --version', 'exit codes: 0 ok, 1 could not run (a listener, the ledger or Redis failed; one line says which), 2 bad usage or config, 3 some file or record rejected or failed, 4 the audit chain is broken (audit verify)', '');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  endQuietlyOnClosedPipe();
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`tsunagi ${packageVersion()}\n`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(await help());
    return name ? 0 : EXIT_USAGE;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`tsunagi: unknown command '${name}'\n\n${await help()}`);
    return EXIT_USAGE;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.summary}\nusage: ${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    // A key file others can read, or a key that is missing: the centre refuses to start (PCI DSS 3.6).
    if (err instanceof UsageError || err instanceof ConfigError || err instanceof BusinessDateError || err instanceof KeyError) {
      process.stderr.write(`tsunagi ${name}: ${redact(err.message)}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof StartupError || err instanceof QueueUnavailableError) {
      process.stderr.write(`tsunagi ${name}: ${redact(err.message)}\n`);
      // Whatever a half-started library left running must not keep the process alive.
      setTimeout(() => process.exit(1), 3000).unref();
      return 1;
    }
    // The machine said no (a refused connection, a missing file): one line, not a stack trace.
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      process.stderr.write(`tsunagi ${name}: ${redact((err as Error).message.split('\n')[0]!)}\n`);
      setTimeout(() => process.exit(1), 3000).unref();
      return 1;
    }
    process.stderr.write(`tsunagi ${name}: ${redact((err as Error).stack ?? String(err))}\n`);
    return 1;
  }
}
