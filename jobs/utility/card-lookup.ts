// The customer lookup of billing, a batch of bills at a time: each bill's customer row and, for
// those with a card on file, the card opened (the batch's audit row first). On a SQLite ledger and
// a big file it runs in a thread of its own (card-lookup-thread.ts), so that the lookups and the
// GCM of the next batch overlap the writing of this one: the route's thread then only converts
// and writes. Elsewhere (PostgreSQL, small files, or the thread cannot start) the same steps run
// in the job's thread. Both give the same CardsOfBatch, with the same audit rows.
import { createHash } from 'node:crypto';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Ledger } from '../../spool/ledger/index.ts';
import { OpenedCards, VaultError, type DecryptionAudit, type Vault } from '../../spool/vault/vault.ts';
import { CUSTOMER_COLUMNS, distinct, sealedBatch, type CardsOfBatch } from './card-lookup-core.ts';
import type { LookupReply, LookupRequest, LookupThreadData } from './card-lookup-thread.ts';
import { rowArraysByKeys } from './common.ts';

export { CARD_OPENED, NO_CARD, NOT_REGISTERED, type CardsOfBatch } from './card-lookup-core.ts';

/** Files with fewer bills look up in the job's thread: starting the thread costs more than it saves. */
const THREAD_MIN_BILLS = Number(process.env.TSUNAGI_UTILITY_THREAD_MIN_BILLS ?? 50_000);

export interface CardLookup {
  /** The batch's customers and opened cards; the caller wipes `cards` once its records are written. */
  lookup(customerNos: string[]): Promise<CardsOfBatch>;
  close(): Promise<void>;
  readonly threaded: boolean;
}

/** The lookup for a file of `bills` bills: threaded on a SQLite file ledger from `threadFrom` bills on. */
export async function openCardLookup(ledger: Ledger, vault: Vault, partnerId: string, audit: DecryptionAudit, bills: number, threadFrom = THREAD_MIN_BILLS): Promise<CardLookup> {
  if (ledger.dialect === 'sqlite' && ledger.sqliteFile && bills >= threadFrom) {
    try {
      return await ThreadedLookup.start(ledger.sqliteFile, vault, partnerId, audit);
    } catch (err) {
      process.emitWarning(`utility billing looks customers up in the job's thread: the lookup thread did not start (${(err as Error).message})`);
    }
  }
  return new InThreadLookup(ledger, vault, partnerId, audit);
}

class InThreadLookup implements CardLookup {
  readonly threaded = false;
  constructor(private readonly ledger: Ledger, private readonly vault: Vault, private readonly partnerId: string, private readonly audit: DecryptionAudit) {}

  async lookup(customerNos: string[]): Promise<CardsOfBatch> {
    const rows = await rowArraysByKeys(this.ledger, 'utility_customers', { partner_id: this.partnerId }, 'customer_no', distinct(customerNos), CUSTOMER_COLUMNS);
    const { status, billOf, companies, columns } = sealedBatch(this.partnerId, customerNos, rows);
    const cards = columns.count > 0 ? await this.vault.openColumns(columns, this.audit) : new OpenedCards(Buffer.alloc(0), new Int32Array(0), new Int32Array(0), new Int32Array(0));
    return { status, billOf, companies, cards };
  }

  async close(): Promise<void> {}
}

/** A batch's garbage is small and short-lived: a small young generation keeps the thread's share of the peak RSS down. */
const LOOKUP_THREAD_LIMITS = { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 };

class ThreadedLookup implements CardLookup {
  readonly threaded = true;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve(v: CardsOfBatch): void; reject(e: Error): void }>();
  private failed: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: LookupReply) => {
      const w = this.waiting.get(reply.seq);
      if (!w) return;
      this.waiting.delete(reply.seq);
      if ('error' in reply) w.reject(reply.vault ? new VaultError(reply.error) : new Error(`utility lookup thread: ${reply.error}`));
      else w.resolve({ status: reply.status, billOf: reply.billOf, companies: reply.companies, cards: new OpenedCards(Buffer.from(reply.plain.buffer, reply.plain.byteOffset, reply.plain.length), reply.start, reply.bar, reply.end) });
    });
    const fail = (err: Error) => {
      this.failed ??= err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`utility lookup thread ended (${code})`)));
  }

  static async start(sqliteFile: string, vault: Vault, partnerId: string, audit: DecryptionAudit): Promise<ThreadedLookup> {
    const { file, execArgv } = await threadFile();
    const dataKeys = vault.dataKeysForThread();
    let worker: Worker;
    try {
      // workerData is copied when the thread is made: the copies here are zeroed at once
      worker = new Worker(file, { workerData: { sqliteFile, dataKeys, partnerId, audit } satisfies LookupThreadData, execArgv, resourceLimits: LOOKUP_THREAD_LIMITS });
    } finally {
      for (const k of dataKeys) k.key.fill(0);
    }
    worker.unref();
    return new ThreadedLookup(worker);
  }

  lookup(customerNos: string[]): Promise<CardsOfBatch> {
    if (this.failed) return Promise.reject(this.failed);
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.worker.postMessage({ seq, customerNos } satisfies LookupRequest);
    });
  }

  async close(): Promise<void> {
    if (this.failed) return;
    this.failed = new Error('utility lookup thread closed');
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const THREAD_SOURCE = path.join(HERE, 'card-lookup-thread.ts');
const CACHE_DIR = path.resolve(HERE, '../../node_modules/.cache/tsunagi');
let built: Promise<{ file: string; execArgv: string[] }> | undefined;

/**
 * The lookup thread's code. Under tsx (no build step) it is bundled once per process with esbuild
 * into one plain ES module, as the embedded runner's threads are (jobs/runners/thread-entry.ts):
 * a thread that ran tsx itself would compile every module again and cost 10-15 MB more. Built
 * code runs its own .js file.
 */
function threadFile(): Promise<{ file: string; execArgv: string[] }> {
  if (!fileURLToPath(import.meta.url).endsWith('.ts')) return Promise.resolve({ file: path.join(HERE, 'card-lookup-thread.js'), execArgv: process.execArgv });
  built ??= (async () => {
    const { build } = await import('esbuild');
    const result = await build({ entryPoints: [THREAD_SOURCE], bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', write: false, logLevel: 'silent' });
    const code = result.outputFiles[0]!.contents;
    const file = path.join(CACHE_DIR, `utility-card-lookup-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
    if (!(await stat(file).then(() => true, () => false))) {
      await mkdir(CACHE_DIR, { recursive: true });
      const temp = `${file}.${process.pid}.tmp`; // another process may write the same file
      await writeFile(temp, code);
      await rename(temp, file);
    }
    return { file, execArgv: [] }; // plain JS: no tsx in the thread
  })();
  built.catch(() => { built = undefined; });
  return built;
}
