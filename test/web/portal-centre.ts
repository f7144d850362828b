// A throwaway centre with the web portal (HTTPS, certificate made at test time), the mail listener
// and two merchants, one card company whose delivery folder is missing (so deliveries to it fail
// until an operator fixes it and resends), and users for each merchant and an operator.
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openCentre, type Centre } from '../../jobs/centre.ts';
import { startEngine, type Engine } from '../../jobs/engine.ts';
import { createListeners, type NamedProtocolListener } from '../../jobs/listeners.ts';
import { ensureSelfSignedCert } from '../../jobs/keys.ts';
import { createLogger } from '../../jobs/log.ts';
import { startWebServices, type WebServices } from '../../web/start.ts';
import { UsersRepository, type NewAccount } from '../../web/users.ts';

export interface PortalCentre {
  dir: string;
  centre: Centre;
  engine: Engine;
  listeners: NamedProtocolListener[];
  services: WebServices;
  url: string;
  mailPort: number;
  users: Record<'tokyo' | 'osaka' | 'operator', NewAccount>;
  /** the folder card company cc1 takes deliveries in (missing at first) */
  cc1Folder: string;
  stop(): Promise<void>;
}

export interface PortalCentreOptions {
  smarthostPort?: number;
  /** PEM of the smarthost's certificate (the notifier trusts only it) */
  smarthostCa?: string;
  queue?: string;
  lockoutFailures?: number;
  /** Where the centre logs (default nowhere unless TSUNAGI_TEST_LOG_LEVEL); at info level when given. */
  logTo?: NodeJS.WritableStream;
  /** More keys for the web and mail listeners' flow mappings, e.g. "maxUnauthenticatedPerAddress: 2". */
  webExtra?: string;
  mailExtra?: string;
}

export async function startPortalCentre(o: PortalCentreOptions = {}): Promise<PortalCentre> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-web-'));
  const keys = path.join(dir, 'keys');
  await mkdir(keys, { recursive: true });
  await ensureSelfSignedCert(path.join(keys, 'cert.pem'), path.join(keys, 'key.pem'));
  await writeFile(path.join(keys, 'mail-tokyo.password'), 'tokyo-mail-secret\n', { mode: 0o600 });
  const tls = '{ cert: { file: ./keys/cert.pem }, key: { file: ./keys/key.pem } }';
  const config = `
centre: { code: "0000000001", name: TEST CENTRE }
spoolRoot: ./spool
ledger: sqlite:./ledger.db
queue: ${o.queue ?? 'embedded'}
quietPeriodSeconds: 0
deliver: { maxAttempts: 1, backoffSeconds: 0.05 }
workers: { concurrency: 2, threads: 0 }
listeners:
  web: { host: 127.0.0.1, port: 0, tls: ${tls}, maxLoginFailures: ${o.lockoutFailures ?? 5}, failureDelayMs: 0${o.webExtra ? `, ${o.webExtra}` : ''} }
  mail: { host: 127.0.0.1, port: 0, tls: ${tls}${o.mailExtra ? `, ${o.mailExtra}` : ''} }
${o.smarthostPort ? `mail: { smarthost: { host: 127.0.0.1, port: ${o.smarthostPort}, requireTLS: true, ca: ${o.smarthostCa ?? './keys/cert.pem'} }, from: tsunagi@centre.example, pollSeconds: 0.1 }` : ''}
partners:
  - id: m-tokyo
    name: TOKYO STORE
    role: merchant
    code: "1000000001"
    merchantNos: ["101000000000001"]
    send: ["31", "41", "61"]
    receive: ["33", "42", "51", "52", "71", "91"]
    jmanagerCycles: [D]
    web: { totp: required }
    mail: { password: { file: ./keys/mail-tokyo.password }, senders: [uriage@tokyo.example] }
    notices: { to: [office@tokyo.example] }
  - id: m-osaka
    name: OSAKA STORE
    role: merchant
    code: "1000000002"
    merchantNos: ["102000000000001"]
    send: ["31"]
    receive: ["33", "71", "91"]
    jmanagerCycles: [D]
  - id: cc1
    name: CARD ONE
    role: card-company
    code: "2000000001"
    cardCompanyCodes: ["001", "002", "003"]
    send: ["33"]
    receive: ["32", "41"]
    delivery: { protocol: local, path: ./remote/cc1 }
`;
  const configFile = path.join(dir, 'tsunagi.yaml');
  await writeFile(configFile, config);
  const log = o.logTo ? createLogger({ level: 'info', destination: o.logTo }) : createLogger({ level: process.env.TSUNAGI_TEST_LOG_LEVEL ?? 'silent' });
  const centre = await openCentre(configFile, { log });
  const engine = await startEngine(centre);
  const listeners = await createListeners(engine);
  for (const l of listeners) await l.start();
  const services = await startWebServices(engine, listeners);
  const repo = new UsersRepository(centre.ledger);
  const users = {
    tokyo: await repo.add(centre.config, { username: 'tokyo-user', partnerId: 'm-tokyo' }),
    osaka: await repo.add(centre.config, { username: 'osaka-user', partnerId: 'm-osaka' }),
    operator: await repo.add(centre.config, { username: 'ops', operator: true }),
  };
  return {
    dir,
    centre,
    engine,
    listeners,
    services,
    url: services.web!.url,
    mailPort: listeners.find((l) => l.name === 'mail')!.port,
    users,
    cc1Folder: path.join(dir, 'remote', 'cc1'),
    async stop() {
      await services.stop();
      for (const l of listeners) await l.stop();
      await engine.stop();
      await centre.close();
    },
  };
}
