import { openCentre } from '../../jobs/centre.ts';
import { createLogger } from '../../jobs/log.ts';
import { rotateKeys } from '../../jobs/at-rest.ts';
import { writeNewKekFile } from '../../spool/keys.ts';
import { parseCommandArgs, printJson, UsageError, type Command } from '../cli-kit.ts';

const usage = 'tsunagi keys new FILE | tsunagi keys rotate [--encrypt-plain] [--json] [--config FILE]';

export const command: Command = {
  summary: 'encryption at rest: make a key-encryption key file (0600); re-wrap every spool file and vault key under the current one',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string' }, json: { type: 'boolean' }, 'encrypt-plain': { type: 'boolean' } }, usage);
    const [sub, ...rest] = positionals;
    if (sub === 'new') {
      if (rest.length !== 1) throw new UsageError(`expected one FILE\nusage: ${usage}`);
      const kek = await writeNewKekFile(rest[0]!);
      process.stdout.write(`wrote ${rest[0]} (mode 0600), key-encryption key ${kek.id}\n`);
      return 0;
    }
    if (sub !== 'rotate' || rest.length) throw new UsageError(`usage: ${usage}`);
    const centre = await openCentre(values.config, { log: createLogger({ level: 'warn' }) });
    try {
      const s = await rotateKeys(centre, { encryptPlain: values['encrypt-plain'] === true });
      if (values.json) printJson(s);
      else {
        process.stdout.write(`key-encryption key ${s.kek}: ${s.files} spool files, ${s.rewrapped} re-wrapped (header only), ${s.current} already current, ${s.plain} plain${s.plain ? ` (${s.encrypted} encrypted now${values['encrypt-plain'] ? '' : '; --encrypt-plain encrypts them'})` : ''}; ${s.vaultKeysRewrapped} card vault keys re-wrapped\n`);
        for (const f of s.failed) process.stdout.write(`  not re-wrapped: ${f.reason}\n`);
        if (s.unusedRetired.length) process.stdout.write(`no file uses retired key${s.unusedRetired.length > 1 ? 's' : ''} ${s.unusedRetired.join(', ')} any more: remove ${s.unusedRetired.length > 1 ? 'them' : 'it'} from encryption.retired\n`);
      }
      return s.failed.length ? 3 : 0;
    } finally {
      await centre.close();
    }
  },
};
