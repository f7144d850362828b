// The running centre: config, ledger, spool tree and logger, opened once and shared by every job.
import type { Logger } from 'pino';
import { loadConfig, configPath, type TsunagiConfig, type PartnerConfig } from './config.ts';
import { createLogger } from './log.ts';
import { openLedger, FilesRepository, type Ledger } from '../spool/ledger/index.ts';
import { SpoolTree } from '../spool/tree.ts';
import { registerSpoolKeys } from '../spool/encrypted-file.ts';
import type { KeyRing } from '../spool/keys.ts';
import { loadKeyRing } from './at-rest.ts';

export interface Centre {
  config: TsunagiConfig;
  ledger: Ledger;
  files: FilesRepository;
  spool: SpoolTree;
  /** The key ring of encryption at rest, when `encryption:` is configured. */
  keys?: KeyRing;
  log: Logger;
  partner(id: string): PartnerConfig;
  close(): Promise<void>;
}

export async function openCentre(config: TsunagiConfig | string | undefined, options: { log?: Logger } = {}): Promise<Centre> {
  const cfg = typeof config === 'object' ? config : loadConfig(config);
  const log = options.log ?? createLogger();
  // First: a key file that others can read refuses the start (KeyError) before anything opens.
  // (A `vault:` block alone keys the card vault only, loaded when the vault is first used.)
  const keys = cfg.encryption ? loadKeyRing(cfg) : undefined;
  const ledger = await openLedger(cfg.ledger, { baseDir: cfg.baseDir, log });
  const spool = new SpoolTree(configPath(cfg, cfg.spoolRoot));
  await spool.ensure(cfg.partners.map((p) => p.id));
  // From here on every file written under the spool is encrypted (spool/encrypted-file.ts).
  const unregister = keys ? registerSpoolKeys(spool.root, keys) : () => undefined;
  const byId = new Map(cfg.partners.map((p) => [p.id, p]));
  return {
    config: cfg,
    ledger,
    files: new FilesRepository(ledger),
    spool,
    ...(keys ? { keys } : {}),
    log,
    partner(id) {
      const p = byId.get(id);
      if (!p) throw new Error(`partner '${id}' is not in ${cfg.file}`);
      return p;
    },
    close: async () => {
      unregister();
      await ledger.close();
    },
  };
}
