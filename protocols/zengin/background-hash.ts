// SHA-256 of a received file computed on a worker thread, beside the receiving: at 32 KB data
// messages it was 60% of the 全銀 receiver's main-thread CPU (1.3-1.7 GB/s with SHA-NI), which the
// receive loop, the socket and the disk writes wait behind. One worker serves every session of
// the process. A batch buffer is handed to the worker and back (a transfer: no copy); any other
// buffer is copied by postMessage. Where no worker can start, the hash runs on the calling thread.
// (Batches were SharedArrayBuffers before: filling one goes through V8's relaxed-atomic copy,
// 17 % of the TLS receiver's main thread against a plain memmove into an ordinary buffer.)
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface RunningHash {
  /** Adds `data` (copied to the worker). */
  update(data: Buffer): Promise<void>;
  /**
   * Adds the first `length` bytes of `batch`, a buffer that owns its whole memory
   * (`Buffer.allocUnsafeSlow`): the memory goes to the worker and back without a copy, and
   * `batch` is unusable meanwhile. Resolves with a buffer over the same memory, to be reused.
   */
  updateOwned(batch: Buffer, length: number): Promise<Buffer>;
  /** The hex digest; the hash ends (no update after it). */
  digest(): Promise<string>;
  /** Drops the state without a digest (the file was suspended or discarded). */
  drop(): void;
}

// Plain JavaScript, run with `eval` and no loader: the worker starts in milliseconds.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.op === 'update') {
      let h = hashes.get(m.id);
      if (!h) hashes.set(m.id, (h = createHash('sha256')));
      if (m.owned) {
        h.update(new Uint8Array(m.owned, 0, m.length));
        parentPort.postMessage({ n: m.n, owned: m.owned }, [m.owned]);
      } else {
        h.update(m.data);
        parentPort.postMessage({ n: m.n });
      }
    } else if (m.op === 'digest') {
      const h = hashes.get(m.id) || createHash('sha256');
      hashes.delete(m.id);
      parentPort.postMessage({ n: m.n, hex: h.digest('hex') });
    } else if (m.op === 'drop') {
      hashes.delete(m.id);
    }
  } catch (err) {
    const owned = m.owned && m.owned.byteLength > 0 ? m.owned : undefined;
    parentPort.postMessage({ n: m.n, error: String((err && err.message) || err), owned }, owned ? [owned] : []);
  }
});
`;

type Reply = { n: number; hex?: string; error?: string; owned?: ArrayBuffer };

class HashWorker {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextRequest = 1;
  private nextHash = 1;
  broken: Error | null = null;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], env: {}, stdout: false, stderr: false });
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.n);
      if (!w) return;
      this.waiting.delete(r.n);
      if (this.waiting.size === 0) this.worker.unref();
      if (r.error) w.reject(new Error(`sha256 worker: ${r.error}`));
      else w.resolve(r);
    });
    const fail = (err: Error) => {
      this.broken ??= err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`sha256 worker exited with ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker's port again, and a worker
    // made for a file that never got a byte kept the process alive.
    this.worker.unref();
  }

  /** A request; the worker holds the process open only while one is answered. */
  private ask(message: { op: string; id: number; data?: Buffer; owned?: ArrayBuffer; length?: number }): Promise<Reply> {
    if (this.broken) return Promise.reject(this.broken);
    const n = this.nextRequest++;
    return new Promise<Reply>((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(n, { resolve, reject });
      this.worker.postMessage({ ...message, n }, message.owned ? [message.owned] : []);
    });
  }

  open(): RunningHash {
    const id = this.nextHash++;
    return {
      update: async (data) => {
        await this.ask({ op: 'update', id, data });
      },
      updateOwned: async (batch, length) => {
        if (batch.byteOffset !== 0 || batch.length !== batch.buffer.byteLength || batch.buffer instanceof SharedArrayBuffer) {
          throw new Error('updateOwned needs a buffer that owns its whole memory (Buffer.allocUnsafeSlow)');
        }
        const reply = await this.ask({ op: 'update', id, owned: batch.buffer, length });
        return Buffer.from(reply.owned!);
      },
      digest: async () => (await this.ask({ op: 'digest', id })).hex!,
      drop: () => {
        if (!this.broken) this.worker.postMessage({ op: 'drop', id, n: 0 });
      },
    };
  }
}

let shared: HashWorker | null | undefined;

function inThread(): RunningHash {
  const hash: Hash = createHash('sha256');
  return {
    update: async (data) => {
      hash.update(data);
    },
    updateOwned: async (batch, length) => {
      hash.update(batch.subarray(0, length));
      return batch;
    },
    digest: async () => hash.digest('hex'),
    drop: () => undefined,
  };
}

/** A new running SHA-256, on the shared worker thread when one can run. */
export function backgroundSha256(): RunningHash {
  if (shared === undefined || shared?.broken) {
    try {
      shared = new HashWorker();
    } catch {
      shared = null;
    }
  }
  return shared ? shared.open() : inThread();
}
