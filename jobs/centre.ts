// The running centre: config, ledger, spool tree and logger, opened once and shared by every job.
import type { Logger } from 'pino';
import { loadConfig, configPath, type TsunagiConfig, type PartnerConfig } from './config.ts';
import { createLogger } from './log.ts';
import { openLedger, FilesRepository, type Ledger } from '../spool/ledger/index.ts';
import { SpoolTree } from '../spool/tree.ts';

export interface Centre {
  config: TsunagiConfig;
  ledger: Ledger;
  files: FilesRepository;
  spool: SpoolTree;
  log: Logger;
  partner(id: string): PartnerConfig;
  close(): Promise<void>;
}

export async function openCentre(config: TsunagiConfig | string | undefined, options: { log?: Logger } = {}): Promise<Centre> {
  const cfg = typeof config === 'object' ? config : loadConfig(config);
  const log = options.log ?? createLogger();
  const ledger = await openLedger(cfg.ledger, { baseDir: cfg.baseDir, log });
  const spool = new SpoolTree(configPath(cfg, cfg.spoolRoot));
  await spool.ensure(cfg.partners.map((p) => p.id));
  const byId = new Map(cfg.partners.map((p) => [p.id, p]));
  return {
    config: cfg,
    ledger,
    files: new FilesRepository(ledger),
    spool,
    log,
    partner(id) {
      const p = byId.get(id);
      if (!p) throw new Error(`partner '${id}' is not in ${cfg.file}`);
      return p;
    },
    close: () => ledger.close(),
  };
}
