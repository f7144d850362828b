// `tsunagi users add|disable|enable|reset|list`: portal accounts. A new or reset account's password
// (and TOTP secret, with its otpauth:// URI for an authenticator app) is printed once, never stored.
import { readFileSync } from 'node:fs';
import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { UsersRepository, UserError, type NewAccount } from '../../web/users.ts';
import { otpauthUri } from '../../web/auth/totp.ts';
import { formatTable, parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';
import { formatTokyo } from '../time-format.ts';

const usage = [
  'tsunagi users add USER (--partner ID | --operator) [--totp] [--password-file FILE] [--json] [--config FILE]',
  '       tsunagi users reset USER [--totp] [--password-file FILE] [--json] [--config FILE]',
  '       tsunagi users disable USER | enable USER [--config FILE]',
  '       tsunagi users list [--partner ID] [--json] [--config FILE]',
].join('\n');

function printAccount(a: NewAccount, issuer: string, json: boolean | undefined): void {
  const totpUri = a.totpSecret ? otpauthUri(issuer, a.username, a.totpSecret) : null;
  if (json) return printJson({ username: a.username, password: a.password, totpSecret: a.totpSecret, totpUri });
  process.stdout.write(`user      ${a.username}\npassword  ${a.password}\n`);
  if (a.totpSecret) process.stdout.write(`totp      ${a.totpSecret}\n          ${totpUri}\n`);
  process.stdout.write('(shown once: hand them over safely)\n');
}

export const command: Command = {
  summary: 'portal users: add, reset (new password, --totp for a new second factor), disable, enable, list',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseCommandArgs(
      rest,
      { config: { type: 'string' }, partner: { type: 'string' }, operator: { type: 'boolean' }, totp: { type: 'boolean' }, 'password-file': { type: 'string' }, json: { type: 'boolean' } },
      usage,
    );
    if (!sub || !['add', 'reset', 'disable', 'enable', 'list'].includes(sub)) throw new UsageError(`expected add, reset, disable, enable or list\nusage: ${usage}`);
    if (sub !== 'list' && positionals.length !== 1) throw new UsageError(`expected one USER\nusage: ${usage}`);
    const password = values['password-file'] ? readFileSync(values['password-file'], 'utf8').trim() : undefined;
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn', destination: process.stderr }) });
    const users = new UsersRepository(centre.ledger);
    const issuer = `tsunagi ${centre.config.centre.name}`;
    try {
      const username = positionals[0]!;
      if (sub === 'add') printAccount(await users.add(centre.config, { username, partnerId: values.partner, operator: values.operator, totp: values.totp, password }), issuer, values.json);
      else if (sub === 'reset') printAccount(await users.reset(username, { totp: values.totp, password }), issuer, values.json);
      else if (sub === 'disable' || sub === 'enable') {
        await users.setDisabled(username, sub === 'disable');
        process.stdout.write(`user ${username} ${sub}d\n`);
      } else {
        const rows = (await users.list(values.partner)).map((u) => ({ user: u.username, partner: u.partner_id ?? '-', role: u.role, totp: u.totp_secret ? 'yes' : 'no', disabled: u.disabled ? 'yes' : 'no', locked: u.locked_until && u.locked_until > Date.now() ? formatTokyo(u.locked_until) : '', last_login: u.last_login_at ? formatTokyo(u.last_login_at) : '' }));
        if (values.json) for (const r of rows) printJson(r);
        else process.stdout.write(formatTable(rows, ['user', 'partner', 'role', 'totp', 'disabled', 'locked', 'last_login']));
      }
      return 0;
    } catch (err) {
      if (err instanceof UserError) throw new UsageError(err.message);
      throw err;
    } finally {
      await centre.close();
    }
  },
};
